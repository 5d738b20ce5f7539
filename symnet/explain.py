"""`symnet explain`: the lecture's worked example, with numbers, for any small network.

For one sample it lists each net and out, each error term, each local derivative of the
chain rule, each delta and each gradient (the hidden layers' sums over the units each out
feeds), and the weights after one training step, in the notation of the lecture:

    dE/dw5 = dE/dout_o1 * dout_o1/dnet_o1 * dnet_o1/dw5
           = 0.74136507 * 0.186815602 * 0.593269992 = 0.082167041

Nothing is differentiated here: each chain factor is an edge that reverse mode recorded
(`Program.edges`, see symnet.autodiff), formatted; where the module computes the loss from
the nets (bce after sigmoid), the edges of the loss as the lecture writes it, in the outputs
(`lecture_program`). Every number is computed by generated code, not by evaluating sympy
here. The scalar `Program` (the one symnet compiles into the module) is rendered, with each
chain factor, into a second small Numba module,
`<name>_explain.py` (templates/cpu/explain.py.jinja), which returns every named value for
one sample. The outputs, the loss and the gradients it returns are checked against the
compiled module's own `forward`, `loss` and `grad`, and the updated weights come from the
compiled module's `train_step`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy as sp

from . import __version__, backends
from .autodiff import differentiate, total_derivative
from .compiler import as_spec, build, default_out_dir, import_module, write
from .errors import SymnetError
from .files import write_if_changed
from .functions import loss_def, t, y
from .lower import lower

# The largest network explained: beyond it the listing (a few lines per weight) stops being
# something to read, and the unrolled explain kernel grows with the network.
EXPLAIN_MAX_PARAMS = 64


@dataclass(frozen=True)
class Label:
    """A named value, as text (dE/dw5) and as LaTeX."""

    text: str
    tex: str


def tex_name(name: str) -> str:
    """net_h1 -> net_{h1}, w5 -> w_{5}, b1_2 -> b_{1,2}, E -> E_{total}."""
    if name == "E":
        return "E_{total}"
    m = re.fullmatch(r"([A-Za-z]+)_?(.*)", name)
    if not m or not m.group(2):
        return name
    return f"{m.group(1)}_{{{m.group(2).replace('_', ',')}}}"


def name_label(name: str) -> Label:
    return Label("E_total" if name == "E" else name, tex_name(name))


def d_label(num: str, den: str) -> Label:
    """d<num>/d<den>: dE/dw5, dout_o1/dnet_o1."""
    tex = rf"\frac{{\partial {tex_name(num)}}}{{\partial {tex_name(den)}}}"
    return Label(f"d{num}/d{den}", tex)


@dataclass(frozen=True)
class Step:
    """lhs = formula = sum of products (symbolic) = the same in numbers [= each product] = value.

    `terms` is a sum of products of named values; `formula` a closed form instead (out_h1 =
    1/(1 + exp(-net_h1))). With `show_terms` each product's value is listed before the sum."""

    lhs: Label
    terms: tuple[tuple[Label, ...], ...] = ()
    formula: Label | None = None
    show_terms: bool = False


@dataclass(frozen=True)
class Update:
    """w+ = w - eta * dE/dw, the value coming from the compiled module's train_step."""

    param: Label
    grad: Label | None  # None: not updated


@dataclass
class Explanation:
    name: str
    sections: list[tuple[str, list]]  # (title, [Step | Update])
    values: dict[str, float]  # every named value, by its text label
    updated: dict[str, float] = field(default_factory=dict)  # parameter -> value after a step
    learning_rate: float = 0.0
    optimizer: str = "SGD"
    loss_after: float = float("nan")
    digits: int = 9

    def number(self, v: float) -> str:
        return format_number(v, self.digits)

    def _sample(self) -> str:
        names = [k for k in self.values if re.fullmatch(r"[it]\d+", k)]
        return ", ".join(f"{k} = {self.number(self.values[k])}" for k in names)

    def text(self) -> str:
        out = [f"# {self.name}: one sample, {self._sample()}", ""]
        for title, steps in self.sections:
            out.append(f"# {title}")
            out.extend(self._line(s, latex=False) for s in steps)
            out.append("")
        out.append(f"E_total after the step = {self.number(self.loss_after)}")
        return "\n".join(out).rstrip() + "\n"

    def latex(self) -> str:
        out = [f"% {self.name}: one sample, {self._sample()}", ""]
        for title, steps in self.sections:
            out.append(f"% {title}")
            out.append(r"\begin{align*}")
            lines = [self._line(s, latex=True) for s in steps]
            out.append(" \\\\\n".join(lines))
            out.append(r"\end{align*}")
            out.append("")
        out.append(rf"$E_{{total}}^{{+}} = {self.number(self.loss_after)}$ after the step.")
        return "\n".join(out).rstrip() + "\n"

    def _line(self, s, latex: bool) -> str:
        name = (lambda lab: lab.tex) if latex else (lambda lab: lab.text)
        times = r" \cdot " if latex else " * "
        ntimes = r" \times " if latex else " * "
        eq = " &= " if latex else " = "
        if isinstance(s, Update):
            p = s.param.text
            after = self.updated[p]
            plus = name(s.param) + ("^{+}" if latex else "+")
            if s.grad is None:
                return f"{plus}{eq}{name(s.param)} = {self.number(after)}" + (
                    r" \text{ (not updated)}" if latex else "  (not updated)")
            if self.optimizer != "SGD":
                return f"{plus}{eq}{self.number(after)}" + (
                    rf" \text{{ (one {self.optimizer} step)}}" if latex
                    else f"  (one {self.optimizer} step)")
            eta = r"\eta" if latex else "eta"
            return (f"{plus}{eq}{name(s.param)} - {eta}{times}{name(s.grad)} = "
                    f"{self.number(self.values[p])} - {self.number(self.learning_rate)}"
                    f"{ntimes}{self.number(self.values[s.grad.text])} = {self.number(after)}")
        parts = [name(s.lhs)]
        if s.formula is not None:
            parts.append(name(s.formula))
        if s.terms and not (len(s.terms) == 1 and len(s.terms[0]) == 1):
            parts.append(" + ".join(times.join(name(f) for f in prod) for prod in s.terms))
            parts.append(" + ".join(ntimes.join(self.number(self.values[f.text]) for f in prod)
                                    for prod in s.terms))
            if s.show_terms and len(s.terms) > 1:
                parts.append(" + ".join(self.number(self.values[_product(prod).text])
                                        for prod in s.terms))
        parts.append(self.number(self.values[s.lhs.text]))
        return parts[0] + eq + " = ".join(parts[1:])


def format_number(v: float, digits: int = 9) -> str:
    """As the lecture prints them: `digits` decimals, trailing zeros dropped (0.74136507);
    scientific notation for values too small for that."""
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and abs(v) < 10.0 ** (-digits + 3):
        return f"{v:.{max(digits - 3, 1)}e}"
    s = f"{v:.{digits}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _product(prod: tuple[Label, ...]) -> Label:
    return Label(" * ".join(f.text for f in prod), r" \cdot ".join(f.tex for f in prod))


class _Quantities:
    """The named values the explain kernel returns, in order, each a sympy expression of the
    Program's symbols."""

    def __init__(self):
        self.items: dict[str, tuple[Label, sp.Expr]] = {}

    def add(self, label: Label, expr: sp.Expr) -> Label:
        self.items.setdefault(label.text, (label, sp.sympify(expr)))
        return label


def _inline_layer(expr: sp.Expr, defs: dict, temps: set) -> sp.Expr:
    """Substitute the layer's temporaries (softmax's exp_o1, exp_sum) until only nets and the
    shift remain."""
    for _ in range(10):
        free = expr.free_symbols & temps
        if not free:
            break
        expr = expr.xreplace({s: defs[s] for s in free})
    return expr


def check_explainable(spec) -> None:
    n = spec.n_params()
    if n > EXPLAIN_MAX_PARAMS:
        raise SymnetError(
            f"{spec.source}: network: explain shows networks of at most {EXPLAIN_MAX_PARAMS} "
            f"parameters (a few lines per weight), got {n}")
    if spec.loss.weight_decay:
        raise SymnetError(f"{spec.source}: loss.weight_decay: explain shows the chain rule of the "
                          "loss without weight decay; set it to 0 to explain this network")


def _vector(values, n: int, what: str, count: str) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if a.shape != (n,):
        raise SymnetError(f"{what}: expected {n} numbers ({count}), got {a.size}")
    if not np.all(np.isfinite(a)):
        raise SymnetError(f"{what}: expected finite numbers, got {a.tolist()}")
    return a


def explanation_steps(program, spec, lecture=None):
    """The sections of steps and the quantities the kernel must compute. The chain's local
    derivatives are the edges autodiff recorded for `lecture` (`lecture_program`; default:
    `program`), formatted, not derived again; every value is one of `program`'s."""
    lecture = program if lecture is None else lecture
    q = _Quantities()
    defs = program.definitions()
    temps = {a.lhs for a in program.forward if a.role == "temp"}
    layers = program.layers
    n_layers = len(layers)
    local = {(e.value, e.arg): e.local for e in lecture.edges}  # the record, by edge
    rank = {s: i for i, s in enumerate(program.param_symbols)}  # W1, b1, W2, ... row-major

    def d(v, u):  # dv/du; no edge: v does not use u
        return local.get((v, u), sp.Integer(0))

    def params_of(net):  # in the module's order: the weights by input, then the bias
        return sorted((u for v, u in local if v == net and u in rank), key=rank.get)

    # every symbol of the program is a named value
    for s in program.inputs + program.targets + program.param_symbols:
        q.add(name_label(s.name), s)
    for a in program.forward + program.backward:
        q.add(name_label(a.lhs.name), a.lhs)

    sections = []
    # forward: net = sum of w * (dnet/dw, the input w multiplies) + b (dnet/db = 1)
    for info in layers:
        steps = []
        wide = any(defs[o].free_symbols & temps for o in info.outs)
        for net in info.nets:
            steps.append(Step(name_label(net.name), tuple(
                (name_label(p.name),) if d(net, p) == 1 else
                (name_label(p.name), name_label(d(net, p).name)) for p in params_of(net))))
        for net, out in zip(info.nets, info.outs):
            rhs = _inline_layer(defs[out], defs, temps)
            if wide:  # softmax, written without its shift (which cancels)
                unit = net.name[4:-1]
                formula = Label(f"exp({net.name})/sum_k exp(net_{unit}k)",
                                rf"\frac{{e^{{{tex_name(net.name)}}}}}"
                                rf"{{\sum_k e^{{net_{{{unit}k}}}}}}")
            else:
                formula = Label(re.sub(r"\bx\b", net.name, info.formula), _latex(rhs))
            steps.append(Step(name_label(out.name), formula=formula))
        role = "output layer" if info.role == "output" else "hidden layer"
        sections.append((f"forward, layer {info.number} ({role}, {info.activation})", steps))

    # the error: one term per output unit
    last = layers[-1]
    loss = loss_def(spec.loss)
    per_unit = loss.expr(y, t, len(program.targets))
    e_terms, steps = [], []
    for out, tk, unit in zip(last.outs, program.targets, (o.name[4:] for o in last.outs)):
        term = per_unit.xreplace({y: out, t: tk})
        lab = q.add(Label(f"E_{unit}", tex_name(f"E_{unit}")), term)
        steps.append(Step(lab, formula=Label(str(term), _latex(term))))
        e_terms.append((lab,))
    steps.append(Step(name_label("E"), tuple(e_terms)))
    sections.append((f"error: E = {program.loss_formula}", steps))

    # backward, layer by layer from the output: each chain factor is an edge of the record
    delta: dict[sp.Symbol, Label] = {}  # net -> dE/dnet
    d_out: dict[sp.Symbol, Label] = {}  # out -> dE/dout
    d_act: dict[tuple, Label] = {}  # (out, net) -> dout/dnet
    grad_steps: dict[sp.Symbol, Step] = {}
    for li in range(n_layers - 1, -1, -1):
        info = layers[li]
        steps = []
        wide = any(defs[o].free_symbols & temps for o in info.outs)
        for out in info.outs:
            if li == n_layers - 1:
                lab = d_label("E", out.name)
                expr = d(lecture.loss, out)
                q.add(lab, _program_symbol(program, f"dE_d{out.name}", expr))
                steps.append(Step(lab, formula=Label(str(expr), _latex(expr))))
            else:
                nxt = layers[li + 1]
                prods = []
                for n2 in nxt.nets:
                    w = d(n2, out)
                    if w == 0:
                        continue
                    f = q.add(d_label(n2.name, out.name), w)
                    prods.append((delta[n2], f))
                    q.add(_product(prods[-1]), _value(q, delta[n2]) * w)
                lab = d_label("E", out.name)
                q.add(lab, _program_symbol(program, f"dE_d{out.name}",
                                           sum((_value(q, a) * _value(q, b) for a, b in prods),
                                               sp.Integer(0))))
                steps.append(Step(lab, tuple(prods), show_terms=True))
            d_out[out] = lab
        for net, out in zip(info.nets, info.outs):
            if wide:  # through the layer's temporaries, written in the nets (and the shift)
                prods = []
                for out_j in info.outs:
                    dj = _inline_layer(total_derivative(lecture.edges, out_j, net, temps), defs,
                                       temps)
                    f = q.add(d_label(out_j.name, net.name), dj)
                    prods.append((d_out[out_j], f))
                    q.add(_product(prods[-1]), _value(q, d_out[out_j]) * dj)
            else:
                f = q.add(d_label(out.name, net.name), d(out, net))
                d_act[(out, net)] = f
                steps.append(Step(f, formula=Label(str(d(out, net)), _latex(d(out, net)))))
                prods = [(d_out[out], f)]
            lab = d_label("E", net.name)
            q.add(lab, _program_symbol(program, f"delta_{net.name[4:]}",
                                       sum((_value(q, a) * _value(q, b) for a, b in prods),
                                           sp.Integer(0))))
            steps.append(Step(lab, tuple(prods), show_terms=wide))
            delta[net] = lab
        # gradients of this layer's parameters
        for p in (p for p in program.params if p.array[1:] == str(info.number)):
            units = [n for n in info.nets if (n, p.symbol) in local]
            prods = []
            for net in units:
                f = q.add(d_label(net.name, p.symbol.name), d(net, p.symbol))
                out = info.outs[info.nets.index(net)]
                if wide or len(units) > 1:
                    prods.append((delta[net], f))
                else:
                    prods.append((d_out[out], d_act[(out, net)], f))
                q.add(_product(prods[-1]), sp.Mul(*[_value(q, g) for g in prods[-1]]))
            lab = q.add(d_label("E", p.symbol.name), program.grads[p.symbol])
            grad_steps[p.symbol] = Step(lab, tuple(prods), show_terms=len(prods) > 1)
            steps.append(grad_steps[p.symbol])
        role = "output layer" if info.role == "output" else "hidden layer"
        sections.append((f"backward, layer {info.number} ({role})", steps))
    return q, sections


def lecture_program(spec, program):
    """The differentiated Program whose chain explain shows: the compiled one, unless the
    module computes the loss from the nets (bce after sigmoid, cross-entropy after softmax);
    the lecture's chain goes through dE/dout, so then the loss as the lecture writes it, in the
    outputs."""
    if loss_def(spec.loss).fused_with(spec.network.layers[-1].activation.name):
        return differentiate(lower(spec, fuse=False))
    return program


def _value(q: _Quantities, lab: Label) -> sp.Expr:
    return q.items[lab.text][1]


def _program_symbol(program, name: str, fallback: sp.Expr) -> sp.Expr:
    """The program's own value of that name (what the compiled module computes), if it has one."""
    for a in program.backward:
        if a.lhs.name == name:
            return a.lhs
    return fallback


def _latex(expr: sp.Expr) -> str:
    names = {s: tex_name(s.name) for s in expr.free_symbols}
    return sp.latex(expr, symbol_names=names)


def render_kernel(spec, program, q: _Quantities) -> str:
    """The explain kernel's source: every named value of `q` for one sample (the CPU
    backend's)."""
    return backends.get("cpu").render_explain(
        spec, program, [(lab.text, expr) for lab, expr in q.items.values()],
        version=__version__)


def explain(spec, x, target, *, out_dir=None, lr=None, params=None,
            digits: int = 9) -> Explanation:
    """The worked example for one sample: compile the spec (and its explain kernel), evaluate
    every named value, and take one training step with the compiled module.

    `x` and `target` are one sample's inputs and targets; `params` defaults to the module's
    init_params(); `lr` to the spec's learning rate."""
    spec = as_spec(spec)
    check_explainable(spec)
    net = spec.network
    x = _vector(x, net.inputs, "input", f"the network has {net.inputs} inputs")
    target = _vector(target, net.outputs, "target", f"the network has {net.outputs} outputs")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise SymnetError(f"lr: expected a positive finite number, got {lr!r}")
    out_dir = default_out_dir() if out_dir is None else out_dir

    compiled = build(spec, mode="scalar", strategy="store")
    module = import_module(write(compiled, out_dir), compiled.spec.name)
    program = compiled.program
    q, sections = explanation_steps(program, compiled.spec, lecture_program(compiled.spec, program))
    path = Path(out_dir) / f"{spec.name}_explain.py"
    write_if_changed(path, render_kernel(compiled.spec, program, q))
    kernel = import_module(path, f"{spec.name}_explain")

    params = module.init_params() if params is None else {
        k: np.array(v, dtype=module.DTYPE) for k, v in params.items()}
    flat = [params[p.array][p.index] if p.index else params[p.array] for p in program.params]
    v = kernel.explain(np.array(flat, dtype=float), x, target)
    values = {lab: float(val) for lab, val in zip(kernel.NAMES, v)}

    X, T = x[None, :], target[None, :]
    _check_against_module(module, program, params, X, T, values)

    lr = module.LEARNING_RATE if lr is None else lr
    stepped = {k: np.array(a, copy=True) for k, a in params.items()}
    module.train_step(stepped, X, T, lr)
    updated = {}
    rows = []
    for p in program.params:
        a = stepped[p.array]
        updated[p.symbol.name] = float(a[p.index] if p.index else a)
        is_updated = p.array in module.UPDATE
        rows.append(Update(name_label(p.symbol.name),
                           d_label("E", p.symbol.name) if is_updated else None))
    sections.append((f"one step ({module.OPTIMIZER}, learning rate eta = {format_number(lr)}); "
                     "the compiled module's train_step", rows))
    return Explanation(spec.name, sections, values, updated, float(lr),
                       module.OPTIMIZER, module.loss(stepped, X, T), digits)


def _check_against_module(module, program, params, X, T, values) -> None:
    """The explain kernel and the compiled module must agree (else this is a bug in symnet)."""
    tol = 1e-9 if module.DTYPE == np.float64 else 1e-4
    E, grads = module.grad(params, X, T)
    pairs = [(values["E_total"], E)]
    pairs += [(values[o.name], v) for o, v in zip(program.outputs, module.forward(params, X)[0])]
    for p in program.params:
        g = grads[p.array]
        pairs.append((values[f"dE/d{p.symbol.name}"], g[p.index] if p.index else g))
    for a, b in pairs:
        if not abs(a - float(b)) <= tol * (1 + abs(float(b))):
            raise RuntimeError(f"symnet bug: the explain kernel gives {a}, the compiled module "
                               f"{float(b)}")
