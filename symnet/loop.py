"""Stage 2 (wide networks): a `Spec` becomes a `LoopProgram`, the per-layer matrix form.

z = a_prev @ W.T + b and delta_prev = (delta @ W) * f'(z) are the matrix parts (emitted as
`np.dot`); everything elementwise is derived here with sympy, from the same registry and the
same reverse mode as the scalar form:

- each hidden layer's activation f(x) and its derivative, written in the stored output where
  that is cheaper (sigmoid' = y(1 - y), tanh' = 1 - y^2);
- the output layer, for one sample, as a small scalar Program of its nets: the activation
  (softmax included), the loss (fused with the activation where that is stable) and, by
  `autodiff.differentiate`, each delta_k = dE/dnet_k; run through `sympy.cse`;
- weight decay lambda * sum w^2 and its derivative, elementwise over the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .autodiff import differentiate, output_form
from .functions import activation_def, x, y
from .lower import _layer_wide, _loss
from .program import Assign, LayerInfo, ParamEntry, Program
from .schedule import cse_block, eliminate_dead
from .spec import Spec

Z = sp.Symbol("z", real=True)  # a pre-activation (net) in the emitted loops
OUT = sp.Symbol("y", real=True)  # the unit's output
W = sp.Symbol("w", real=True)  # a weight, for the weight-decay terms


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


@dataclass(frozen=True)
class LoopProgram:
    inputs: int
    layers: tuple[LoopLayer, ...]
    output: OutputBlock
    loss_formula: str
    decay: sp.Expr | None  # lambda * w^2 for one weight, or None
    decay_grad: sp.Expr | None  # its derivative in w

    @property
    def outputs(self) -> int:
        return self.layers[-1].units


def lower_loop(spec: Spec) -> LoopProgram:
    layers = []
    units_in = spec.network.inputs
    for ln, layer in enumerate(spec.network.layers, start=1):
        entry = activation_def(layer.activation)
        if entry.layer_wide:
            f = d = sp.Integer(0)  # only as the output layer, handled by the OutputBlock
        else:
            f = entry.expr(x, **layer.activation.kwargs)
            d = output_form(sp.diff(f, x), x, {x: (y, f)})
        layers.append(LoopLayer(
            number=ln, units=layer.units, units_in=units_in, bias=layer.bias,
            activation=layer.activation.describe(), formula=entry.formula,
            out=f.xreplace({x: Z}), derivative=d.xreplace({x: Z, y: OUT})))
        units_in = layer.units
    output = output_block(spec)
    decay = decay_grad = None
    if spec.loss.weight_decay:
        decay = sp.Float(spec.loss.weight_decay) * W ** 2
        decay_grad = sp.diff(decay, W)
    return LoopProgram(inputs=spec.network.inputs, layers=tuple(layers), output=output,
                       loss_formula=_loss_formula(spec), decay=decay, decay_grad=decay_grad)


def _loss_formula(spec: Spec) -> str:
    from .functions import loss_def

    text = loss_def(spec.loss).formula
    if spec.loss.weight_decay:
        text += f" (+ {spec.loss.weight_decay!r}*sum w^2 once per batch)"
    return text


def output_block(spec: Spec) -> OutputBlock:
    """The output layer and the loss for one sample, differentiated by the scalar reverse
    mode with the nets as the leaves: delta_k = dE/dnet_k."""
    last = spec.network.layers[-1]
    ln = len(spec.network.layers)
    act = activation_def(last.activation)
    k_units = range(1, last.units + 1)
    nets = tuple(sp.Symbol(f"net_o{k}", real=True) for k in k_units)
    outs = tuple(sp.Symbol(f"out_o{k}", real=True) for k in k_units)
    targets = tuple(sp.Symbol(f"t{k}", real=True) for k in k_units)
    forward: list[Assign] = []
    softmax = None
    if act.layer_wide:
        softmax = _layer_wide(act, ln, list(nets), list(outs), [f"o{k}" for k in k_units],
                              forward)
    else:
        for n_sym, o_sym in zip(nets, outs):
            forward.append(Assign(o_sym, act.expr(n_sym, **last.activation.kwargs), "out",
                                  layer=ln))
    info = LayerInfo(number=ln, role="output", activation=last.activation.describe(),
                     formula=act.formula, nets=nets, outs=outs, bias=last.bias)
    rhs, formula = _loss(spec, info, targets, softmax)
    E = sp.Symbol("E", real=True)
    forward.append(Assign(E, rhs, "loss", comment=f"E = {formula}"))
    program = differentiate(Program(
        inputs=(), targets=targets, params=tuple(ParamEntry(n, "net", (k,))
                                                 for k, n in enumerate(nets)),
        layers=(info,), forward=tuple(forward), outputs=outs, loss=E, loss_formula=formula))
    deltas = tuple(program.grads[n] for n in nets)
    steps = list(program.forward + program.backward)
    return OutputBlock(
        nets=nets, outs=outs, targets=targets, loss=E, deltas=deltas,
        forward=tuple(cse_block(eliminate_dead([a for a in steps if a.role != "loss"],
                                               set(outs)))),
        loss_steps=tuple(cse_block(eliminate_dead(list(program.forward), {E}))),
        grad_steps=tuple(cse_block(eliminate_dead(steps, {E, *deltas}))))
