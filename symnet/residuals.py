"""Stage 1, physics-informed losses: a spec's residual terms become sympy expressions.

A loss of `kind = "residuals"` (docs/spec.md) is a weighted sum of terms, each the mean (or
sum) of a residual squared over the term's own set of points:

    E = sum over terms of weight * reduce over the term's points of residual^2

A residual is a formula in the network's inputs, its outputs, and the derivatives of the
outputs with respect to the inputs up to second order, written `<output>_<inputs>`: with
inputs x, y and output u, `u_x` is du/dx, `u_xx` is d2u/dx^2 and `u_xy` (or `u_yx`, the same
symbol) is d2u/dx dy. A derivative's name is read by trying every way to write what follows
the output's name and `_` as one or two input names; a name with two readings (inputs "x" and
"xx" make `u_xx` either d2u/dx^2 or du/dxx), a third-order name (`u_xxx`), or a derivative of
an input (`x_x`) is refused.

The formula is parsed by `symnet.expressions.parse`, the whitelist parser of every formula in
a spec, against the names the formula uses (an input, an output or a derivative each becomes a
real sympy symbol); the text is never evaluated. `spec.py` calls `check_formula` on each
residual and `check_differentiable` on the network when it loads a spec, so every error here
is a `SpecError` at load, naming the file and the key.

What the code generation reads:

- `residual_terms(spec)`: per term (in spec order) a `ResidualTerm`: its expression, the
  `Derivative` each of its symbols stands for, and the input symbols.
- `point_sets(spec)`: per named set of points, the union of the derivatives its terms use:
  what the kernels must compute at those points.
- `check_differentiable(spec)`: refuses activations whose derivatives vanish almost
  everywhere where the terms need them (a kinked relu for u_xx, a step for u_x).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache

from . import expressions
from .errors import SpecError
from .lazy import sp

RESIDUALS = "residuals"  # the loss kind


# ----------------------------------------------------------------------------------------
# the names


def default_input_names(n: int) -> tuple[str, ...]:
    """x; x, y; x, y, z; else x1, ..., xn."""
    if n <= 3:
        return ("x", "y", "z")[:n]
    return tuple(f"x{i}" for i in range(1, n + 1))


def default_output_names(n: int) -> tuple[str, ...]:
    """u; else u1, ..., un."""
    return ("u",) if n == 1 else tuple(f"u{i}" for i in range(1, n + 1))


def reserved_names() -> tuple[str, ...]:
    """Names that an input or output may not take: the formulas' constants and functions."""
    return (*expressions.CONSTANTS, *expressions.FUNCTIONS)


@dataclass(frozen=True)
class Derivative:
    """What one symbol of a residual stands for: output `output` (0-based) differentiated by
    the inputs `inputs` (0-based, sorted): () the value itself, (d,) d/dx_d, (a, b) with
    a <= b the second derivative d2/dx_a dx_b."""

    output: int
    inputs: tuple[int, ...]

    @property
    def order(self) -> int:
        return len(self.inputs)

    def sort_key(self) -> tuple:
        """Output, then order, then inputs: u, u_x, u_y, u_xx, u_xy, u_yy, then the next."""
        return self.output, len(self.inputs), self.inputs


@dataclass(frozen=True)
class ResidualTerm:
    name: str
    points: str  # the named set of points the term is evaluated on
    weight: float
    expr: sp.Expr  # over the input symbols and one symbol per Derivative used (real=True)
    uses: tuple[tuple[sp.Symbol, Derivative], ...]  # every Derivative symbol in expr, sorted
    inputs: tuple[sp.Symbol, ...]  # the input symbols, in input order (used or not)


class _Names:
    """The inputs' and outputs' names, the index of each, and the longest input name."""

    def __init__(self, inputs: tuple[str, ...], outputs: tuple[str, ...]):
        self.inputs, self.outputs = inputs, outputs
        self.input_index = {n: k for k, n in enumerate(inputs)}
        self.output_index = {n: k for k, n in enumerate(outputs)}
        self.longest = max(map(len, inputs))

    def symbol_name(self, d: Derivative) -> str:
        """How a derivative's symbol is named: the output, then its inputs in input order
        (u_xy for both u_xy and u_yx)."""
        if not d.inputs:
            return self.outputs[d.output]
        return self.outputs[d.output] + "_" + "".join(self.inputs[i] for i in d.inputs)

    def describe(self, d: Derivative) -> str:
        """d2u/dx dy, as a message writes it."""
        o = _short(self.outputs[d.output])
        if not d.inputs:
            return o
        if len(d.inputs) == 1:
            return f"d{o}/d{_short(self.inputs[d.inputs[0]])}"
        a, b = (_short(self.inputs[i]) for i in d.inputs)
        return f"d2{o}/d{a}^2" if d.inputs[0] == d.inputs[1] else f"d2{o}/d{a} d{b}"

    def formula_of(self) -> str:
        """What a residual may be a formula in, for the messages."""
        i, o = _short(self.inputs[0], 10), _short(self.outputs[0], 10)
        ins = "input" + ("s" if len(self.inputs) > 1 else "")
        outs = "output" + ("s" if len(self.outputs) > 1 else "")
        return (f"the {ins} {_few(self.inputs)}, the {outs} {_few(self.outputs)} and their "
                f"derivatives up to second order such as {o}_{i}, {o}_{i}{i}")


@lru_cache(maxsize=16)
def _names(inputs: tuple[str, ...], outputs: tuple[str, ...]) -> _Names:
    return _Names(inputs, outputs)


def _few(names: tuple[str, ...], most: int = 6) -> str:
    """Up to `most` names, each shortened, for a message."""
    if len(names) > most:
        names = (*names[:most - 1], "...", names[-1])
    return ", ".join(_short(n) for n in names)


def _short(name: str, most: int = 30) -> str:
    """A name, shortened for a message."""
    return name if len(name) <= most else name[:most - 3] + "..."


def _subscripts(sub: str, inputs: dict[str, int]) -> set[tuple[int, ...]]:
    """The sorted input tuples that `sub` spells as one or two input names."""
    found = set()
    if sub in inputs:
        found.add((inputs[sub],))
    for q in range(1, len(sub)):
        a, b = sub[:q], sub[q:]
        if a in inputs and b in inputs:
            found.add(tuple(sorted((inputs[a], inputs[b]))))
    return found


def _fewest_names(sub: str, inputs: dict[str, int], longest: int) -> int | None:
    """The fewest input names (each at most `longest` long) that spell `sub` end to end
    (None if none do)."""
    best: list[int | None] = [0] + [None] * len(sub)
    for end in range(1, len(sub) + 1):
        for start in range(max(0, end - longest), end):
            if best[start] is not None and sub[start:end] in inputs:
                count = best[start] + 1
                if best[end] is None or count < best[end]:
                    best[end] = count
    return best[len(sub)]


def _readings(name: str, names: _Names) -> list[Derivative]:
    """Every derivative of order 1 or 2 that `name` spells (`<output>_<one or two inputs>`),
    without repeats, sorted."""
    outputs, inputs = names.output_index, names.input_index
    found = set()
    for p, ch in enumerate(name):
        if ch == "_" and name[:p] in outputs and p + 1 < len(name):
            o = outputs[name[:p]]
            found |= {Derivative(o, s) for s in _subscripts(name[p + 1:], inputs)}
    return sorted(found, key=Derivative.sort_key)


class _NameRefused(Exception):
    """Why a name in a residual is refused (turned into a SpecError naming the key)."""


def _derivative(name: str, names: _Names) -> Derivative | None:
    """The derivative `name` spells, or None if it spells none; _NameRefused if it spells
    two, one of order 3 or more, or a derivative of an input."""
    found = _readings(name, names)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        both = " and as ".join(names.describe(d) for d in found)
        raise _NameRefused(f"{_short(name)!r} has {len(found)} readings, as {both}: rename "
                           f"the inputs (loss.inputs) so that it has one")
    inputs, outputs = names.input_index, names.output_index
    for p, ch in enumerate(name):
        if ch != "_" or p + 1 == len(name):
            continue
        head, sub = name[:p], name[p + 1:]
        count = _fewest_names(sub, inputs, names.longest) \
            if head in outputs or head in inputs else None
        if count is None:
            continue
        if head in outputs:
            raise _NameRefused(f"{_short(name)!r} is a derivative of order {count}: at most "
                               f"second-order derivatives are allowed")
        raise _NameRefused(f"{_short(name)!r} differentiates the input {_short(head)!r}: only "
                           f"the outputs ({_few(names.outputs)}) have derivatives")
    return None


def _names_in(text: str) -> list[str]:
    """The names `text` uses as variables, in the order they appear; none if the parser
    would refuse the text before reading a name (too long, a character outside its
    alphabet, not a formula), so that its own refusal comes first. Only parsed, never run."""
    if len(text) > expressions.MAX_LENGTH or not set(text) <= expressions.ALLOWED_CHARACTERS:
        return []
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return []
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    used = sorted((n.lineno, n.col_offset, n.id) for n in ast.walk(tree)
                  if isinstance(n, ast.Name) and id(n) not in called)
    return list(dict.fromkeys(name for _, _, name in used))


def _variables(text: str, names: _Names) -> dict[str, tuple[sp.Symbol, Derivative | int]]:
    """The inputs, outputs and derivatives `text` names: name -> (symbol, the input's index
    or the Derivative). A name that is none of them, nor a constant or a function, is refused
    here (the parser refuses the rest)."""
    inputs, outputs = names.input_index, names.output_index
    found: dict[str, tuple[sp.Symbol, Derivative | int]] = {}
    for name in _names_in(text):
        if name in expressions.CONSTANTS or name in expressions.FUNCTIONS:
            continue
        if name in inputs:
            found[name] = (_symbol(name), inputs[name])
            continue
        d = Derivative(outputs[name], ()) if name in outputs else _derivative(name, names)
        if d is None:
            constants = ", ".join(expressions.CONSTANTS)
            raise _NameRefused(f"the name {_short(name)!r} is not an input, an output, a "
                               f"derivative of an output or a constant ({constants})")
        found[name] = (_symbol(names.symbol_name(d)), d)
    return found


def _symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def _parse(text: object, inputs: tuple[str, ...], outputs: tuple[str, ...], source: str,
           key: str) -> tuple[sp.Expr, tuple[tuple[sp.Symbol, Derivative], ...]]:
    """The residual's expression and the (symbol, Derivative) pairs it uses, sorted."""
    if isinstance(text, str):
        return _parse_text(text, inputs, outputs, source, key)
    # not a string: refused by the parser, with the message of every other refusal
    expressions.parse(text, {}, source=source, key=key,
                      described=_names(inputs, outputs).formula_of())
    raise AssertionError("the parser accepted a formula that is not a string")


@lru_cache(maxsize=256)
def _parse_text(text: str, inputs: tuple[str, ...], outputs: tuple[str, ...], source: str,
                key: str) -> tuple[sp.Expr, tuple[tuple[sp.Symbol, Derivative], ...]]:
    names = _names(inputs, outputs)
    described = names.formula_of()
    reason = None
    try:
        found = _variables(text, names)
    except _NameRefused as exc:
        reason = str(exc)
    if reason is not None:
        raise SpecError(source, key, f"a formula in {described} ({reason})", text)
    ordered = sorted(found.items(), key=lambda kv: (not isinstance(kv[1][1], int), kv[0]))
    expr = expressions.parse(text, {n: s for n, (s, _) in ordered}, source=source, key=key,
                             described=described)
    free = expr.free_symbols
    uses = sorted({(s, d) for s, d in found.values()
                   if isinstance(d, Derivative) and s in free},
                  key=lambda sd: sd[1].sort_key())
    if not uses:
        raise SpecError(source, key, f"a formula in {described} (it uses no output and no "
                                     f"derivative of one, so its term would not depend on the "
                                     f"network)", text)
    return expr, tuple(uses)


def check_formula(text: object, inputs: tuple[str, ...], outputs: tuple[str, ...], *,
                  source: str = "<formula>", key: str = "residual") -> None:
    """Refuse (SpecError on `key`) a residual that is not a formula in the inputs, the
    outputs and their derivatives up to second order, or that uses no output."""
    _parse(text, tuple(inputs), tuple(outputs), source, key)


def check_names(inputs: tuple[str, ...], outputs: tuple[str, ...]) -> tuple[str, int, str] | None:
    """The first input or output whose name also spells a derivative (u_x, with inputs x
    and outputs u): ("inputs" or "outputs", its index, why); None if there is none."""
    names = _names(tuple(inputs), tuple(outputs))
    for key, group in (("inputs", names.inputs), ("outputs", names.outputs)):
        for j, name in enumerate(group):
            found = _readings(name, names) if "_" in name else ()
            if found:
                return key, j, (f"a name that is not also a derivative's (it reads as "
                                f"{names.describe(found[0])})")
    return None


# ----------------------------------------------------------------------------------------
# what the code generation reads


def residual_terms(spec) -> tuple[ResidualTerm, ...]:
    """The spec's residual terms, in spec order (none unless its loss is "residuals")."""
    loss = spec.loss
    inputs = tuple(_symbol(n) for n in loss.input_names) if loss.terms else ()
    out = []
    for k, term in enumerate(loss.terms):
        expr, uses = _parse(term.residual, loss.input_names, loss.output_names, spec.source,
                            f"loss.terms[{k}].residual")
        out.append(ResidualTerm(name=term.name, points=term.points, weight=term.weight,
                                expr=expr, uses=uses, inputs=inputs))
    return tuple(out)


def point_sets(spec) -> dict[str, frozenset[Derivative]]:
    """Per named set of points (in the order the terms first name them), every Derivative
    its terms use: the value Derivative(o, ()) only where a term uses the output itself."""
    sets: dict[str, set[Derivative]] = {}
    for term in residual_terms(spec):
        sets.setdefault(term.points, set()).update(d for _, d in term.uses)
    return {name: frozenset(ds) for name, ds in sets.items()}


def check_differentiable(spec) -> None:
    """Refuse (SpecError on network.layers[i].activation) an activation that makes a
    derivative the terms use vanish where it exists, and so be lost:

    - any derivative, after an activation whose derivative is zero almost everywhere (step,
      sign: the network is piecewise constant in its inputs);
    - a second-order derivative, after an activation whose second derivative is zero almost
      everywhere while its first is not constant (relu, leaky_relu, hard_sigmoid, abs: the
      second derivative lives at the kinks, which the kernels never see). A linear layer
      (f' constant) passes, but not a network of linear layers only: u_xx would be 0.

    Decided from each activation's sympy expression (the registry's, or a custom formula),
    differentiated as autodiff does; nothing is listed by name."""
    loss = spec.loss
    need: dict[int, tuple[int, str]] = {}  # order -> (term, the first derivative of it used)
    for k, term in enumerate(loss.terms):
        _, uses = _parse(term.residual, loss.input_names, loss.output_names, spec.source,
                         f"loss.terms[{k}].residual")
        for sym, d in uses:
            for order in range(1, d.order + 1):
                need.setdefault(order, (k, sym.name))
    if not need:
        return
    x = _symbol("x")

    def refuse(key: str, expected: str):
        raise SpecError(spec.source, key, expected)

    affine = True
    for i, layer in enumerate(spec.network.layers):
        key = f"network.layers[{i}].activation"
        name = layer.activation.describe()
        first, second = _derivatives(layer.activation, x)
        k, sym = need[1]
        if _zero(first):
            refuse(key, f"an activation whose derivative is not zero almost everywhere, for "
                        f"{sym} in loss.terms[{k}] ({name}'s is: every derivative of the "
                        f"outputs with respect to the inputs would be 0)")
        if 2 in need and _zero(second) and x in first.free_symbols:
            k, sym = need[2]
            refuse(key, f"an activation whose second derivative is not zero almost "
                        f"everywhere, for the second-order {sym} in loss.terms[{k}] "
                        f"({name} is piecewise linear: its second derivative lives at its "
                        f"kinks and would be lost)")
        affine = affine and _zero(second)
    if 2 in need and affine:
        k, sym = need[2]
        refuse("network.layers", f"a layer whose activation has a second derivative, for the "
                                 f"second-order {sym} in loss.terms[{k}] (every activation is "
                                 f"linear, so the network is affine in its inputs and {sym} "
                                 f"would be 0)")


def _derivatives(activation, x) -> tuple[sp.Expr, sp.Expr]:
    """f' and f'' of an activation where they exist (a DiracDelta at a kink taken as 0)."""
    from .functions import activation_def
    from .tangent import almost_everywhere

    definition = activation_def(activation)
    params = {k: sp.Float(v) for k, v in {**definition.params, **activation.kwargs}.items()}
    # a layer-wide activation (softmax) normalises f over the layer, a smooth map: f decides
    f = definition.build(x, **params)
    first = almost_everywhere(sp.diff(f, x))
    return first, almost_everywhere(sp.diff(first, x))


def _zero(expr: sp.Expr) -> bool:
    """Whether `expr` is 0 (a Piecewise whose every branch is 0 counts)."""
    if expr == 0:
        return True
    expr = sp.piecewise_fold(expr)
    if expr == 0:
        return True
    if isinstance(expr, sp.Piecewise):
        return all(_zero(e) for e, _ in expr.args)
    return False
