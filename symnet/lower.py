"""Stage 2: a `Spec` becomes a `Program` in scalar form (one symbol per weight, bias, input).

Names follow the lecture: inputs i1, i2; hidden units h1, h2 (h<l>_<j> when there is more
than one hidden layer); outputs o1, o2; net_h1 = w1*i1 + w2*i2 + b1, out_h1 = f(net_h1).
Weights are numbered w1, w2, ... row by row through W1, W2, ... exactly as in the lecture
(w5 = W2[0, 0]). The per-sample loss is E.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .functions import activation_def, loss_def, t, x, y
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


def lower(spec: Spec, *, fuse: bool = True) -> Program:
    net = spec.network
    inputs = tuple(_sym(f"i{j}") for j in range(1, net.inputs + 1))
    targets = tuple(_sym(f"t{k}") for k in range(1, net.outputs + 1))
    params: list[ParamEntry] = []
    forward: list[Assign] = []
    layers: list[LayerInfo] = []
    prev = inputs
    w_count = 0
    names = unit_names(spec)
    softmax: _Softmax | None = None
    for ln, layer in enumerate(net.layers, start=1):
        act = activation_def(layer.activation)
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
            if not act.layer_wide:
                forward.append(Assign(o_sym, act.expr(n_sym, **layer.activation.kwargs), "out",
                                      layer=ln))
            nets.append(n_sym)
            outs.append(o_sym)
        if act.layer_wide:
            softmax = _layer_wide(act, ln, nets, outs, names[ln - 1], forward)
        if layer.bias == "shared":
            params.append(ParamEntry(shared_b, f"b{ln}", ()))
        # keep the parameter table in the order W1, b1, W2, b2 with row-major indices
        layers.append(LayerInfo(
            number=ln, role="output" if ln == len(net.layers) else "hidden",
            activation=layer.activation.describe(), formula=act.formula,
            nets=tuple(nets), outs=tuple(outs), bias=layer.bias))
        prev = tuple(outs)

    params_t = _ordered(params, spec)
    E = _sym("E")
    rhs, formula = _loss(spec, layers[-1], targets, softmax, fuse)
    if spec.loss.weight_decay:
        decay, decay_formula = _weight_decay(spec, params_t)
        rhs, formula = rhs + decay, f"{formula} + {decay_formula}"
    forward.append(Assign(E, rhs, "loss", comment=f"E = {formula}"))
    return Program(inputs=inputs, targets=targets, params=params_t,
                   layers=tuple(layers), forward=tuple(forward), outputs=prev, loss=E,
                   loss_formula=formula)


@dataclass(frozen=True)
class _Softmax:
    """The named values of a layer-wide (softmax) output layer, for the fused losses."""

    shift: sp.Symbol  # m = max_k net_k
    total: sp.Symbol  # sum_k f(net_k - m)


def _layer_wide(act, ln, nets, outs, units, forward) -> _Softmax:
    """out_k = f(net_k - m) / sum_j f(net_j - m), m = max_j net_j, as named values.

    Subtracting m changes nothing mathematically (the quotient is shift-invariant) but keeps
    every exp(net_k - m) <= 1, so nothing overflows; m gets role "shift", which autodiff
    treats as a constant (its total derivative is zero)."""
    shift, total = _sym("max_net"), _sym("exp_sum")
    forward.append(Assign(shift, sp.Max(*nets), "shift", layer=ln,
                          comment="max_k net_k: shifts the exponents below to <= 0"))
    parts = []
    for n_sym, unit in zip(nets, units):
        part = _sym(f"exp_{unit}")
        forward.append(Assign(part, act.build(n_sym - shift), "temp", layer=ln,
                              comment=f"exp({n_sym} - {shift}) <= 1: cannot overflow"))
        parts.append(part)
    forward.append(Assign(total, sp.Add(*parts), "temp", layer=ln,
                          comment="the softmax's denominator, at least 1"))
    for part, o_sym in zip(parts, outs):
        forward.append(Assign(o_sym, part / total, "out", layer=ln))
    return _Softmax(shift, total)


def _loss(spec: Spec, last: LayerInfo, targets, softmax: _Softmax | None, fuse: bool = True):
    """The per-sample loss (summed over the output units) and its formula. Without `fuse`,
    always in the outputs, as the lecture writes it (symnet explain's chain)."""
    loss = loss_def(spec.loss)
    last_act = spec.network.layers[-1].activation
    per_unit = loss.expr(y, t, len(targets))  # in the registry's y (output) and t (target)
    if fuse and softmax is not None and loss.fused_with(last_act.name):
        # y = exp(x - m)/S: the logarithms expand into log-sum-exp of the nets, e.g. for
        # cross_entropy -t*log(y) = t*(m + log(S) - x): nothing overflows or underflows
        y_of_net = activation_def(last_act).build(x - softmax.shift) / softmax.total
        per_unit = sp.expand_log(per_unit.xreplace({y: y_of_net}), force=True)
        arg, values = x, last.nets
    elif fuse and loss.fused_with(last_act.name):
        # computed from the pre-activation: y = f(x) substituted and simplified, which turns
        # bce into the stable softplus form log(1 + exp(x)) - t*x
        act = activation_def(last_act).expr(x, **last_act.kwargs)
        per_unit, arg, values = fused_loss(per_unit, act), x, last.nets
    else:
        arg, values = y, last.outs
    terms = [per_unit.xreplace({arg: v, t: t_sym}) for v, t_sym in zip(values, targets)]
    return sp.Add(*terms), loss.formula


# the kernels' loop variable over the samples of a batch (see templates/cpu/module.py.jinja)
SAMPLE_INDEX = sp.Symbol("s", integer=True, nonnegative=True)


def _weight_decay(spec: Spec, params) -> tuple[sp.Expr, str]:
    """lambda * sum of every weight squared (biases excluded), added once to the batch loss.

    The kernels sum the per-sample E over the batch and then reduce. Under reduction "mean"
    the term is added to every sample's E (the mean of N copies is the term itself); under
    "sum" only to the first sample's (s == 0). Either way the batch loss is
    reduce(E_s) + lambda * sum w^2, and its gradient gets 2 * lambda * w, from sympy.diff."""
    lam = sp.Float(spec.loss.weight_decay)
    decay = lam * sp.Add(*[p.symbol ** 2 for p in params if p.array.startswith("W")])
    text = f"{spec.loss.weight_decay!r}*sum w^2"
    if spec.loss.reduction == "mean":
        return decay, f"{text} (weight decay: in every sample's E, so once in the mean)"
    once = sp.Piecewise((decay, sp.Eq(SAMPLE_INDEX, 0)), (0, True))
    return once, f"{text} (weight decay: in the first sample's E, so once in the sum)"


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
