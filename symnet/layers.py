"""Stage 2, first half: a `Spec` becomes a `LayerProgram`, the network layer by layer.

Both forms are built from it, by plain functions: `symnet.lower.lower` unrolls it into the
scalar `Program` (one symbol per weight), `symnet.loop.lower_loop` keeps its layers as
matrices. What they share is here, once:

- each layer's activation as an `ActivationForm`: f(x) and f'(x), the derivative by the one
  rule reverse mode uses for every edge (`autodiff.local_derivative`, written in the stored
  output y = f(x) where that is cheaper), derived once per activation;
- a layer-wide (softmax) output layer as named steps (`softmax_steps`), and the per-sample loss
  over the output units, fused with the output activation where that is stable (`loss_sum`);
- weight decay as one `WeightDecay` term: lambda*w^2 for one weight and its gradient, derived
  once from `DECAY_TERM`; both forms and every backend take the term and the gradient from it
  (the loop forms' templates print it with one macro, common/macros.jinja's add_decay), and
  symnet.torch evaluates `DECAY_TERM` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from .autodiff import local_derivative
from .functions import ActivationDef, LossDef, activation_def, loss_def, t, x, y
from .program import Assign
from .spec import Activation, Loss, Spec

W = sp.Symbol("w", real=True)  # a weight, for the weight-decay term
LAM = sp.Symbol("lam", positive=True)  # the weight decay's lambda ([loss] weight_decay)
# The weight decay of one weight: the one definition, summed over every weight (biases
# excluded) and added once to the batch loss.
DECAY_TERM = LAM * W ** 2

# the kernels' loop variable over the samples of a batch (see templates/cpu/module.py.jinja)
SAMPLE_INDEX = sp.Symbol("s", integer=True, nonnegative=True)


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class ActivationForm:
    """A per-unit activation in the registry's x: f(x), and f'(x) in y = f(x) where cheaper."""

    out: sp.Expr
    derivative: sp.Expr


@lru_cache(maxsize=256)
def _form(f: sp.Expr) -> ActivationForm:
    return ActivationForm(f, local_derivative(f, x, {x: (y, f)}))


def activation_form(activation: Activation) -> ActivationForm | None:
    """f and f' of a spec's activation (None for a layer-wide one: see `softmax_steps`)."""
    entry = activation_def(activation)
    if entry.layer_wide:
        return None
    return _form(entry.expr(x, **activation.kwargs))


@dataclass(frozen=True)
class Layer:
    number: int  # 1-based
    role: str  # "hidden" | "output"
    units: int
    units_in: int
    bias: str  # "per_unit" | "shared" | "none"
    activation: Activation  # the spec's
    definition: ActivationDef  # its registry entry or custom formula
    form: ActivationForm | None  # None: layer-wide (softmax), only as the output layer

    @property
    def described(self) -> str:
        return self.activation.describe()

    @property
    def formula(self) -> str:
        return self.definition.formula


def unit_out(layer: Layer, net: sp.Symbol, out: sp.Symbol) -> tuple[Assign, sp.Expr]:
    """out = f(net) for one unit of a per-unit activation, and d out/d net (f', in out where
    cheaper): the assignment and its edge, as both forms' scalar programs take them."""
    step = Assign(out, layer.form.out.xreplace({x: net}), "out", layer=layer.number)
    return step, layer.form.derivative.xreplace({x: net, y: out})


@dataclass(frozen=True)
class WeightDecay:
    """lambda * sum of every weight squared (biases excluded), added once to the batch loss."""

    lam: float
    reduction: str  # the loss's: where the scalar form adds the term (`per_sample`)
    term: sp.Expr  # lambda*w^2, for one weight w (the symbol W)
    grad: sp.Expr  # d term / dw
    second: sp.Expr = sp.Integer(0)  # d grad / dw (the Hessian-vector product's diagonal term)

    def total(self, weights) -> sp.Expr:
        """The term summed over `weights`."""
        return sp.Add(*[self.term.xreplace({W: w}) for w in weights])

    def per_sample(self, weights) -> tuple[sp.Expr, str]:
        """The term in the scalar form's per-sample E, and its formula. The kernels sum E over
        the batch and then reduce: under reduction "mean" the term is in every sample's E (the
        mean of N copies is the term itself), under "sum" only in the first sample's (s == 0).
        Either way the batch loss is reduce(E_s) + lambda * sum w^2."""
        total = self.total(weights)
        text = f"{self.lam!r}*sum w^2"
        if self.reduction == "mean":
            return total, f"{text} (weight decay: in every sample's E, so once in the mean)"
        once = sp.Piecewise((total, sp.Eq(SAMPLE_INDEX, 0)), (0, True))
        return once, f"{text} (weight decay: in the first sample's E, so once in the sum)"

    def per_sample_grad(self, w: sp.Symbol) -> sp.Expr:
        """d/dw of `per_sample`'s term: the gradient at w, under "sum" in the first sample's."""
        grad = self.grad.xreplace({W: w})
        if self.reduction == "mean":
            return grad
        return sp.Piecewise((grad, sp.Eq(SAMPLE_INDEX, 0)), (0, True))

    @property
    def symbolic(self) -> bool:
        """Whether lambda is the symbol LAM (read at run time) rather than its value."""
        return self.term.has(LAM)

    @property
    def once_per_batch(self) -> str:
        """The loop form's formula: the term is added after the reduction."""
        return f"{'lam' if self.symbolic else repr(self.lam)}*sum w^2 once per batch"

    def with_symbol(self) -> WeightDecay:
        """The same decay with lambda kept as the symbol LAM (printed `lam`), for the CPU loop
        form's kernel file, which reads its value from a table at run time so that networks
        differing only in lambda share one compiled kernel."""
        return _decay(self.lam, self.reduction, DECAY_TERM)


def _decay(lam: float, reduction: str, term: sp.Expr) -> WeightDecay:
    grad = local_derivative(term, W)
    return WeightDecay(lam, reduction, term, grad, local_derivative(grad, W))


def weight_decay(loss: Loss) -> WeightDecay | None:
    if not loss.weight_decay:
        return None
    return _decay(loss.weight_decay, loss.reduction,
                  DECAY_TERM.xreplace({LAM: sp.Float(loss.weight_decay)}))


@dataclass(frozen=True)
class LayerProgram:
    inputs: int
    layers: tuple[Layer, ...]
    loss: Loss  # the spec's
    loss_def: LossDef
    decay: WeightDecay | None

    @property
    def outputs(self) -> int:
        return self.layers[-1].units


def layer_program(spec: Spec) -> LayerProgram:
    net = spec.network
    layers, units_in = [], net.inputs
    for ln, layer in enumerate(net.layers, start=1):
        layers.append(Layer(
            number=ln, role="output" if ln == len(net.layers) else "hidden", units=layer.units,
            units_in=units_in, bias=layer.bias, activation=layer.activation,
            definition=activation_def(layer.activation),
            form=activation_form(layer.activation)))
        units_in = layer.units
    return LayerProgram(inputs=net.inputs, layers=tuple(layers), loss=spec.loss,
                        loss_def=loss_def(spec.loss), decay=weight_decay(spec.loss))


@dataclass(frozen=True)
class Softmax:
    """The named values of a layer-wide (softmax) output layer, for the fused losses."""

    shift: sp.Symbol  # m = max_k net_k
    total: sp.Symbol  # sum_k f(net_k - m)


class ShiftMax(sp.Max):
    """max(net_1, ..., net_K), the softmax's shift, left as written: sympy's Max compares every
    pair of its arguments each time it is built (and cse and xreplace build it again), about
    0.1 s for ten outputs, for a value that is only printed (autodiff treats it as a constant).
    It prints as Max; of numbers (a value substituted for every net) it is their maximum."""

    def __new__(cls, *args, **options):
        args = [sp.sympify(a) for a in args]
        if all(a.is_Number for a in args):
            return sp.Max(*args)
        return sp.Max.__new__(cls, *args, evaluate=False)


def softmax_steps(layer: Layer, nets, outs, units) -> tuple[list[Assign], Softmax]:
    """out_k = f(net_k - m) / sum_j f(net_j - m), m = max_j net_j, as named values.

    Subtracting m changes nothing mathematically (the quotient is shift-invariant) but keeps
    every exp(net_k - m) <= 1, so nothing overflows; m gets role "shift", which autodiff
    treats as a constant (its total derivative is zero)."""
    ln, build = layer.number, layer.definition.build
    shift, total = _sym("max_net"), _sym("exp_sum")
    steps = [Assign(shift, ShiftMax(*nets), "shift", layer=ln,
                    comment="max_k net_k: shifts the exponents below to <= 0")]
    parts = []
    for n_sym, unit in zip(nets, units):
        part = _sym(f"exp_{unit}")
        steps.append(Assign(part, build(n_sym - shift), "temp", layer=ln,
                            comment=f"exp({n_sym} - {shift}) <= 1: cannot overflow"))
        parts.append(part)
    steps.append(Assign(total, sp.Add(*parts), "temp", layer=ln,
                        comment="the softmax's denominator, at least 1"))
    for part, o_sym in zip(parts, outs):
        steps.append(Assign(o_sym, part / total, "out", layer=ln))
    return steps, Softmax(shift, total)


def loss_sum(program: LayerProgram, nets, outs, targets, softmax: Softmax | None,
             fuse: bool = True) -> tuple[sp.Expr, str]:
    """The per-sample loss (summed over the output units) and its formula. Without `fuse`,
    always in the outputs, as the lecture writes it (symnet explain's chain)."""
    loss, last = program.loss_def, program.layers[-1]
    per_unit = loss.expr(y, t, len(targets))  # in the registry's y (output) and t (target)
    if fuse and softmax is not None and loss.fused_with(last.activation.name):
        # y = exp(x - m)/S: the logarithms expand into log-sum-exp of the nets, e.g. for
        # cross_entropy -t*log(y) = t*(m + log(S) - x): nothing overflows or underflows
        y_of_net = last.definition.build(x - softmax.shift) / softmax.total
        per_unit = sp.expand_log(per_unit.xreplace({y: y_of_net}), force=True)
        arg, values = x, nets
    elif fuse and loss.fused_with(last.activation.name):
        # computed from the pre-activation: y = f(x) substituted and simplified, which turns
        # bce into the stable softplus form log(1 + exp(x)) - t*x
        per_unit, arg, values = fused_loss(per_unit, last.form.out), x, nets
    else:
        arg, values = y, outs
    terms = [per_unit.xreplace({arg: v, t: t_sym}) for v, t_sym in zip(values, targets)]
    return sp.Add(*terms), loss.formula


_FUSED: dict = {}


def fused_loss(loss_in_y: sp.Expr, act_in_x: sp.Expr) -> sp.Expr:
    """The loss with y = act(x) substituted and simplified, e.g. bce -> log(1 + exp(x)) - t*x:
    each logarithm's argument cancelled, the logarithms expanded, then the sum expanded, with
    its common factors taken out where that is shorter. For the registry's fused pairs that is
    the form sympy's simplify gives (tests/test_passes.py), without its cost: simplify's first
    call imports sympy.physics.units, a tenth of a second of every cold compile."""
    key = (loss_in_y, act_in_x)
    if key not in _FUSED:
        fused = loss_in_y.xreplace({y: act_in_x}).replace(sp.log, lambda u: sp.log(sp.cancel(u)))
        fused = sp.expand(sp.expand_log(fused, force=True))
        _FUSED[key] = min((fused, sp.factor_terms(fused)), key=sp.count_ops)
    return _FUSED[key]
