"""The registry: each activation and loss is one sympy expression.

Nothing else is written down: derivatives come from `sympy.diff` of these expressions
(see `autodiff.py`), and the printer turns whatever comes out into Numba code. To add an
activation, add one entry here; if PyTorch has the same function, the entry's `torch` names
its module, and `symnet.torch` maps the activation to it (after checking it numerically).

Custom formulas from a spec (`activation = { expr = "..." }`, `[loss] kind = "custom"`) are
parsed by `expressions.py` into expressions of the same symbols `x`, `y` and `t`, and from
there on are treated exactly like registry entries (`activation_def`, `loss_def`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from . import expressions
from .errors import SymnetError
from .lazy import sp


@lru_cache(maxsize=1)
def symbols():
    """x, the pre-activation (net) an activation is applied to; y, the network's output for one
    unit; t, the target for that unit (made on first use: they need sympy)."""
    return sp.Symbol("x", real=True), sp.Symbol("y", real=True), sp.Symbol("t", real=True)


def __getattr__(name):  # `from symnet.functions import x` and the variable maps
    if name not in ("x", "y", "t", "ACTIVATION_VARIABLES", "LOSS_VARIABLES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    x, y, t = symbols()
    return {"x": x, "y": y, "t": t, "ACTIVATION_VARIABLES": {"x": x},
            "LOSS_VARIABLES": {"y": y, "t": t}}[name]


@dataclass(frozen=True)
class TorchModule:
    """The `torch.nn` module that computes an activation: `symnet.torch` builds
    `torch.nn.<name>(**args, **{key: the activation's parameter})`, and uses it only after
    comparing it numerically with the activation's sympy expression."""

    name: str  # the class in torch.nn: "LeakyReLU"
    args: dict[str, object] = field(default_factory=dict)  # fixed keyword arguments
    params: dict[str, str] = field(default_factory=dict)  # keyword -> the activation's param

    def describe(self) -> str:
        """How messages write it: nn.LeakyReLU(negative_slope=alpha), nn.Softmax(dim=-1)."""
        args = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}"
                for k, v in self.args.items()]
        args += [f"{k}={v}" for k, v in self.params.items()]
        return f"nn.{self.name}({', '.join(args)})"


@dataclass(frozen=True)
class ActivationDef:
    name: str
    build: Callable[..., sp.Expr]  # build(x, **params) -> expression in x
    params: dict[str, float] = field(default_factory=dict)
    formula: str = ""  # how the docs and the generated comments write it
    # Layer-wide (softmax): out_k = f(net_k - m) / sum_j f(net_j - m) with m = max_j net_j,
    # where f is `build`. Lowering emits the shift m, each f(net_k - m), their sum and each
    # quotient as named values; the reverse mode differentiates through them like any other.
    layer_wide: bool = False
    # Whether autodiff may call sympy.solve for f's inverse, to write f' in terms of the
    # stored output (sigmoid' = out*(1 - out)). Off by default: on other formulas solve can
    # run for minutes (gelu_tanh), or give a form that overflows (softplus).
    solve_for_output: bool = False
    # PyTorch's module for the same function, if it has one (symnet.torch's mapping)
    torch: TorchModule | None = None

    def expr(self, arg: sp.Expr, **params: float) -> sp.Expr:
        if self.layer_wide:
            raise SymnetError(
                f"activation {self.name!r} is layer-wide (each output depends on every net "
                f"of its layer) and has no per-unit expression")
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
    # Output activations after which the loss is also computed from the pre-activation,
    # without requiring them (nll after sigmoid or softmax).
    fuses: tuple[str, ...] = ()

    def expr(self, out: sp.Expr, target: sp.Expr, n_outputs: int) -> sp.Expr:
        return self.build(out, target, n_outputs)

    def fused_with(self, activation: str) -> bool:
        """Whether this loss is computed from the nets when the output layer is `activation`."""
        return activation == self.requires_output or activation in self.fuses


# SELU's constants (Klambauer et al. 2017), to the precision of a float64
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _relu(v):
    return sp.Piecewise((v, v > 0), (0, True))


def _leaky_relu(v, alpha):
    return sp.Piecewise((v, v > 0), (alpha * v, True))


def _step(v):
    return sp.Piecewise((1, v >= 0), (0, True))


def _sign(v):
    return sp.Piecewise((1, v > 0), (-1, v < 0), (0, True))


def _hard_sigmoid(v):
    half = sp.Rational(1, 2)
    return sp.Piecewise((0, v < -half), (1, v > half), (v + half, True))


def _elu(v, alpha):
    return sp.Piecewise((v, v > 0), (alpha * (sp.exp(v) - 1), True))


def _selu(v):
    return sp.Float(SELU_SCALE) * _elu(v, sp.Float(SELU_ALPHA))


def _silu(v):
    # x * sigmoid(x), with sigmoid(x) = (1 + tanh(x/2))/2: the same function, but its
    # derivative stays finite for any x (with 1/(1 + exp(-x)) it is inf/inf for x < -709)
    return v * (1 + sp.tanh(v / 2)) / 2


def _gelu(v):
    return v / 2 * (1 + sp.erf(v / sp.sqrt(2)))


def _gelu_tanh(v):
    return v / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (v + sp.Float("0.044715") * v ** 3)))


_SILU_FORMULA = "x*sigmoid(x), computed as x*(1 + tanh(x/2))/2"

ACTIVATIONS: dict[str, ActivationDef] = {
    a.name: a
    for a in [
        ActivationDef("sigmoid", lambda v: 1 / (1 + sp.exp(-v)), formula="1/(1 + exp(-x))",
                      solve_for_output=True, torch=TorchModule("Sigmoid")),
        ActivationDef("tanh", lambda v: sp.tanh(v), formula="tanh(x)", torch=TorchModule("Tanh")),
        ActivationDef("relu", _relu, formula="max(x, 0)", torch=TorchModule("ReLU")),
        ActivationDef("leaky_relu", _leaky_relu, {"alpha": 0.01},
                      formula="x if x > 0 else alpha*x",
                      torch=TorchModule("LeakyReLU", params={"negative_slope": "alpha"})),
        ActivationDef("linear", lambda v: v, formula="x", torch=TorchModule("Identity")),
        ActivationDef("step", _step, formula="1 if x >= 0 else 0"),
        ActivationDef("sign", _sign, formula="1 if x > 0 else (-1 if x < 0 else 0)"),
        # torch's Hardsigmoid is clip(x/6 + 1/2, 0, 1), this one clip(x + 1/2, 0, 1): named so
        # that symnet.torch's numeric check refuses it, naming nn.Hardsigmoid
        ActivationDef("hard_sigmoid", _hard_sigmoid, formula="max(0, min(1, x + 1/2))",
                      torch=TorchModule("Hardsigmoid")),
        ActivationDef("elu", _elu, {"alpha": 1.0},
                      formula="x if x > 0 else alpha*(exp(x) - 1)",
                      torch=TorchModule("ELU", params={"alpha": "alpha"})),
        ActivationDef("selu", _selu,
                      formula=f"{SELU_SCALE:.6f}*(x if x > 0 else {SELU_ALPHA:.6f}*(exp(x) - 1))",
                      torch=TorchModule("SELU")),
        # threshold=37: beyond it log(1 + exp(x)) rounds to x in float64 (torch's default of
        # 20 is exact only in float32), so the linear tail torch switches to is no approximation
        ActivationDef("softplus", lambda v: sp.log(1 + sp.exp(v)), formula="log(1 + exp(x))",
                      solve_for_output=True, torch=TorchModule("Softplus", {"threshold": 37.0})),
        ActivationDef("silu", _silu, formula=_SILU_FORMULA, torch=TorchModule("SiLU")),
        ActivationDef("swish", _silu, formula=_SILU_FORMULA, torch=TorchModule("SiLU")),
        ActivationDef("gelu", _gelu, formula="x/2*(1 + erf(x/sqrt(2)))",
                      torch=TorchModule("GELU", {"approximate": "none"})),
        ActivationDef("gelu_tanh", _gelu_tanh,
                      formula="x/2*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))",
                      torch=TorchModule("GELU", {"approximate": "tanh"})),
        ActivationDef("softsign", lambda v: v / (1 + sp.Abs(v)), formula="x/(1 + |x|)",
                      torch=TorchModule("Softsign")),
        # layer-wide: torch's normalises over the units of the layer (dim=-1, X's columns)
        ActivationDef("softmax", lambda v: sp.exp(v), layer_wide=True,
                      formula="exp(net_k - m)/sum_j exp(net_j - m), m = max_j net_j",
                      torch=TorchModule("Softmax", {"dim": -1})),
    ]
}

LOSSES: dict[str, LossDef] = {
    lo.name: lo
    for lo in [
        LossDef("sse", lambda o, g, k: sp.Rational(1, 2) * (g - o) ** 2,
                formula="1/2 sum_k (t_k - y_k)^2"),
        LossDef("mse", lambda o, g, k: (g - o) ** 2 / k, formula="1/K sum_k (t_k - y_k)^2"),
        LossDef("mae", lambda o, g, k: sp.Abs(g - o) / k, formula="1/K sum_k |t_k - y_k|"),
        LossDef("bce", lambda o, g, k: -(g * sp.log(o) + (1 - g) * sp.log(1 - o)),
                formula="-sum_k [t_k log y_k + (1 - t_k) log(1 - y_k)]",
                requires_output="sigmoid"),
        LossDef("cross_entropy", lambda o, g, k: -g * sp.log(o),
                formula="-sum_k t_k log softmax_k(net), by log-sum-exp",
                requires_output="softmax"),
        LossDef("nll", lambda o, g, k: -g * sp.log(o), formula="-sum_k t_k log y_k",
                fuses=("sigmoid", "softmax")),
    ]
}

CUSTOM = "custom"  # the activation name and loss kind of a formula given in the spec


def parse_activation(text: str, source: str = "<formula>", key: str = "expr") -> sp.Expr:
    """A custom activation's formula in x (SpecError naming source and key if refused)."""
    return expressions.parse(text, {"x": symbols()[0]}, source=source, key=key)


def parse_loss(text: str, source: str = "<formula>", key: str = "expr") -> sp.Expr:
    """A custom loss's per-unit formula in y and t (SpecError if refused)."""
    x, y, t = symbols()
    return expressions.parse(text, {"y": y, "t": t}, source=source, key=key)


@lru_cache(maxsize=256)
def custom_activation(text: str) -> ActivationDef:
    expr = parse_activation(text)
    x = symbols()[0]
    return ActivationDef(CUSTOM, lambda v: expr.xreplace({x: v}), formula=text)


@lru_cache(maxsize=256)
def custom_loss(text: str) -> LossDef:
    expr = parse_loss(text)
    _, y, t = symbols()
    return LossDef(CUSTOM, lambda o, g, k: expr.xreplace({y: o, t: g}),
                   formula=f"sum_k [{text}] with y = y_k, t = t_k")


def activation_def(activation) -> ActivationDef:
    """The definition of a spec's `Activation`: a registry entry or its custom formula."""
    if activation.name == CUSTOM:
        return custom_activation(activation.expr)
    return ACTIVATIONS[activation.name]


def loss_def(loss) -> LossDef:
    """The definition of a spec's `Loss`: a registry entry or its custom formula."""
    if loss.kind == CUSTOM:
        return custom_loss(loss.expr)
    if loss.kind not in LOSSES:  # "residuals": weighted terms, symnet/residuals.py
        raise SymnetError(f"loss kind {loss.kind!r} has no per-unit loss of outputs and "
                          f"targets: its terms (symnet.residuals) need their own code "
                          f"generation, which this build of symnet does not have yet")
    return LOSSES[loss.kind]
