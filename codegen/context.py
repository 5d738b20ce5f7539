"""The templates' contexts, typed: what every target's module needs (`ModuleContext`, built by
`module_context`) and the optimizer's settings in it (`OptimizerSettings`, built by
`optimizer_settings`), the parameter arrays they are built from (`ArrayArg`, `array_args`),
and the loop form's output block (`OutputBlockContext`). Each backend's form adds its own
fields in a subclass (codegen/cpu/context.py, codegen/cpu/scalar.py, codegen/cpu/kernels.py,
codegen/cuda/context.py).

A template reads a context's fields as its names (`{{ dtype }}`): `TemplateContext.variables`
gives them, with the fields of a part marked `spread` (the optimizer's settings) at the top
level beside the others. Jinja2's StrictUndefined makes a name that no field declares an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .literals import literal
from .writer import generator_sha256

if TYPE_CHECKING:
    from symnet.spec import Spec

    from .lines import Line

# error_model="numpy": a float division by zero gives inf/nan instead of raising, which drops
# the per-division check that keeps LLVM from vectorizing the sample loops. float32 kernels
# also allow reassociation (so sums over the batch vectorize) and the like, but not the
# no-NaN/no-inf assumptions.
NJIT_OPTIONS = 'cache=True, error_model="numpy"'
FASTMATH32 = '{"nsz", "arcp", "contract", "afn", "reassoc"}'
# Added to the @njit options of a function that only other compiled functions call (the
# elementwise helpers, the gemm file's products, the team's barrier, the optimizer's step):
# Numba then builds no Python entry (its CPython wrapper) and no C entry (its cfunc wrapper)
# for it, about a third of what compiling such a small function costs on a cold start.
INNER_OPTIONS = "no_cpython_wrapper=True, no_cfunc_wrapper=True"

SPREAD = {"spread": True}  # a field's metadata: its own fields are the template's names


@dataclass(frozen=True)
class ArrayArg:
    name: str  # the parameter's key in the params dict: W1, b1
    arg: str  # its name inside kernels: W1, B1
    grad: str  # its gradient array inside kernels: dW1, dB1
    shape: tuple[int, ...]  # as the user sees it: () for a shared bias
    kernel_shape: tuple[int, ...]  # as kernels see it: (1,) for a shared bias
    updated: bool


def array_args(spec: Spec) -> list[ArrayArg]:
    updated = set(spec.updated_params())
    args = []
    for name, shape in spec.param_shapes().items():
        arg = name[0].upper() + name[1:]
        args.append(ArrayArg(name, arg, "d" + arg, shape, shape or (1,), name in updated))
    return args


def predict_kind(spec: Spec) -> str:
    """What the module's predict returns: "argmax" (a softmax output: class indices),
    "threshold" (one sigmoid output: 0/1) or "outputs" (anything else: the outputs)."""
    out = spec.network.layers[-1].activation.name
    if out == "softmax":
        return "argmax"
    return "threshold" if out == "sigmoid" and spec.network.outputs == 1 else "outputs"


@dataclass(frozen=True)
class LayerSummary:
    """One layer as the module's docstring describes it."""

    number: int  # 1, 2, ...
    role: str  # "hidden" or "output"
    units: int
    activation: str  # described, e.g. "leaky_relu(alpha=0.2)"
    bias: str  # "per_unit", "shared" or "none"


@dataclass(frozen=True, kw_only=True)
class TemplateContext:
    """A template's context: each field is one name the template reads."""

    def variables(self) -> dict[str, Any]:
        """The names the template sees: each field (not copied), a `spread` part's fields in
        its place."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("spread"):
                out.update(value.variables())
            else:
                out[f.name] = value
        return out

    def own_fields(self) -> dict[str, Any]:
        """Each field by name, unspread: what a subclass's instance is built from."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class StateArg:
    key: str  # in the state dict: "W1.v", "step"
    arg: str  # inside kernels: vW1
    shape: tuple[int, ...]  # as the user sees it
    kernel_shape: tuple[int, ...]
    dtype: str  # "DTYPE" or "np.int64"


@dataclass(frozen=True, kw_only=True)
class OptimizerSettings(TemplateContext):
    """The update rule's settings, printed in the kernel dtype, and its state arrays."""

    optimizer: str  # "sgd" or "adam"
    optimizer_title: str  # for comments: "SGD (Nesterov momentum)", "Adam"
    momentum: str  # SGD's momentum, printed in the kernel dtype
    nesterov: bool  # SGD's momentum is Nesterov's
    use_momentum: bool  # SGD with momentum > 0: a velocity per updated parameter
    beta1: str  # Adam's beta1, printed in the kernel dtype
    beta2: str  # Adam's beta2, printed in the kernel dtype
    eps: str  # Adam's epsilon, printed in the kernel dtype
    one_minus_beta1: str  # 1 - beta1, printed in the kernel dtype
    one_minus_beta2: str  # 1 - beta2, printed in the kernel dtype
    beta1_64: str  # beta1 as Python's repr, for the bias correction in float64
    beta2_64: str  # beta2 as Python's repr, for the bias correction in float64
    state: list[StateArg]  # the optimizer's state arrays (moments, velocities, Adam's step)
    decay: tuple  # the learning rate's schedule per epoch (spec.training.decay), (): constant


def optimizer_settings(spec: Spec, args: list[ArrayArg]) -> OptimizerSettings:
    """The spec's update rule for the parameters `args`."""
    tr = spec.training
    if tr.optimizer == "adam":
        kinds = ("m", "v")
    elif tr.momentum > 0:
        kinds = ("v",)
    else:
        kinds = ()
    state = [StateArg(f"{a.name}.{k}", f"{k}{a.arg}", a.shape, a.kernel_shape, "DTYPE")
             for a in args if a.updated for k in kinds]
    if tr.optimizer == "adam":
        state.append(StateArg("step", "step", (), (1,), "np.int64"))

    def lit(value):
        return literal(value, spec.codegen.dtype)

    return OptimizerSettings(
        optimizer=tr.optimizer,
        optimizer_title={"adam": "Adam", "sgd": "SGD"}[tr.optimizer]
        + (" (Nesterov momentum)" if tr.nesterov else " (momentum)" if tr.momentum > 0 else ""),
        momentum=lit(tr.momentum),
        nesterov=tr.nesterov,
        use_momentum=tr.optimizer == "sgd" and tr.momentum > 0,
        beta1=lit(tr.beta1), beta2=lit(tr.beta2), eps=lit(tr.eps),
        one_minus_beta1=lit(1 - tr.beta1), one_minus_beta2=lit(1 - tr.beta2),
        beta1_64=repr(tr.beta1), beta2_64=repr(tr.beta2),
        state=state,
        decay=tr.decay,
    )


@dataclass(frozen=True, kw_only=True)
class OutputBlockContext(TemplateContext):
    """The loop form's output block, as both backends print it (the CPU kernel file and the
    CUDA loop module; built by codegen/loop.py's output_block_fields)."""

    loss_formula: str  # the per-sample loss, for comments
    out_forward: list[Line]  # the output block's forward lines (outputs, loss), printed
    out_grad: list[Line]  # the output block's gradient lines (deltas), printed
    out_names: list[str]  # the output block's outputs' names
    delta_names: list[str]  # the output units' deltas' names
    target_loads: list[tuple[int, str]]  # (index, name) of the targets the gradient reads
    out_jacobian: list[Line]  # d out_k / d net_j of the output block (forward mode), printed
    out_jacobian_rows: list[list[str]]  # per output k, d out_k / d net_j per net j, printed
    jacobian_net_loads: list[tuple[int, str]]  # (index, name) of the nets those lines read
    out_hvp: list[Line]  # the loss, the deltas and their tangents R{delta} along R_net_o<k>
    out_hvp_deltas: list[str]  # R{delta_k} per output net k, printed
    hvp_net_loads: list[tuple[int, str]]  # (index, name) of the nets the out_hvp lines read
    hvp_target_loads: list[tuple[int, str]]  # and of the targets


@dataclass(frozen=True, kw_only=True)
class ModuleContext(TemplateContext):
    """What every target's module needs (templates/common/module.py.jinja and its includes):
    header, network, parameters and their layout, loss, predict, and the optimizer."""

    # header
    version: str  # symnet's version
    generator_sha256: str  # SHA-256 of the generator's source (writer.generator_sha256)
    spec_file: str  # the spec's file name, escaped for comments
    spec_file_literal: str  # the spec's file name as a Python literal
    sha256: str  # the spec's SHA-256
    name: str  # the network's name
    mode: str  # the form: "scalar" or "loop"
    strategy: str  # the gradient's schedule: "store", "recompute", a checkpoint strategy
    dtype: str  # the kernels' dtype: "float64" or "float32"
    njit: str  # the @njit options of the CPU kernels (and of _accuracy)
    # network
    n_inputs: int  # features per sample
    n_outputs: int  # outputs per sample
    layers: list[LayerSummary]  # per layer: its number, role, units, activation and bias
    out_activation: str  # the output layer's activation, described
    predict_kind: str  # what predict returns: "argmax", "threshold" or "outputs"
    metric_kind: int  # fit's validation accuracy: 1 softmax, 2 sigmoid, 0 none
    # parameters
    args: list[ArrayArg]  # the parameter arrays, in the params dict's order
    updated: list[str]  # the names of the parameters that training updates
    init_values: dict[str, Any]  # the spec's explicit initial values, as nested lists
    init_scheme: str  # the initialisation scheme of the others
    seed: int  # the spec's initialisation seed
    fan_in: dict[str, int]  # each weight matrix's inputs per unit, for its scheme
    # loss and training
    loss_kind: str  # the loss: "mse", "cross_entropy", ...
    reduction: str  # over the batch: "mean" or "sum"
    mean: bool  # reduction == "mean"
    zero: str  # 0 printed in the kernel dtype
    weight_decay_lambda: str  # the weight decay's lambda as Python's repr
    learning_rate: str  # the spec's learning rate as Python's repr
    optimizer_settings: OptimizerSettings = field(metadata=SPREAD)  # its fields, top level


def module_context(spec: Spec, *, version: str, spec_file: str, mode: str) -> ModuleContext:
    """The fields every target's module shares, for the form `mode`."""
    args = array_args(spec)
    return ModuleContext(
        version=version,
        generator_sha256=generator_sha256(),
        spec_file=spec_file.encode("unicode_escape").decode("ascii"),
        spec_file_literal=repr(spec_file),
        sha256=spec.sha256,
        name=spec.name,
        mode=mode,
        strategy=spec.codegen.strategy,
        dtype=spec.codegen.dtype,
        njit=NJIT_OPTIONS + (f", fastmath={FASTMATH32}" if spec.codegen.dtype == "float32"
                             else ""),
        n_inputs=spec.network.inputs,
        n_outputs=spec.network.outputs,
        layers=[LayerSummary(ln, "output" if ln == len(spec.network.layers) else "hidden",
                             layer.units, layer.activation.describe(), layer.bias)
                for ln, layer in enumerate(spec.network.layers, start=1)],
        out_activation=spec.network.layers[-1].activation.describe(),
        predict_kind=predict_kind(spec),
        metric_kind={"softmax": 1, "sigmoid": 2}.get(spec.network.layers[-1].activation.name, 0),
        args=args,
        updated=[a.name for a in args if a.updated],
        init_values={k: _nested(v) for k, v in spec.init.explicit.items()},
        init_scheme=spec.init.scheme,
        seed=spec.init.seed,
        fan_in={a.name: a.shape[1] for a in args if len(a.shape) == 2},
        loss_kind=spec.loss.kind,
        reduction=spec.loss.reduction,
        mean=spec.loss.reduction == "mean",
        zero=literal(0, spec.codegen.dtype),
        weight_decay_lambda=repr(spec.loss.weight_decay),
        learning_rate=repr(spec.training.learning_rate),
        optimizer_settings=optimizer_settings(spec, args),
    )


def _nested(value):
    if isinstance(value, tuple):
        return [_nested(v) for v in value]
    return float(value)
