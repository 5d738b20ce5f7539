"""The CPU backend: turns a Schedule into the template's context for `@njit` kernels.

The printer prints expressions; this module decides argument layout, section headers and
comments; the template (templates/cpu/module.py.jinja) lays the module out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from symnet.spec import Spec

from .literals import literal
from .writer import generator_sha256

if TYPE_CHECKING:  # the scalar form's stages need sympy: imported where they run
    from symnet.schedule import Schedule

    from .printer import NumbaPrinter

# error_model="numpy": a float division by zero gives inf/nan instead of raising, which drops
# the per-division check that keeps LLVM from vectorizing the sample loops. float32 kernels
# also allow reassociation (so sums over the batch vectorize) and the like, but not the
# no-NaN/no-inf assumptions.
NJIT_OPTIONS = 'cache=True, error_model="numpy"'
FASTMATH32 = '{"nsz", "arcp", "contract", "afn", "reassoc"}'

_X = re.compile(r"\bx\b")


@dataclass(frozen=True)
class Line:
    lhs: str
    code: str
    comment: str = ""
    section: str = ""  # a header comment printed before this line


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


def _index(entry, args_by_name) -> str:
    a = args_by_name[entry.array]
    idx = entry.index or (0,)
    return f"{a.arg}[{', '.join(map(str, idx))}]"


def _sections(schedule: Schedule):
    """A header for each layer's forward part, the loss, and each layer's backward part."""
    prog = schedule.program
    layers = {info.number: info for info in prog.layers}
    n = len(layers)

    def header(a, seen):
        if schedule.strategy == "recompute":
            if seen:
                return ""
            seen.add("recompute")
            return ("recompute (the lecture's Eq. 6.53): each value below is one expression of "
                    "the inputs and parameters; nothing is stored or shared")
        if a.role in ("net", "out") and ("f", a.layer) not in seen:
            seen.add(("f", a.layer))
            info = layers[a.layer]
            src = "i" if a.layer == 1 else f"out of layer {a.layer - 1}"
            b = {"per_unit": f" + b{a.layer}", "shared": f" + b{a.layer} (shared)",
                 "none": ""}[info.bias]
            return (f"forward, layer {a.layer} ({info.role}, {info.activation}): "
                    f"net = W{a.layer} @ ({src}){b}; out = {_X.sub('net', info.formula)}")
        if a.role == "loss" and "loss" not in seen:
            seen.add("loss")
            return f"loss of this sample: {prog.loss_formula}"
        if a.role in ("delta", "adjoint") and ("b", a.layer) not in seen:
            seen.add(("b", a.layer))
            what = "output layer" if a.layer == n else f"layer {a.layer}"
            return (f"backward, {what}: delta = dE/dnet = dE/dout * dout/dnet "
                    f"(dE/dout summed over the units each out feeds)")
        if a.role == "grad" and "grad" not in seen:
            seen.add("grad")
            return "gradients: dE/dw = delta of the unit w feeds * the input w multiplies"
        return ""

    return header


def kernel_lines(steps, schedule: Schedule, printer: NumbaPrinter) -> list[Line]:
    header = _sections(schedule)
    seen: set = set()
    lines = []
    for a in steps:
        comment = a.comment if a.role in ("delta", "adjoint", "grad", "temp") else ""
        if schedule.strategy == "recompute":
            comment = a.comment
        lines.append(Line(a.lhs.name, printer.doprint(a.rhs), comment, header(a, seen)))
    return lines


def base_context(spec: Spec, *, version: str, spec_file: str, mode: str) -> dict:
    """What every form of the module needs: header, constants, arguments, API."""
    args = array_args(spec)
    return {
        "version": version,
        "generator_sha256": generator_sha256(),
        "spec_file": spec_file.encode("unicode_escape").decode("ascii"),  # for comments
        "spec_file_literal": repr(spec_file),
        "sha256": spec.sha256,
        "spec": spec,
        "name": spec.name,
        "mode": mode,
        "uses_gemm": False,  # the loop form's vector kernel (codegen/loop.py)
        "gemm_max": 0,
        "fastmath32": FASTMATH32,
        # the scalar form loops over samples innermost: X is passed features-by-samples
        "samples_axis": 1 if mode == "scalar" else 0,
        "dtype": spec.codegen.dtype,
        "strategy": spec.codegen.strategy,
        "njit": NJIT_OPTIONS + (f", fastmath={FASTMATH32}" if spec.codegen.dtype == "float32"
                                else ""),
        "args": args,
        "param_shapes": {a.name: a.shape for a in args},
        "updated": [a.name for a in args if a.updated],
        "learning_rate": repr(spec.training.learning_rate),
        "init_values": {k: _nested(v) for k, v in spec.init.explicit.items()},
        "init_scheme": spec.init.scheme,
        "seed": spec.init.seed,
        "fan_in": {a.name: a.shape[1] for a in args if len(a.shape) == 2},
        "n_inputs": spec.network.inputs,
        "n_outputs": spec.network.outputs,
        "mean": spec.loss.reduction == "mean",
        "zero": literal(0, spec.codegen.dtype),
        "n_params": sum(math.prod(a.shape) for a in args),
        "layers": [(ln, "output" if ln == len(spec.network.layers) else "hidden", layer.units,
                    layer.activation.describe(), layer.bias)
                   for ln, layer in enumerate(spec.network.layers, start=1)],
        "loss_kind": spec.loss.kind,
        "reduction": spec.loss.reduction,
        "weight_decay_lambda": repr(spec.loss.weight_decay),
        "out_activation": spec.network.layers[-1].activation.describe(),
        "predict_kind": predict_kind(spec),
        # fit's validation metric, accuracy (templates/common/accuracy.jinja): 1 for a
        # softmax output, 2 for sigmoid outputs, 0 (none) otherwise
        "metric_kind": {"softmax": 1, "sigmoid": 2}.get(
            spec.network.layers[-1].activation.name, 0),
        **optimizer_context(spec, args),
    }


def predict_kind(spec: Spec) -> str:
    """What the module's predict returns: "argmax" (a softmax output: class indices),
    "threshold" (one sigmoid output: 0/1) or "outputs" (anything else: the outputs)."""
    out = spec.network.layers[-1].activation.name
    if out == "softmax":
        return "argmax"
    return "threshold" if out == "sigmoid" and spec.network.outputs == 1 else "outputs"


@dataclass(frozen=True)
class StateArg:
    key: str  # in the state dict: "W1.v", "step"
    arg: str  # inside kernels: vW1
    shape: tuple[int, ...]  # as the user sees it
    kernel_shape: tuple[int, ...]
    dtype: str  # "DTYPE" or "np.int64"


def optimizer_context(spec: Spec, args: list[ArrayArg]) -> dict:
    """The update rule's settings, printed in the kernel dtype, and its state arrays."""
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

    return {
        "optimizer": tr.optimizer,
        "optimizer_title": {"adam": "Adam", "sgd": "SGD"}[tr.optimizer]
        + (" (Nesterov momentum)" if tr.nesterov else " (momentum)" if tr.momentum > 0 else ""),
        "momentum": lit(tr.momentum),
        "nesterov": tr.nesterov,
        "use_momentum": tr.optimizer == "sgd" and tr.momentum > 0,
        "beta1": lit(tr.beta1), "beta2": lit(tr.beta2), "eps": lit(tr.eps),
        "one_minus_beta1": lit(1 - tr.beta1), "one_minus_beta2": lit(1 - tr.beta2),
        "beta1_64": repr(tr.beta1), "beta2_64": repr(tr.beta2),
        "state": state,
        "decay": tr.decay,
    }


def context(spec: Spec, schedule: Schedule, *, version: str, spec_file: str) -> dict:
    """The unrolled (scalar) form: one line per net, out and delta of the lecture."""
    from .printer import NumbaPrinter

    printer = NumbaPrinter(spec.codegen.dtype)
    prog = schedule.program
    ctx = base_context(spec, version=version, spec_file=spec_file, mode="scalar")
    by_name = {a.name: a for a in ctx["args"]}
    loads = [Line(p.symbol.name, _index(p, by_name)) for p in prog.params]
    grads = [(prog.grads[p.symbol].name, "g_" + p.symbol.name, _index(p, by_name).replace(
        by_name[p.array].arg + "[", by_name[p.array].grad + "[", 1)) for p in prog.params]
    ctx.update({
        "strategy": schedule.strategy,
        "inputs": [s.name for s in prog.inputs],
        "targets": [s.name for s in prog.targets],
        "outputs": [s.name for s in prog.outputs],
        "loss": prog.loss.name,
        "loads": loads,
        "grads": grads,
        "forward_lines": kernel_lines(schedule.forward, schedule, printer),
        "loss_lines": kernel_lines(schedule.loss, schedule, printer),
        "grad_lines": kernel_lines(schedule.grad, schedule, printer),
        "counts": schedule.counts,
        "before_cse": schedule.before_cse,
    })
    # the printer records the modules its lines call: math for erf
    ctx["uses_math"] = "math" in printer.module_imports
    return ctx


def _nested(value):
    if isinstance(value, tuple):
        return [_nested(v) for v in value]
    return float(value)


__all__ = ["ArrayArg", "Line", "array_args", "context", "kernel_lines"]
