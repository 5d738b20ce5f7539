"""`symnet explain`'s kernel (templates/cpu/explain.py.jinja): a scalar Program's lines and
the quantities the explanation shows, returned for one sample, in float64."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..context import TemplateContext
from ..lines import Line
from ..writer import render

if TYPE_CHECKING:
    from symnet.program import Program
    from symnet.spec import Spec


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


__all__ = ["ExplainContext", "Quantity", "render_explain"]
