"""The CPU backend's scalar form: turns a Schedule into the template's context for `@njit`
kernels.

The printer prints expressions; this module decides argument layout and comments (the section
headers: codegen/lines.py); the template (templates/cpu/module.py.jinja) lays the module out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from symnet.spec import Spec

from ..context import module_context
from ..lines import Line, derivative_fields, kernel_lines
from .context import CpuModuleContext, cpu_module_fields

if TYPE_CHECKING:  # the scalar form's stages need sympy: imported where they run
    from symnet.schedule import Counts, Schedule

    from ..printer import NumbaPrinter


def _index(entry, args_by_name) -> str:
    a = args_by_name[entry.array]
    idx = entry.index or (0,)
    return f"{a.arg}[{', '.join(map(str, idx))}]"


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
    # the input derivatives and the Hessian-vector product (symnet/tangent.py), printed
    derivatives: bool  # [codegen] derivatives: the kernels below are emitted (else stubs)
    jacobian_lines: list[Line]  # the forward pass and its tangents along each input
    jacobian_results: list[tuple[int, int, str]]  # (output k, input d, d out_k / d i_d)
    input_grad_lines: list[Line]  # forward, backward, then dE/di per input
    input_grad_results: list[str]  # dE/di_d per input d, printed
    direction_loads: list[Line]  # each direction element read from its array: v_w1 = VW1[0, 0]
    hvp_lines: list[Line]  # forward, backward, then their R{} tangents along V
    hvp_results: list[tuple[str, str, str]]  # (per-sample R{dE/dp}, accumulator, array element)


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
        **{**cpu_module_fields(module), "strategy": schedule.cse},
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
        **_derivatives(schedule, printer, by_name),
        # the printer records the modules its lines call: math for erf (read last: every
        # line above is printed by then)
        uses_math="math" in printer.module_imports,
    )


def _derivatives(schedule: Schedule, printer: NumbaPrinter, by_name) -> dict:
    """The jacobian, input_grad and hvp kernels' lines and results (CpuScalarContext): V's
    elements read from the V<array> arguments, Hv's written into the d<array> ones."""
    def result_of(p):
        a = by_name[p.array]
        return _index(p, by_name).replace(a.arg + "[", a.grad + "[", 1)

    return derivative_fields(schedule, printer, lambda p: "V" + _index(p, by_name), result_of)


__all__ = ["CpuScalarContext", "cpu_scalar_context"]
