"""Stage 2 for residual losses: the jets each layer carries, derived by sympy.

A residual loss (symnet/residuals.py) reads derivatives of the outputs with respect to the
inputs, up to second order. Each point set carries, besides the values, one *channel* per
input direction that some derivative of its terms needs (du/dx_d), and one per second-order
pair (d2u/dx_a dx_b) its terms use: forward-mode tangents through the layers, only those the
loss names (the diagonal pairs of a Laplacian, not the full Hessian).

Through a layer, the linear part maps every channel the same way (net = a @ W.T + b for the
values, net_c = a_c @ W.T for a derivative channel c: the bias is constant). The elementwise
part is the activation's *jet map*: out = f(net), and for the channels the derivatives of
f(net(x)) with respect to x, written in net's own channels. `jet_map` derives those by sympy:
net is an undefined function of the inputs, sympy differentiates f(net(x)), and each
Derivative(net, x_a, ...) becomes the channel's symbol, so f', f'' and the chain rule are
sympy's, never written here. The backward pass needs each net channel's adjoint: the sum over
out channels of their adjoint times the partial derivative of their expression by that net
channel, again by sympy.

The residuals' own derivatives (d residual / d u_xx, ...) are taken from their expressions in
the same way, where the residuals are printed (codegen/cpu/residuals.py).

A set whose terms read its second derivatives only through one fixed linear combination (a
Laplacian u_xx + u_yy, or c_xx u_xx + c_xy u_xy + c_yy u_yy with numbers c, the same for every
output and term of the set) carries that combination as one channel, `dd`, instead of one
channel per pair: the second derivative of f(net(x)) is linear in net's second derivatives,
with the same factor f'(net) for every pair, so sum c_ab d2/dx_a dx_b of f(net(x)) is f'(net)
times the combination of net's plus terms in the first-order channels, and the linear layers
map the combination as they map each pair (`second_order_combination` finds it from the terms'
expressions, `jet_map` verifies the linearity by sympy). A 2D Laplacian then costs four
channels instead of five, a 3D one five instead of seven.
"""

from __future__ import annotations

from dataclasses import dataclass

from .lazy import sp
from .tangent import almost_everywhere

# the name of the channel of a combination of second derivatives
COMBINED = "dd"


@dataclass(frozen=True)
class Channels:
    """The derivative channels a point set carries besides the values: first-order
    directions (input indices), second-order pairs (a <= b), and at most one combination of
    second-order pairs ((pair, coefficient), ...: the channel `dd`, the sum of each
    coefficient times its pair's second derivative), carried instead of those pairs."""

    directions: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]
    combination: tuple[tuple[tuple[int, int], sp.Expr], ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every channel's name, the values first: v, d0, d1, d0d0, d0d1, ..., dd."""
        return ("v", *(channel_name((d,)) for d in self.directions),
                *(channel_name(p) for p in self.pairs),
                *((COMBINED,) if self.combination else ()))


def channel_name(inputs: tuple[int, ...]) -> str:
    """v for the values, d0 for d/dx_0, d0d1 for d2/dx_0 dx_1."""
    return "v" if not inputs else "".join(f"d{i}" for i in inputs)


def channels_for(derivatives, terms=()) -> Channels:
    """What a point set must carry for these Derivatives: each second-order pair it uses (or
    their one combination, where `terms`, the set's ResidualTerms, read them only through
    one: `second_order_combination`), and every direction that a first- or second-order
    derivative involves (a pair's tangents need both first-order channels)."""
    pairs = sorted({tuple(d.inputs) for d in derivatives if len(d.inputs) == 2})
    directions = sorted({i for d in derivatives for i in d.inputs})
    combination = second_order_combination(terms) if len(pairs) > 1 else None
    if combination:
        return Channels(tuple(directions), (), combination)
    return Channels(tuple(directions), tuple(pairs))


def second_order_combination(terms) -> tuple[tuple[tuple[int, int], sp.Expr], ...] | None:
    """The one linear combination through which the terms read every second derivative they
    use, ((pair, coefficient), ...) with the first pair's coefficient 1; None if there is
    none: for each term and output, the residual's partial derivatives by that output's
    second-order symbols must be proportional by numbers (u_xx + u_yy, 2*u_xx + 2*u_yy, or
    sin(u_xx + u_yy) * x; not u_xx * u_yy, nor u_xx + x * u_yy), with the same proportions
    for every output and term, over the same pairs."""
    pairs = sorted({d.inputs for t in terms for _, d in t.uses if d.order == 2})
    found = None
    for t in terms:
        by_output: dict[int, dict[tuple[int, int], sp.Symbol]] = {}
        for sym, d in t.uses:
            if d.order == 2:
                by_output.setdefault(d.output, {})[d.inputs] = sym
        for syms in by_output.values():
            if sorted(syms) != pairs:
                return None
            slopes = {p: sp.diff(t.expr, s) for p, s in syms.items()}
            first = slopes[pairs[0]]
            if first == 0:
                return None
            ratios = []
            for p in pairs:
                r = sp.nsimplify(sp.simplify(slopes[p] / first))
                if not (r.is_number and r.is_finite and r != 0):
                    return None
                ratios.append(r)
            if found is None:
                found = tuple(ratios)
            elif tuple(ratios) != found:
                return None
    if found is None:
        return None
    combination = tuple(zip(pairs, found))
    try:  # each term must be a formula in the combination (verified, not assumed)
        for t in terms:
            combined_term(t.expr, t.uses, combination)
    except ValueError:  # sympy could not write it so: one channel per pair, as without
        return None
    return combination


def combined_term(expr, uses, combination) -> tuple[sp.Expr, dict[int, sp.Symbol]]:
    """A residual written with one symbol per output for the combination (named like the
    output's other symbols, with `dd`) in place of its second-order symbols, and those
    symbols by output. ValueError if the residual is not a formula in the combination."""
    coefficient = dict(combination)
    ref = combination[0][0]
    by_output: dict[int, dict[tuple[int, int], sp.Symbol]] = {}
    for sym, d in uses:
        if d.order == 2:
            by_output.setdefault(d.output, {})[d.inputs] = sym
    symbols = {}
    for o, syms in sorted(by_output.items()):
        stem = syms[ref].name.rsplit("_", 1)[0]
        combined = sp.Symbol(f"{stem}_{COMBINED}", real=True)
        rest = sp.Add(*(coefficient[p] * s for p, s in syms.items() if p != ref))
        expr = expr.xreplace({syms[ref]: (combined - rest) / coefficient[ref]})
        expr = sp.expand(expr) if expr.free_symbols & set(syms.values()) else expr
        if expr.free_symbols & set(syms.values()):
            raise ValueError(f"combined_term: {expr} is not a formula in the combination")
        symbols[o] = combined
    return expr, symbols


def describe_combination(ch: Channels, input_names) -> str:
    """The channel dd as comments and `symnet inspect` write it, in the inputs' names:
    d2/dx2 + d2/dy2 ("" without one)."""
    parts = []
    for (a, b), c in ch.combination:
        d = f"d2/d{input_names[a]}2" if a == b else f"d2/d{input_names[a]}d{input_names[b]}"
        parts.append(d if c == 1 else f"{c}*{d}")
    return " + ".join(parts)


@dataclass(frozen=True)
class JetMap:
    """An elementwise activation on every channel: `forward` gives each out channel's value
    from the net channels' symbols (`net_symbols`); `backward` each net channel's adjoint
    from the net channels, the out channels' adjoints (`adjoint_symbols`) and OUT, the out
    value f(net) where the derivatives are written in it."""

    net_symbols: tuple[tuple[str, sp.Symbol], ...]  # (channel, symbol), in Channels order
    adjoint_symbols: tuple[tuple[str, sp.Symbol], ...]  # (channel, the out channel's adjoint)
    forward: tuple[tuple[str, sp.Expr], ...]  # (channel, out channel's expression)
    backward: tuple[tuple[str, sp.Expr], ...]  # (channel, net channel's adjoint)


def _combine(e, parts, coefficient, combined):
    """sum c_ab * d2 f(net)/dx_a dx_b, written with each pair's net derivative m_ab, as a
    formula in their combination sum c_ab * m_ab (`combined`): e is linear in the m_ab with
    the factor c_ab * f'(net) on each (the chain rule, checked here by sympy), so it is e with
    every m_ab at 0, plus f'(net) times the combination."""
    base = e.xreplace({m: 0 for m in parts.values()})
    slopes = {p: sp.diff(e, m) for p, m in parts.items()}
    ref = next(iter(parts))
    factor = slopes[ref] / coefficient[ref]
    for p in parts:
        if any(sp.diff(slopes[p], m) != 0 for m in parts.values()):
            raise ValueError(f"jet_map: {e} is not linear in the second derivatives")
        gap = slopes[p] - coefficient[p] * factor
        if gap != 0 and sp.simplify(gap) != 0:
            raise ValueError(f"jet_map: the second derivatives of {e} have unequal factors")
    return sp.factor_terms(base) + factor * combined


def _real(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


# the out value f(net) of the values channel, as the backward expressions read it
OUT = sp.Symbol("y", real=True)


def activation_jets(activation, channels: Channels) -> JetMap:
    """The jet map of a spec's `Activation` (a registry entry or a custom formula, with its
    parameters); SymnetError for a layer-wide one (softmax has no per-unit expression)."""
    from .functions import activation_def

    definition = activation_def(activation)
    return jet_map(lambda z: definition.expr(z, **activation.kwargs), channels)


def jet_map(f, channels: Channels) -> JetMap:
    """The jet map of the activation `f` (a function from a sympy expression to its
    activation's expression) for `channels`."""
    names = channels.names()
    n_inputs = 1 + max((*channels.directions, *(b for _, b in channels.pairs),
                        *(b for (_, b), _ in channels.combination), -1))
    xs = sp.symbols(f"x0:{max(n_inputs, 1)}", real=True)
    net = sp.Function("net")(*xs)
    nets = {c: _real(f"n_{c}") for c in names}
    replace = {net: nets["v"]}
    for d in channels.directions:
        replace[sp.Derivative(net, xs[d])] = nets[channel_name((d,))]
    for a, b in channels.pairs:
        replace[sp.Derivative(net, xs[a], xs[b])] = nets[channel_name((a, b))]
    # the combination's pairs: a symbol each for now (_combine takes them out)
    parts = {(a, b): _real(f"m_{channel_name((a, b))}") for (a, b), _ in channels.combination}
    for (a, b), m in parts.items():
        replace[sp.Derivative(net, xs[a], xs[b])] = m
    out = f(net)
    exprs = {"v": out}
    for d in channels.directions:
        exprs[channel_name((d,))] = sp.diff(out, xs[d])
    for a, b in channels.pairs:
        exprs[channel_name((a, b))] = sp.diff(out, xs[a], xs[b])
    if channels.combination:
        exprs[COMBINED] = sp.Add(*(c * sp.diff(out, xs[a], xs[b])
                                   for (a, b), c in channels.combination))
    # the highest derivatives first, so that d2net/dx dy is replaced before dnet/dx
    order = sorted(replace, key=lambda e: -len(getattr(e, "variables", ())))
    forward = {}
    for c in names:
        # where the derivative exists: sign' and a step's derivative are 0 but at the kink
        # (tangent.almost_everywhere; sympy may leave d sign(net)/dx unevaluated)
        e = almost_everywhere(exprs[c].replace(
            lambda d: isinstance(d, sp.Derivative) and d.expr.func in (sp.sign, sp.Heaviside),
            lambda d: sp.Integer(0)))
        for k in order:
            e = e.subs(k, replace[k])
        if c == COMBINED:
            e = _combine(e, parts, dict(channels.combination), nets[COMBINED])
        if e.has(sp.Derivative) or e.has(net):
            raise ValueError(f"jet_map: channel {c} kept {e}")  # a bug, not user input
        forward[c] = e
    adjoints = {c: _real(f"g_{c}") for c in names}
    backward = {c: sp.Add(*(adjoints[o] * almost_everywhere(sp.diff(forward[o], nets[c]))
                            for o in names)) for c in names}
    # where the adjoints use f(net) itself (tanh' = 1 - tanh^2), they read the stored out
    # value y instead of computing f again
    value = forward["v"]
    if value != nets["v"]:
        backward = {c: e.subs(value, OUT) for c, e in backward.items()}
    return JetMap(tuple((c, nets[c]) for c in names), tuple((c, adjoints[c]) for c in names),
                  tuple((c, forward[c]) for c in names), tuple((c, backward[c]) for c in names))

