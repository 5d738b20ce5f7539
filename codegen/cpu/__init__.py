"""The CPU backend's entry: what symnet.backends asks of the CPU generator (`@njit` kernels).

The scalar form is the context of codegen.cpu rendered into templates/cpu/module.py.jinja.
The loop form is a kernel file shared by every network of the same kinds of layers, with its
KernelInfo, and a module that describes one network to it as tables (codegen.kernels), among
them the schedule of the backward pass (a symnet.checkpoint Plan, codegen.checkpoint).
`symnet explain`'s kernel is a scalar Program with its chain factors, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..context import TemplateContext
from ..writer import render
from .checkpoint import plan_summary
from .kernels import (
    kernel_source,
    load_info,
    matrix_products,
    network_plan,
    render_module,
    save_info,
)
from .scalar import Line, cpu_scalar_context

if TYPE_CHECKING:
    from symnet.program import Program
    from symnet.schedule import Schedule
    from symnet.spec import Spec


def render_scalar(spec: Spec, schedule: Schedule, *, version: str, spec_file: str,
                  config=None) -> str:
    """The unrolled (scalar) form's module (`config` is a GPU backend's; unused here)."""
    return render("cpu/module.py.jinja", cpu_scalar_context(spec, schedule, version=version,
                                                            spec_file=spec_file))


def loop_form(spec: Spec) -> str:
    """The loop form's kernels in a few words, for `symnet compile`'s summary."""
    gemm, dot = matrix_products(spec)
    return f"matrix products: {gemm} by _gemm, {dot} by np.dot"


@dataclass(frozen=True)
class Quantity:
    label: str  # what the explanation calls it
    code: str  # its sympy expression, printed


@dataclass(frozen=True, kw_only=True)
class ExplainContext(TemplateContext):
    """`symnet explain`'s kernel (templates/cpu/explain.py.jinja)."""

    name: str  # the network's name
    version: str  # symnet's version
    spec_file: str  # the spec's file name (without its folder), for comments
    sha256: str  # the spec's SHA-256
    dtype: str  # always "float64": the values to show
    uses_math: bool  # a line calls the math module (erf): the kernel imports it
    params: list[str]  # the scalar parameters' names, in the order the kernel takes them
    inputs: list[str]  # the input symbols' names
    targets: list[str]  # the target symbols' names
    lines: list[Line]  # the scalar program's forward and backward lines, printed
    quantities: list[Quantity]  # the values the explanation shows, in its order


def render_explain(spec: Spec, program: Program, quantities, *, version: str) -> str:
    """`symnet explain`'s kernel: the scalar Program's lines, then each quantity (label,
    sympy expression) that the explanation shows, returned for one sample."""
    from ..printer import NumbaPrinter

    # always float64: the values to show, whatever the module's dtype (a float32 module's
    # own values are checked against them to float32's precision)
    printer = NumbaPrinter("float64")
    lines = [Line(a.lhs.name, printer.doprint(a.rhs), a.comment)
             for a in program.forward + program.backward]
    quantities = [Quantity(label, printer.doprint(expr)) for label, expr in quantities]
    return render("cpu/explain.py.jinja", ExplainContext(
        name=spec.name, version=version, spec_file=spec.source.rsplit("/", 1)[-1],
        sha256=spec.sha256, dtype="float64",
        uses_math="math" in printer.module_imports,  # the printer's record: erf
        params=[p.symbol.name for p in program.params],
        inputs=[s.name for s in program.inputs],
        targets=[s.name for s in program.targets],
        lines=lines, quantities=quantities,
    ))


__all__ = ["kernel_source", "load_info", "loop_form", "network_plan", "plan_summary",
           "render_explain", "render_module", "render_scalar", "save_info"]
