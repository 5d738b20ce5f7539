"""Stage 2 (wide networks): a `Spec` becomes a `LoopProgram`, the per-layer matrix form.

Built from the same `LayerProgram` (symnet.layers) as the scalar form. z = a_prev @ W.T + b
and delta_prev = (delta @ W) * f'(z) are the matrix parts (emitted as `np.dot`); everything
elementwise comes from the layer-level program, nothing is derived here a second time:

- each hidden layer's activation f and its derivative, its `ActivationForm` (f' written in the
  stored output where that is cheaper: sigmoid' = y(1 - y), tanh' = 1 - y^2), in z and y;
- the output layer, for one sample, as a small scalar Program of its nets: the activation
  (softmax included), the loss (fused with the activation where that is stable) and, by
  `autodiff.differentiate`, each delta_k = dE/dnet_k; run through `sympy.cse`;
- weight decay: the `WeightDecay` term lambda*w^2 and its gradient, elementwise over the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from .autodiff import differentiate, local_derivative
from .functions import x, y
from .layers import LayerProgram, W, WeightDecay, layer_program, loss_sum, softmax_steps, unit_out
from .program import Assign, LayerInfo, ParamEntry, Program
from .schedule import cse_block, derived_block, eliminate_dead
from .spec import Spec
from .tangent import Derived, almost_everywhere, delta_tangents, output_jacobian

Z = sp.Symbol("z", real=True)  # a pre-activation (net) in the emitted loops
OUT = sp.Symbol("y", real=True)  # the unit's output

__all__ = ["OUT", "W", "Z", "LoopLayer", "LoopProgram", "OutputBlock", "lower_loop",
           "output_block"]


@dataclass(frozen=True)
class LoopLayer:
    number: int
    units: int
    units_in: int
    bias: str
    activation: str  # described, e.g. "leaky_relu(alpha=0.2)"
    formula: str
    out: sp.Expr  # f(z); unused for the output layer (see OutputBlock)
    derivative: sp.Expr  # f'(z), in y where cheaper, else in z; unused for the output layer
    # f''(z) = d f'/dz + d f'/dy * f' (f' read in z and y = f(z)), zero where f' has a kink:
    # the Hessian-vector product's backward pass; unused for the output layer
    second: sp.Expr = sp.Integer(0)


@dataclass(frozen=True)
class OutputBlock:
    """The output layer of one sample in scalar form: names net_o1.. out_o1.. t1.. E."""

    nets: tuple[sp.Symbol, ...]
    outs: tuple[sp.Symbol, ...]
    targets: tuple[sp.Symbol, ...]
    loss: sp.Symbol
    deltas: tuple[sp.Symbol, ...]  # dE/dnet_k
    forward: tuple[Assign, ...]  # computes the outs
    loss_steps: tuple[Assign, ...]  # computes E
    grad_steps: tuple[Assign, ...]  # computes E and the deltas
    # d out_k / d net_j (forward mode over `forward`, symnet/tangent.py): the lines, then a
    # row per output of one expression per net (0 where it vanishes)
    jacobian: Derived | None = None
    # R{delta_k}: the deltas' tangents along tangents R_net_o<k> of the nets (the Hessian of
    # E in the nets times them; symnet/tangent.py), for the Hessian-vector product; results:
    # E, then one expression per net
    hvp: Derived | None = None


@dataclass(frozen=True)
class LoopProgram:
    inputs: int
    layers: tuple[LoopLayer, ...]
    output: OutputBlock
    loss_text: str  # the per-sample loss's formula, without the weight decay
    decay: WeightDecay | None  # lambda * w^2 for one weight and its gradient, or None

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    @property
    def loss_formula(self) -> str:
        return _with_decay(self.loss_text, self.decay)

    @cached_property
    def symbolic_decay(self) -> WeightDecay | None:
        """The decay with lambda the symbol `lam`, for a kernel shared by every value of
        lambda (the CPU kernel file)."""
        return self.decay and self.decay.with_symbol()

    @property
    def symbolic_loss_formula(self) -> str:
        return _with_decay(self.loss_text, self.symbolic_decay)


def _with_decay(text: str, decay: WeightDecay | None) -> str:
    return text if decay is None else f"{text} (+ {decay.once_per_batch})"


def lower_loop(spec: Spec) -> LoopProgram:
    return loop_form(layer_program(spec))


def loop_form(program: LayerProgram) -> LoopProgram:
    """The layer-level program with its layers kept as matrices."""
    layers = []
    for L in program.layers:
        if L.form is None:
            f = d = sp.Integer(0)  # only as the output layer, handled by the OutputBlock
        else:
            f, d = L.form.out, L.form.derivative
        d = d.xreplace({x: Z, y: OUT})
        layers.append(LoopLayer(
            number=L.number, units=L.units, units_in=L.units_in, bias=L.bias,
            activation=L.described, formula=L.formula,
            out=f.xreplace({x: Z}), derivative=d, second=_second(d)))
    return LoopProgram(inputs=program.inputs, layers=tuple(layers), output=_output(program),
                       loss_text=program.loss_def.formula, decay=program.decay)


def _second(d: sp.Expr) -> sp.Expr:
    """f'' from f' written in z and y = f(z): the total derivative d f'/dz + d f'/dy * f',
    by the one rule (`local_derivative`), almost everywhere."""
    if d == 0:
        return sp.Integer(0)
    total = local_derivative(d, Z) + local_derivative(d, OUT) * d
    return almost_everywhere(total)


def output_block(spec: Spec) -> OutputBlock:
    return _output(layer_program(spec))


def _output(program: LayerProgram) -> OutputBlock:
    """The output layer and the loss for one sample, differentiated by the scalar reverse
    mode with the nets as the leaves: delta_k = dE/dnet_k."""
    last = program.layers[-1]
    ln = last.number
    k_units = range(1, last.units + 1)
    nets = tuple(sp.Symbol(f"net_o{k}", real=True) for k in k_units)
    outs = tuple(sp.Symbol(f"out_o{k}", real=True) for k in k_units)
    targets = tuple(sp.Symbol(f"t{k}", real=True) for k in k_units)
    forward: list[Assign] = []
    softmax = None
    known = {}  # the layer-level program's derivatives (Program.known)
    if last.form is None:
        forward, softmax = softmax_steps(last, nets, outs, [f"o{k}" for k in k_units])
    else:
        for n_sym, o_sym in zip(nets, outs):
            step, known[o_sym, n_sym] = unit_out(last, n_sym, o_sym)
            forward.append(step)
    info = LayerInfo(number=ln, role="output", activation=last.described,
                     formula=last.formula, nets=nets, outs=outs, bias=last.bias)
    rhs, formula = loss_sum(program, nets, outs, targets, softmax)
    E = sp.Symbol("E", real=True)
    forward.append(Assign(E, rhs, "loss", comment=f"E = {formula}"))
    scalar = differentiate(Program(
        inputs=(), targets=targets, params=tuple(ParamEntry(n, "net", (k,))
                                                 for k, n in enumerate(nets)),
        layers=(info,), forward=tuple(forward), outputs=outs, loss=E, loss_formula=formula,
        known=known))
    deltas = tuple(scalar.grads[n] for n in nets)
    steps = list(scalar.forward + scalar.backward)
    return OutputBlock(
        nets=nets, outs=outs, targets=targets, loss=E, deltas=deltas,
        forward=tuple(cse_block(eliminate_dead([a for a in steps if a.role != "loss"],
                                               set(outs)))),
        loss_steps=tuple(cse_block(eliminate_dead(list(scalar.forward), {E}))),
        grad_steps=tuple(cse_block(eliminate_dead(steps, {E, *deltas}))),
        jacobian=derived_block(output_jacobian(scalar, nets)),
        hvp=derived_block(delta_tangents(scalar, nets), keep=(E, *deltas)))
