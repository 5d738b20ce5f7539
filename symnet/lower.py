"""Stage 2: a `Spec` becomes a `Program` in scalar form (one symbol per weight, bias, input).

Names follow the lecture: inputs i1, i2; hidden units h1, h2 (h<l>_<j> when there is more
than one hidden layer); outputs o1, o2; net_h1 = w1*i1 + w2*i2 + b1, out_h1 = f(net_h1).
Weights are numbered w1, w2, ... row by row through W1, W2, ... exactly as in the lecture
(w5 = W2[0, 0]). The per-sample loss is E.
"""

from __future__ import annotations

import sympy as sp

from .functions import ACTIVATIONS, LOSSES, t, x, y
from .program import Assign, LayerInfo, ParamEntry, Program
from .spec import Spec


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def unit_names(spec: Spec) -> list[list[str]]:
    """The lecture's unit names, per layer: [['h1', 'h2'], ['o1', 'o2']]."""
    n_layers = len(spec.network.layers)
    names = []
    for ln, layer in enumerate(spec.network.layers, start=1):
        if ln == n_layers:
            prefix = "o"
        elif n_layers == 2:
            prefix = "h"
        else:
            prefix = f"h{ln}_"
        names.append([f"{prefix}{j}" for j in range(1, layer.units + 1)])
    return names


def lower(spec: Spec) -> Program:
    net = spec.network
    inputs = tuple(_sym(f"i{j}") for j in range(1, net.inputs + 1))
    targets = tuple(_sym(f"t{k}") for k in range(1, net.outputs + 1))
    params: list[ParamEntry] = []
    forward: list[Assign] = []
    layers: list[LayerInfo] = []
    prev = inputs
    w_count = 0
    nets_of_last: tuple[sp.Symbol, ...] = ()
    names = unit_names(spec)
    for ln, layer in enumerate(net.layers, start=1):
        act = ACTIVATIONS[layer.activation.name]
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
            forward.append(Assign(o_sym, act.expr(n_sym, **layer.activation.kwargs), "out",
                                  layer=ln))
            nets.append(n_sym)
            outs.append(o_sym)
        if layer.bias == "shared":
            params.append(ParamEntry(shared_b, f"b{ln}", ()))
        # keep the parameter table in the order W1, b1, W2, b2 with row-major indices
        layers.append(LayerInfo(
            number=ln, role="output" if ln == len(net.layers) else "hidden",
            activation=layer.activation.describe(), formula=act.formula,
            nets=tuple(nets), outs=tuple(outs), bias=layer.bias))
        prev = tuple(outs)
        nets_of_last = tuple(nets)

    loss_def = LOSSES[spec.loss.kind]
    last = net.layers[-1]
    per_unit = loss_def.expr(y, t, net.outputs)  # in the registry's y (output) and t (target)
    if loss_def.requires_output:
        # computed from the pre-activation: y = f(x) substituted and simplified, which turns
        # bce into the stable softplus form log(1 + exp(x)) - t*x
        act = ACTIVATIONS[last.activation.name].expr(x, **last.activation.kwargs)
        per_unit, arg, values = fused_loss(per_unit, act), x, nets_of_last
    else:
        arg, values = y, prev
    terms = [per_unit.xreplace({arg: v, t: t_sym}) for v, t_sym in zip(values, targets)]
    E = _sym("E")
    forward.append(Assign(E, sp.Add(*terms), "loss", comment=f"E = {loss_def.formula}"))
    return Program(inputs=inputs, targets=targets, params=_ordered(params, spec),
                   layers=tuple(layers), forward=tuple(forward), outputs=prev, loss=E,
                   loss_formula=loss_def.formula)


def _ordered(params: list[ParamEntry], spec: Spec) -> tuple[ParamEntry, ...]:
    order = {name: i for i, name in enumerate(spec.param_shapes())}
    return tuple(sorted(params, key=lambda p: (order[p.array], p.index)))


_FUSED: dict = {}


def fused_loss(loss_in_y: sp.Expr, act_in_x: sp.Expr) -> sp.Expr:
    """The loss with y = act(x) substituted and simplified, e.g. bce -> log(1 + exp(x)) - t*x."""
    key = (loss_in_y, act_in_x)
    if key not in _FUSED:
        _FUSED[key] = sp.expand_log(sp.simplify(loss_in_y.xreplace({y: act_in_x})), force=True)
    return _FUSED[key]
