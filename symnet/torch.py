"""PyTorch interop: a symnet network as a `torch.nn.Sequential`, and back.

- `to_torch(spec, params)` builds the `nn.Sequential` that computes what the generated module
  computes, holding copies of `params`.
- `from_torch(model, spec)` reads the parameters back out as the dict the generated module takes.
- `torch_loss(spec)` is the spec's loss as a function of torch tensors.

PyTorch is optional: `import symnet.torch` never imports it. Each function imports it when it
is called and raises `TorchUnavailableError` (an `ImportError` and a `SymnetError`) when it is
not installed.

Every activation and loss is mapped only where PyTorch computes exactly the same function.
The mapping is not taken on trust: symnet's own definition (the sympy expression in
`symnet/functions.py`) is evaluated on a grid of points and compared with the torch module, so
an activation whose definition differs from PyTorch's namesake (a hard sigmoid with another
slope, say) is refused with `TorchInteropError` instead of being converted wrongly.
See docs/interop.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SymnetError
from .spec import Activation, Spec

__all__ = [
    "TorchInteropError",
    "TorchUnavailableError",
    "from_torch",
    "to_torch",
    "torch_loss",
]


class TorchUnavailableError(SymnetError, ImportError):
    """PyTorch is not installed (symnet.torch needs it only when one of its functions runs)."""


class TorchInteropError(SymnetError, ValueError):
    """A network, parameter dict or model that cannot be converted exactly."""


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise TorchUnavailableError(
            f"symnet.torch needs PyTorch, which cannot be imported ({exc}); "
            "install it with `pip install torch`") from exc
    return torch


# ----------------------------------------------------------------------------------------
# the shared-bias module (defined when torch is first needed)

_CLASSES: dict[str, type] = {}


def _shared_bias_class() -> type:
    cls = _CLASSES.get("SharedBias")
    if cls is not None:
        return cls
    torch = _torch()

    class SharedBias(torch.nn.Module):
        """Adds one learnable scalar `bias` (shape ()) to every unit: symnet's bias = "shared".

        `to_torch` puts one right after the layer's `nn.Linear(..., bias=False)`.
        """

        def __init__(self, value: float = 0.0, dtype=None, device=None):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.tensor(
                float(value), dtype=dtype if dtype is not None else torch.get_default_dtype(),
                device=device))

        def forward(self, x):
            return x + self.bias

        def extra_repr(self) -> str:
            return "shared scalar bias"

    # Importable (and picklable) as symnet.torch.SharedBias, through the module __getattr__.
    SharedBias.__module__ = __name__
    SharedBias.__qualname__ = "SharedBias"
    _CLASSES["SharedBias"] = SharedBias
    return SharedBias


def __getattr__(name: str):
    if name == "SharedBias":
        return _shared_bias_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------
# activations: the registry entry's `torch` (symnet/functions.py) names the module, which is
# used only where it equals symnet's definition (checked by `_activation_module`)


def _mapped() -> str:
    """The registry's activations that name a torch module, for messages."""
    from .functions import ACTIVATIONS

    return ", ".join(sorted(n for n, entry in ACTIVATIONS.items() if entry.torch is not None))


_CUSTOM = "custom"  # the activation name / loss kind of a formula written in the spec

# The points an elementwise activation is compared on: dense on [-8, 8], the kinks of the
# piecewise ones (0, +-1/2, +-1, +-3, 6) and points just beside them.
_GRID = np.unique(np.concatenate([
    np.linspace(-8.0, 8.0, 161),
    (np.array([-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0])[:, None]
     + np.array([-1e-3, 0.0, 1e-3])[None, :]).ravel(),
]))
_RTOL, _ATOL = 1e-12, 1e-13


def _lambdify(args, expr):
    import sympy as sp

    return sp.lambdify(args, expr, modules=["scipy", "numpy"])


def _symnet_activation_values(act: Activation, points: np.ndarray) -> np.ndarray | None:
    """symnet's definition of `act` evaluated at `points`, or None when it cannot be."""
    import sympy as sp

    from .functions import ACTIVATIONS

    entry = ACTIVATIONS.get(act.name)
    if entry is None:
        return None
    try:
        v = sp.Symbol("x", real=True)
        f = _lambdify(v, entry.expr(v, **act.kwargs))
        with np.errstate(all="ignore"):
            values = np.broadcast_to(np.asarray(f(points), dtype=np.float64), points.shape)
    except Exception:  # a vector activation, or one numpy cannot evaluate
        return None
    return values


def _activation_module(act: Activation, layer: int | None = None):
    """The torch module computing exactly symnet's activation `act` (checked numerically)."""
    from .functions import ACTIVATIONS

    torch = _torch()
    where = f"layer {layer}: " if layer is not None else ""
    entry = ACTIVATIONS.get(act.name)
    target = entry.torch if entry is not None else None
    if target is None and act.name == _CUSTOM:
        formula = getattr(act, "expr", None)
        raise TorchInteropError(
            f"{where}a custom activation{f' ({formula})' if formula else ''} has no PyTorch "
            f"module: to_torch maps symnet's named activations only (mapped: {_mapped()})")
    if target is None:
        raise TorchInteropError(
            f"{where}activation {act.describe()!r} has no PyTorch counterpart in symnet.torch "
            f"(mapped: {_mapped()})")
    given = set(dict(act.params))
    understood = set(target.params.values())
    if not given <= understood:
        raise TorchInteropError(
            f"{where}activation {act.describe()!r}: {target.describe()} takes no "
            f"parameter {sorted(given - understood)[0]!r}")
    values = {**entry.params, **act.kwargs}
    module = getattr(torch.nn, target.name)(
        **target.args, **{key: values[param] for key, param in target.params.items()})
    if entry.layer_wide:
        return module
    want = _symnet_activation_values(act, _GRID)
    if want is None:
        raise TorchInteropError(
            f"{where}activation {act.describe()!r}: symnet's definition could not be evaluated "
            f"to check it against {target.describe()}")
    with torch.no_grad():
        got = module(torch.from_numpy(_GRID.reshape(-1, 1).copy())).numpy().ravel()
    if np.allclose(got, want, rtol=_RTOL, atol=_ATOL, equal_nan=True):
        return module
    raise TorchInteropError(
        f"{where}activation {act.describe()!r}: symnet's definition is not the same function "
        f"as {target.describe()} (compared numerically on [-8, 8]), so there is no exact "
        "PyTorch counterpart")


# ----------------------------------------------------------------------------------------
# specs, generated modules and parameter layouts


def _spec(obj, what: str) -> Spec:
    if isinstance(obj, Spec):
        return obj
    if isinstance(obj, Mapping):
        from .spec import spec_from_dict

        return spec_from_dict(obj)
    if isinstance(obj, (str, os.PathLike)):
        from .spec import load_spec

        return load_spec(obj)
    if hasattr(obj, "PARAM_SHAPES"):
        raise TorchInteropError(
            f"{what} needs the network's Spec: a generated module records its parameter shapes "
            "but not its activations or loss; pass symnet.load_spec(<spec file>), the spec "
            "dict, or the path of the TOML file")
    raise TorchInteropError(
        f"{what}: expected a symnet.Spec, a spec dict or a path to a TOML spec, "
        f"got {type(obj).__name__}")


@dataclass(frozen=True)
class _LayerLayout:
    number: int
    weight: str  # "W2"
    shape: tuple[int, int]  # (units, units_in)
    bias: str  # "per_unit", "shared" or "none"


def _layout(obj, what: str) -> tuple[list[_LayerLayout], np.dtype]:
    """The layers' parameter layout and dtype, from a Spec (dict, path) or a generated module."""
    if not isinstance(obj, (Spec, Mapping, str, os.PathLike)) and hasattr(obj, "PARAM_SHAPES"):
        shapes = dict(obj.PARAM_SHAPES)
        dtype = np.dtype(getattr(obj, "DTYPE", np.float64))
    else:
        spec = _spec(obj, what)
        shapes = spec.param_shapes()
        dtype = np.dtype(spec.codegen.dtype)
    layers = []
    ln = 1
    while f"W{ln}" in shapes:
        b = shapes.get(f"b{ln}")
        kind = "none" if b is None else "shared" if tuple(b) == () else "per_unit"
        layers.append(_LayerLayout(ln, f"W{ln}", tuple(shapes[f"W{ln}"]), kind))
        ln += 1
    if not layers:
        raise TorchInteropError(f"{what}: the module's PARAM_SHAPES has no W1")
    return layers, dtype


def _as_array(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _model_dtype(torch, params: Mapping[str, Any], names) -> Any:
    """float32 when every array among the parameters is float32, else float64. Python numbers
    and lists do not vote."""
    dtypes = set()
    for n in names:
        v = params[n]
        if isinstance(v, (np.ndarray, np.generic)) or hasattr(v, "detach"):
            dtypes.add(str(_as_array(v).dtype))
    return torch.float32 if dtypes == {"float32"} else torch.float64


# ----------------------------------------------------------------------------------------
# the public functions


def to_torch(spec, params: Mapping[str, Any]):
    """The network of `spec` as a `torch.nn.Sequential` holding copies of `params`.

    `spec` is a `symnet.Spec`, a spec dict or a path to a TOML spec. A generated module is not
    enough, because it does not record its activations (TorchInteropError says so). `params`
    maps `W1, b1, W2, ...` to arrays of the spec's shapes, as `init_params()` returns them;
    numpy arrays, torch tensors, nested lists and (for a shared bias) Python numbers are
    accepted, extra keys are ignored.

    Each layer l becomes `nn.Linear(units_in, units)` (weight = W{l}, whose layout is already
    torch's), then for `bias = "shared"` a `SharedBias` module adding the learnable scalar
    b{l}, then the activation module (nn.Identity for linear). The model therefore ends with the
    output activation, and `model[:-1]` computes the output layer's pre-activation.
    The model's dtype is float32 when every parameter array is float32, else float64.
    """
    torch = _torch()
    spec = _spec(spec, "to_torch")
    if not isinstance(params, Mapping):
        raise TorchInteropError(
            f"params: expected a dict of arrays keyed {list(spec.param_shapes())}, "
            f"got {type(params).__name__}")
    shapes = spec.param_shapes()
    arrays = {}
    for name, shape in shapes.items():
        if name not in params:
            raise TorchInteropError(
                f"params: missing {name!r} (expected keys {list(shapes)})")
        a = _as_array(params[name])
        if a.shape != shape:
            raise TorchInteropError(
                f"params[{name!r}]: expected shape {shape}, got {a.shape}")
        if a.dtype.kind not in "iuf":  # integers, floats
            raise TorchInteropError(
                f"params[{name!r}]: expected real numbers, got dtype {a.dtype}")
        arrays[name] = a
    dtype = _model_dtype(torch, params, shapes)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    acts = [_activation_module(layer.activation, ln)
            for ln, layer in enumerate(spec.network.layers, start=1)]

    nn = torch.nn
    shared_bias = _shared_bias_class()
    modules = []
    units_in = spec.network.inputs
    for ln, (layer, act) in enumerate(zip(spec.network.layers, acts, strict=True), start=1):
        # skip_init: no random initialisation, so torch's global RNG is left alone
        linear = nn.utils.skip_init(nn.Linear, units_in, layer.units,
                                    bias=layer.bias == "per_unit", dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(
                np.array(arrays[f"W{ln}"], dtype=np_dtype, order="C")))
            if layer.bias == "per_unit":
                linear.bias.copy_(torch.from_numpy(
                    np.array(arrays[f"b{ln}"], dtype=np_dtype, order="C")))
        modules.append(linear)
        if layer.bias == "shared":
            modules.append(shared_bias(float(arrays[f"b{ln}"]), dtype=dtype))
        modules.append(act)
        units_in = layer.units
    return nn.Sequential(*modules)


def _flatten(torch, model):
    for m in model:
        if isinstance(m, torch.nn.Sequential):
            yield from _flatten(torch, m)
        else:
            yield m


def from_torch(model, spec) -> dict[str, np.ndarray]:
    """The parameters of `model` as the dict a generated module takes: new C-contiguous arrays
    of the spec's dtype, keyed `W1, b1, W2, ...` in that order.

    `spec` is a `symnet.Spec`, a spec dict, a path to a TOML spec, or a generated module (its
    PARAM_SHAPES and DTYPE are all this needs). `model` is an `nn.Sequential` laid out as
    `to_torch` builds it (nested Sequentials are flattened): its `nn.Linear` modules in order
    are the layers, a `SharedBias` right after a bias-free Linear is that layer's shared bias,
    and modules without parameters (the activations) are skipped. The number of layers, every
    shape and every bias kind must match the spec; activations are not compared.
    """
    torch = _torch()
    layout, dtype = _layout(spec, "from_torch")
    if not isinstance(model, torch.nn.Sequential):
        raise TorchInteropError(
            f"model: expected a torch.nn.Sequential, got {type(model).__name__}")
    shared_bias = _shared_bias_class()
    found: list[dict[str, Any]] = []  # per Linear: weight, bias, kind, index
    for index, m in enumerate(_flatten(torch, model)):
        if isinstance(m, torch.nn.Linear):
            found.append({"index": index, "weight": m.weight, "bias": m.bias,
                          "kind": "per_unit" if m.bias is not None else "none"})
        elif isinstance(m, shared_bias):
            if not found or found[-1]["kind"] != "none" or found[-1]["index"] != index - 1:
                raise TorchInteropError(
                    f"model[{index}]: a SharedBias must directly follow an nn.Linear without "
                    "bias")
            found[-1].update(bias=m.bias, kind="shared")
        elif any(True for _ in m.parameters()):
            raise TorchInteropError(
                f"model[{index}]: {type(m).__name__} has parameters that symnet cannot "
                "represent (only nn.Linear and SharedBias carry parameters)")
    if len(found) != len(layout):
        raise TorchInteropError(
            f"model: expected {len(layout)} nn.Linear layers, found {len(found)}")
    out: dict[str, np.ndarray] = {}
    for lay, got in zip(layout, found, strict=True):
        w = got["weight"]
        where = f"model[{got['index']}] (layer {lay.number})"
        if tuple(w.shape) != lay.shape:
            raise TorchInteropError(
                f"{where}: weight has shape {tuple(w.shape)}, expected {lay.shape} "
                f"(nn.Linear({lay.shape[1]}, {lay.shape[0]}))")
        if got["kind"] != lay.bias:
            raise TorchInteropError(
                f"{where}: the bias is {got['kind']!r} in the model but {lay.bias!r} in the "
                "spec (per_unit: nn.Linear(bias=True); shared: nn.Linear(bias=False) then "
                "SharedBias; none: nn.Linear(bias=False))")
        out[lay.weight] = _to_numpy(torch, w, dtype)
        if lay.bias != "none":
            out[f"b{lay.number}"] = _to_numpy(torch, got["bias"], dtype)
    return out


def _to_numpy(torch, tensor, dtype: np.dtype) -> np.ndarray:
    wide = tensor.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.array(wide, dtype=dtype, order="C", copy=True)


# ----------------------------------------------------------------------------------------
# losses: per output unit, summed over the units, then mean or sum over the batch


@dataclass(frozen=True)
class _LossCandidate:
    describe: str
    per_unit: Callable  # (torch, y, t, K) -> elementwise tensor of the loss terms
    # Stable forms from the pre-activation z, by output activation name: (torch, z, t, K).
    from_logits: tuple[tuple[str, Callable], ...] = ()


def _neg_t_log_softmax(torch, z, t, k):
    return -t * torch.log_softmax(z, dim=-1)


def _neg_t_log_sigmoid(torch, z, t, k):
    return -t * torch.nn.functional.logsigmoid(z)


def _bce_logits(torch, z, t, k):
    # log(1 + exp(z)) - t z, the form symnet emits (np.logaddexp(0, net) - net*t)
    return torch.logaddexp(torch.zeros_like(z), z) - t * z


_LOSSES: dict[str, tuple[_LossCandidate, ...]] = {
    "sse": (_LossCandidate("1/2 (t - y)^2", lambda torch, y, t, k: 0.5 * (t - y) ** 2),),
    "mse": (_LossCandidate("(t - y)^2 / K", lambda torch, y, t, k: (t - y) ** 2 / k),),
    "mae": (_LossCandidate("|t - y| / K", lambda torch, y, t, k: torch.abs(t - y) / k),),
    "bce": (_LossCandidate("-[t log y + (1 - t) log(1 - y)]",
                           lambda torch, y, t, k: -(t * torch.log(y) + (1 - t) * torch.log1p(-y)),
                           (("sigmoid", _bce_logits),)),),
    "cross_entropy": (_LossCandidate("-t log y", lambda torch, y, t, k: -t * torch.log(y),
                                     (("softmax", _neg_t_log_softmax),)),),
    "nll": (_LossCandidate("-t log y", lambda torch, y, t, k: -t * torch.log(y),
                           (("softmax", _neg_t_log_softmax), ("sigmoid", _neg_t_log_sigmoid))),),
}


def _loss_candidate(kind: str, n_outputs: int) -> _LossCandidate:
    """The torch form equal to symnet's per-unit loss `kind` (checked numerically)."""
    torch = _torch()
    candidates = _LOSSES.get(kind)
    if candidates is None and kind == _CUSTOM:
        raise TorchInteropError(
            "a custom loss ([loss] kind = \"custom\") has no PyTorch form in symnet.torch "
            f"(mapped: {', '.join(sorted(_LOSSES))})")
    if candidates is None:
        raise TorchInteropError(
            f"loss {kind!r} has no PyTorch form in symnet.torch (mapped: "
            f"{', '.join(sorted(_LOSSES))})")
    import sympy as sp

    from .functions import LOSSES

    entry = LOSSES.get(kind)
    if entry is None:
        raise TorchInteropError(f"loss {kind!r} is not in symnet's registry")
    ys = np.linspace(0.02, 0.98, 25)
    ts = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    Y, T = (a.ravel() for a in np.meshgrid(ys, ts))
    try:
        y, t = sp.Symbol("y", real=True), sp.Symbol("t", real=True)
        f = _lambdify((y, t), entry.expr(y, t, n_outputs))
        with np.errstate(all="ignore"):
            want = np.broadcast_to(np.asarray(f(Y, T), dtype=np.float64), Y.shape)
    except Exception as exc:
        raise TorchInteropError(
            f"loss {kind!r}: symnet's definition could not be evaluated to check it against "
            f"its PyTorch form ({type(exc).__name__})") from None
    for cand in candidates:
        got = cand.per_unit(torch, torch.from_numpy(Y), torch.from_numpy(T), n_outputs).numpy()
        if np.allclose(got, want, rtol=_RTOL, atol=_ATOL, equal_nan=True):
            return cand
    raise TorchInteropError(
        f"loss {kind!r}: symnet's definition is not "
        f"{' or '.join(c.describe for c in candidates)} (compared numerically), so it has no "
        "exact PyTorch form here")


def _decay_term() -> Callable:
    """The weight decay of one weight as a function (lambda, w) of torch tensors: symnet's
    one definition of it (symnet.layers.DECAY_TERM, lambda*w^2), which the generated modules
    print and sum over every weight."""
    import sympy as sp

    from .layers import DECAY_TERM, LAM, W

    return sp.lambdify((LAM, W), DECAY_TERM, modules=[])


def torch_loss(spec, *, from_logits: bool = False) -> Callable:
    """The spec's loss as a function `loss(y, t, model=None)` of torch tensors, with symnet's
    semantics: the per-sample loss of `[loss] kind` summed over the output units (sse: 1/2
    sum_k (t_k - y_k)^2; mse: 1/K sum_k (t_k - y_k)^2; mae: 1/K sum_k |t_k - y_k|; bce:
    -sum_k [t_k log y_k + (1 - t_k) log(1 - y_k)]; cross_entropy and nll: -sum_k t_k log y_k),
    then the mean or the sum over the rows of the batch, as `[loss] reduction` says, plus
    `weight_decay * (sum of every weight squared)` once when `[loss] weight_decay` is set (the
    weights are read from `model`, which is then required; biases are not decayed). It
    returns a 0-d tensor that autograd can differentiate.

    `y` has shape (batch, outputs). By default it is the network's output, `model(X)`.
    With `from_logits=True` it is the output layer's pre-activation, `model[:-1](X)`, and the
    loss applies the output activation itself: for bce after a sigmoid as
    `logaddexp(0, z) - t z`, for cross_entropy or nll after a softmax as `-t log_softmax(z)`
    and for nll after a sigmoid as `-t logsigmoid(z)`, the stable forms symnet's own kernels
    use, which stay finite where the probabilities round to 0 or 1. For other pairs it is the
    activation module followed by the loss. `t` may be a tensor or an array; it is converted
    to y's dtype and device.
    """
    torch = _torch()
    spec = _spec(spec, "torch_loss")
    n_out = spec.network.outputs
    cand = _loss_candidate(spec.loss.kind, n_out)
    last = spec.network.layers[-1].activation
    logits_fn = dict(cand.from_logits).get(last.name) if from_logits else None
    out_act = _activation_module(last) if from_logits and logits_fn is None else None
    mean = spec.loss.reduction == "mean"
    decay = float(getattr(spec.loss, "weight_decay", 0.0))
    decay_term = _decay_term() if decay else None
    kind = spec.loss.kind

    def loss(y, t, model=None):
        if not torch.is_tensor(y):
            raise TorchInteropError(f"y: expected a torch tensor, got {type(y).__name__}")
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        if y.dim() != 2 or y.shape[1] != n_out or y.shape[0] < 1:
            raise TorchInteropError(
                f"y: expected shape (batch, {n_out}) with batch >= 1, got {tuple(y.shape)}")
        if t.shape != y.shape:
            raise TorchInteropError(
                f"t: expected shape {tuple(y.shape)} to match y, got {tuple(t.shape)}")
        if logits_fn is not None:
            terms = logits_fn(torch, y, t, n_out)
        else:
            terms = cand.per_unit(torch, out_act(y) if out_act is not None else y, t, n_out)
        per_sample = terms.sum(dim=1)
        total = per_sample.mean() if mean else per_sample.sum()
        if decay:
            if model is None:
                raise TorchInteropError(
                    f"model: the spec's loss adds weight_decay = {decay!r} times the sum of "
                    "the weights squared; pass the model: loss(y, t, model)")
            weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
            total = total + sum(decay_term(decay, w).sum() for w in weights)
        return total

    loss.__name__ = f"{kind}_{spec.loss.reduction}"
    loss.__doc__ = (f"symnet loss {kind!r} ({cand.describe} per output unit), "
                    f"{spec.loss.reduction} over the batch"
                    + (f", + {decay!r} * sum of the weights squared" if decay else "")
                    + (", from the pre-activation" if from_logits else ""))
    return loss
