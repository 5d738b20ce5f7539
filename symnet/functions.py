"""The registry: each activation and loss is one sympy expression.

Nothing else is written down: derivatives come from `sympy.diff` of these expressions
(see `autodiff.py`), and the printer turns whatever comes out into Numba code. To add an
activation, add one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

x = sp.Symbol("x", real=True)  # the pre-activation (net) an activation is applied to
y = sp.Symbol("y", real=True)  # the network's output for one unit
t = sp.Symbol("t", real=True)  # the target for that unit


@dataclass(frozen=True)
class ActivationDef:
    name: str
    build: Callable[..., sp.Expr]  # build(x, **params) -> expression in x
    params: dict[str, float] = field(default_factory=dict)
    formula: str = ""  # how the docs and the generated comments write it

    def expr(self, arg: sp.Expr, **params: float) -> sp.Expr:
        merged = {**self.params, **params}
        return self.build(arg, **{k: sp.Float(v) for k, v in merged.items()})


@dataclass(frozen=True)
class LossDef:
    name: str
    build: Callable[[sp.Expr, sp.Expr, int], sp.Expr]  # per output unit: build(y, t, n_outputs)
    formula: str = ""
    # When set, the loss must follow this output activation and is computed from the
    # pre-activation (y replaced by activation(net), simplified) for numerical stability.
    requires_output: str | None = None

    def expr(self, out: sp.Expr, target: sp.Expr, n_outputs: int) -> sp.Expr:
        return self.build(out, target, n_outputs)


def _relu(v):
    return sp.Piecewise((v, v > 0), (0, True))


def _leaky_relu(v, alpha):
    return sp.Piecewise((v, v > 0), (alpha * v, True))


ACTIVATIONS: dict[str, ActivationDef] = {
    a.name: a
    for a in [
        ActivationDef("sigmoid", lambda v: 1 / (1 + sp.exp(-v)), formula="1/(1 + exp(-x))"),
        ActivationDef("tanh", lambda v: sp.tanh(v), formula="tanh(x)"),
        ActivationDef("relu", _relu, formula="max(x, 0)"),
        ActivationDef("leaky_relu", _leaky_relu, {"alpha": 0.01},
                      formula="x if x > 0 else alpha*x"),
        ActivationDef("linear", lambda v: v, formula="x"),
    ]
}

LOSSES: dict[str, LossDef] = {
    lo.name: lo
    for lo in [
        LossDef("sse", lambda o, g, k: sp.Rational(1, 2) * (g - o) ** 2,
                formula="1/2 sum_k (t_k - y_k)^2"),
        LossDef("mse", lambda o, g, k: (g - o) ** 2 / k, formula="1/K sum_k (t_k - y_k)^2"),
        LossDef("bce", lambda o, g, k: -(g * sp.log(o) + (1 - g) * sp.log(1 - o)),
                formula="-sum_k [t_k log y_k + (1 - t_k) log(1 - y_k)]",
                requires_output="sigmoid"),
    ]
}
