"""Stage 2 (wide networks): a `Spec` becomes a `LoopProgram`, the per-layer matrix form.

z = a_prev @ W.T + b and delta_prev = (delta @ W) * f'(z) are the matrix parts (emitted as
`np.dot`); everything elementwise is a sympy expression derived here from the registry:
each activation f(x), its derivative written in the stored output where that is cheaper
(the same rewrite as the scalar form), and at the output layer the loss term and its
derivative with respect to the pre-activation, fused and run through `sympy.cse`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .autodiff import output_form
from .functions import ACTIVATIONS, LOSSES, t, x, y
from .lower import fused_loss
from .spec import Spec

Z = sp.Symbol("z", real=True)  # a pre-activation (net) in the emitted loops
OUT = sp.Symbol("y", real=True)  # the unit's output
TARGET = sp.Symbol("t", real=True)


@dataclass(frozen=True)
class LoopLayer:
    number: int
    units: int
    units_in: int
    bias: str
    activation: str  # described, e.g. "leaky_relu(alpha=0.2)"
    formula: str
    out: sp.Expr  # f(z)
    derivative: sp.Expr  # f'(z), in y where cheaper, else in z


@dataclass(frozen=True)
class LoopProgram:
    inputs: int
    layers: tuple[LoopLayer, ...]
    # the output layer, per unit: E_k and dE_k/dz_k in z, y and t, after CSE
    output_temps: tuple[tuple[sp.Symbol, sp.Expr], ...]
    loss_term: sp.Expr
    delta: sp.Expr
    loss_formula: str

    @property
    def outputs(self) -> int:
        return self.layers[-1].units


def lower_loop(spec: Spec) -> LoopProgram:
    layers = []
    units_in = spec.network.inputs
    for ln, layer in enumerate(spec.network.layers, start=1):
        entry = ACTIVATIONS[layer.activation.name]
        f = entry.expr(x, **layer.activation.kwargs)
        d = output_form(sp.diff(f, x), x, {x: (y, f)})
        layers.append(LoopLayer(
            number=ln, units=layer.units, units_in=units_in, bias=layer.bias,
            activation=layer.activation.describe(), formula=entry.formula,
            out=f.xreplace({x: Z}), derivative=d.xreplace({x: Z, y: OUT})))
        units_in = layer.units

    last = spec.network.layers[-1]
    loss_def = LOSSES[spec.loss.kind]
    f_out = ACTIVATIONS[last.activation.name].expr(x, **last.activation.kwargs)
    per_unit = loss_def.expr(y, t, spec.network.outputs)
    if loss_def.requires_output:
        term = fused_loss(per_unit, f_out)  # in x (the net) and t
    else:
        term = per_unit.xreplace({y: f_out})
    # dE/dnet, through the activation, then written in the stored output where cheaper
    delta = output_form(sp.diff(term, x), x, {x: (y, f_out)})
    if not loss_def.requires_output:
        term = per_unit  # the loss itself needs only the output
    subs = {x: Z, y: OUT, t: TARGET}
    temps, (loss_term, delta) = sp.cse([term.xreplace(subs), delta.xreplace(subs)],
                                       symbols=sp.numbered_symbols("c", real=True),
                                       order="none")
    return LoopProgram(inputs=spec.network.inputs, layers=tuple(layers),
                       output_temps=tuple(temps), loss_term=loss_term, delta=delta,
                       loss_formula=loss_def.formula)
