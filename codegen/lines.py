"""Printed lines, as both backends' templates read them: `Line` (one assignment, its comment
and a section header), and the scalar form's lines with the lecture's section headers
(`kernel_lines`), which the CPU and the CUDA scalar contexts both print."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the scalar form's stages need sympy: imported where they run
    from symnet.schedule import Schedule

    from .printer import NumbaPrinter

_X = re.compile(r"\bx\b")  # the registry's variable x in a formula (written as net or z)


@dataclass(frozen=True)
class Line:
    lhs: str
    code: str
    comment: str = ""
    section: str = ""  # a header comment printed before this line


def _sections(schedule: Schedule):
    """A header for each layer's forward part, the loss, and each layer's backward part."""
    prog = schedule.program
    layers = {info.number: info for info in prog.layers}
    n = len(layers)

    def header(a, seen):
        if schedule.cse == "recompute":
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
        if schedule.cse == "recompute":
            comment = a.comment
        lines.append(Line(a.lhs.name, printer.doprint(a.rhs), comment, header(a, seen)))
    return lines


__all__ = ["Line", "kernel_lines"]


def derivative_fields(schedule: Schedule, printer: NumbaPrinter, direction_of, result_of) -> dict:
    """The scalar form's jacobian, input_grad and hvp lines and results, as the CPU and the
    CUDA scalar contexts both take them. `direction_of(entry)`: where the kernel reads
    parameter `entry`'s element of the direction V; `result_of(entry)`: where it writes its
    element of Hv."""
    prog = schedule.program
    if schedule.jacobian is None:  # [codegen] derivatives = false: the stubs say how
        return {"derivatives": False, "jacobian_lines": [], "jacobian_results": [],
                "input_grad_lines": [], "input_grad_results": [], "direction_loads": [],
                "hvp_lines": [], "hvp_results": []}

    def lines(block):
        return [Line(a.lhs.name, printer.doprint(a.rhs), a.comment) for a in block.steps]

    jac = schedule.jacobian
    return {
        "derivatives": True,
        "jacobian_lines": lines(jac),
        "jacobian_results": [(k, d, printer.doprint(e)) for k, row in enumerate(jac.results)
                             for d, e in enumerate(row)],
        "input_grad_lines": lines(schedule.input_grad),
        "input_grad_results": [printer.doprint(e) for e in schedule.input_grad.results[1:]],
        "direction_loads": [Line("v_" + p.symbol.name, direction_of(p)) for p in prog.params],
        "hvp_lines": lines(schedule.hvp),
        "hvp_results": [(printer.doprint(r), "h_" + p.symbol.name, result_of(p))
                        for p, r in zip(prog.params, schedule.hvp.results[1:])],
    }
