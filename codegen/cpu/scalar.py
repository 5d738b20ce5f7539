"""The CPU backend: turns a Schedule into the template's context for `@njit` kernels.

The printer prints expressions; this module decides argument layout, section headers and
comments; the template (templates/cpu/module.py.jinja) lays the module out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from symnet.spec import Spec

from ..context import FASTMATH32, ModuleContext, module_context

if TYPE_CHECKING:  # the scalar form's stages need sympy: imported where they run
    from symnet.schedule import Counts, Schedule

    from ..printer import NumbaPrinter

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


def predict_kind(spec: Spec) -> str:
    """What the module's predict returns: "argmax" (a softmax output: class indices),
    "threshold" (one sigmoid output: 0/1) or "outputs" (anything else: the outputs)."""
    out = spec.network.layers[-1].activation.name
    if out == "softmax":
        return "argmax"
    return "threshold" if out == "sigmoid" and spec.network.outputs == 1 else "outputs"


@dataclass(frozen=True, kw_only=True)
class CpuModuleContext(ModuleContext):
    """What the CPU module needs besides every target's fields (templates/cpu/module.py.jinja)."""

    # the scalar form loops over samples innermost: X is passed features-by-samples (1)
    samples_axis: int  # the axis of X (and T) that the kernels take samples along
    fastmath32: str  # the float32 kernels' fastmath flags (templates/cpu/fastmath32.jinja)
    uses_gemm: bool  # the module's kernel file has _gemm (codegen/loop.py); False: np.dot only


def cpu_module_fields(module: ModuleContext) -> dict:
    """`module`'s fields and the CPU module's own, to build a CpuModuleContext's subclass."""
    return {**module.own_fields(), "samples_axis": 1 if module.mode == "scalar" else 0,
            "fastmath32": FASTMATH32, "uses_gemm": False}


@dataclass(frozen=True, kw_only=True)
class CpuScalarContext(CpuModuleContext):
    """The CPU scalar form's module: one line per net, out and delta of the lecture."""

    inputs: list[str]  # the input symbols' names, one per feature: i1, i2
    targets: list[str]  # the target symbols' names, one per output: t1, t2
    outputs: list[str]  # the output symbols' names: out3_1, ...
    loss: str  # the per-sample loss's symbol name
    loads: list[Line]  # each scalar parameter read from its array: w1_1_1 = W1[0, 0]
    grads: list[tuple[str, str, str]]  # (per-sample gradient, accumulator, array element)
    forward_lines: list[Line]  # the forward pass, printed, with section headers
    loss_lines: list[Line]  # the per-sample loss, printed
    grad_lines: list[Line]  # the backward pass, printed
    counts: Counts  # operations per sample and stored temporaries (sympy.count_ops)
    uses_math: bool  # a line calls the math module (erf): the module imports it


def cpu_scalar_context(spec: Spec, schedule: Schedule, *, version: str,
                       spec_file: str) -> CpuScalarContext:
    """The unrolled (scalar) form: one line per net, out and delta of the lecture."""
    from ..printer import NumbaPrinter

    printer = NumbaPrinter(spec.codegen.dtype)
    prog = schedule.program
    module = module_context(spec, version=version, spec_file=spec_file, mode="scalar")
    by_name = {a.name: a for a in module.args}
    loads = [Line(p.symbol.name, _index(p, by_name)) for p in prog.params]
    grads = [(prog.grads[p.symbol].name, "g_" + p.symbol.name, _index(p, by_name).replace(
        by_name[p.array].arg + "[", by_name[p.array].grad + "[", 1)) for p in prog.params]
    return CpuScalarContext(
        **{**cpu_module_fields(module), "strategy": schedule.strategy},
        inputs=[s.name for s in prog.inputs],
        targets=[s.name for s in prog.targets],
        outputs=[s.name for s in prog.outputs],
        loss=prog.loss.name,
        loads=loads,
        grads=grads,
        forward_lines=kernel_lines(schedule.forward, schedule, printer),
        loss_lines=kernel_lines(schedule.loss, schedule, printer),
        grad_lines=kernel_lines(schedule.grad, schedule, printer),
        counts=schedule.counts,
        # the printer records the modules its lines call: math for erf
        uses_math="math" in printer.module_imports,
    )


__all__ = ["ArrayArg", "CpuModuleContext", "CpuScalarContext", "Line", "array_args",
           "cpu_module_fields", "cpu_scalar_context", "kernel_lines", "predict_kind"]
