"""Stage 2: a `Spec` becomes a `Program` in scalar form (one symbol per weight, bias, input).

Names follow the lecture: inputs i1, i2; hidden units h1, h2 (h<l>_<j> when there is more
than one hidden layer); outputs o1, o2; net_h1 = w1*i1 + w2*i2 + b1, out_h1 = f(net_h1).
Weights are numbered w1, w2, ... row by row through W1, W2, ... exactly as in the lecture
(w5 = W2[0, 0]). The per-sample loss is E.
"""

from __future__ import annotations

import sympy as sp

from .layers import SAMPLE_INDEX, LayerProgram, layer_program, loss_sum, softmax_steps, unit_out
from .program import Assign, LayerInfo, ParamEntry, Program
from .spec import Spec

__all__ = ["SAMPLE_INDEX", "lower", "unit_names", "unroll"]


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def unit_names(spec: Spec) -> list[list[str]]:
    """The lecture's unit names, per layer: [['h1', 'h2'], ['o1', 'o2']]."""
    return _names([layer.units for layer in spec.network.layers])


def _names(widths: list[int]) -> list[list[str]]:
    names = []
    for ln, units in enumerate(widths, start=1):
        if ln == len(widths):
            prefix = "o"
        elif len(widths) == 2:
            prefix = "h"
        else:
            prefix = f"h{ln}_"
        names.append([f"{prefix}{j}" for j in range(1, units + 1)])
    return names


def lower(spec: Spec, *, fuse: bool = True) -> Program:
    return unroll(layer_program(spec), fuse=fuse)


def unroll(program: LayerProgram, *, fuse: bool = True) -> Program:
    """The layer-level program unrolled into scalar form: a symbol per weight, bias, unit."""
    names = _names([layer.units for layer in program.layers])
    inputs = tuple(_sym(f"i{j}") for j in range(1, program.inputs + 1))
    targets = tuple(_sym(f"t{k}") for k in range(1, program.outputs + 1))
    params: list[ParamEntry] = []
    forward: list[Assign] = []
    layers: list[LayerInfo] = []
    prev = inputs
    w_count = 0
    softmax = None
    known = {}  # edges the layer-level program already derived (Program.known)
    for layer in program.layers:
        ln = layer.number
        if layer.bias == "shared":
            shared_b = _sym(f"b{ln}")
        nets, outs = [], []
        for j, unit in enumerate(names[ln - 1]):
            terms = []
            for k, a_in in enumerate(prev):
                w_count += 1
                w = _sym(f"w{w_count}")
                params.append(ParamEntry(w, f"W{ln}", (j, k)))
                terms.append(w * a_in)
            if layer.bias == "per_unit":
                b = _sym(f"b{ln}_{j + 1}")
                params.append(ParamEntry(b, f"b{ln}", (j,)))
                terms.append(b)
            elif layer.bias == "shared":
                b = shared_b
                terms.append(b)
            n_sym, o_sym = _sym(f"net_{unit}"), _sym(f"out_{unit}")
            forward.append(Assign(n_sym, sp.Add(*terms), "net", layer=ln))
            if layer.form is not None:
                step, known[o_sym, n_sym] = unit_out(layer, n_sym, o_sym)
                forward.append(step)
            nets.append(n_sym)
            outs.append(o_sym)
        if layer.form is None:
            steps, softmax = softmax_steps(layer, nets, outs, names[ln - 1])
            forward.extend(steps)
        if layer.bias == "shared":
            params.append(ParamEntry(shared_b, f"b{ln}", ()))
        # keep the parameter table in the order W1, b1, W2, b2 with row-major indices
        layers.append(LayerInfo(
            number=ln, role=layer.role, activation=layer.described, formula=layer.formula,
            nets=tuple(nets), outs=tuple(outs), bias=layer.bias))
        prev = tuple(outs)

    params_t = _ordered(params)
    E = _sym("E")
    rhs, formula = loss_sum(program, layers[-1].nets, layers[-1].outs, targets, softmax, fuse)
    if program.decay is not None:
        weights = [p.symbol for p in params_t if p.array.startswith("W")]
        decay, decay_formula = program.decay.per_sample(weights)
        rhs, formula = rhs + decay, f"{formula} + {decay_formula}"
        # E uses the weights only in the decay: dE/dw is the term's gradient
        known.update({(E, w): program.decay.per_sample_grad(w) for w in weights})
    forward.append(Assign(E, rhs, "loss", comment=f"E = {formula}"))
    return Program(inputs=inputs, targets=targets, params=params_t,
                   layers=tuple(layers), forward=tuple(forward), outputs=prev, loss=E,
                   loss_formula=formula, known=known)


def _ordered(params: list[ParamEntry]) -> tuple[ParamEntry, ...]:
    """W1, b1, W2, b2, ... (as `Spec.param_shapes`), each row-major."""
    return tuple(sorted(params, key=lambda p: (int(p.array[1:]), p.array[0] == "b", p.index)))

