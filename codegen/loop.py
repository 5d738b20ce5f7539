"""The CPU backend's loop form: per-layer `np.dot` for the matrix products and explicit
loops for the elementwise parts, whose expressions come printed from the LoopProgram."""

from __future__ import annotations

from dataclasses import dataclass

from symnet.loop import OUT, LoopProgram, Z
from symnet.spec import Spec

from .cpu import _X, Line, base_context
from .printer import NumbaPrinter


@dataclass(frozen=True)
class LoopLayerCode:
    number: int
    units: int
    units_in: int
    bias: str
    activation: str
    formula: str
    out: str  # f(z), printed
    derivative: str  # f'(z) in y and/or z, printed
    uses_z: bool  # whether the derivative reads net (z)
    uses_y: bool  # whether it reads out (y)
    source: str  # the array this layer reads: X or out<l-1>


def context(spec: Spec, program: LoopProgram, *, version: str, spec_file: str) -> dict:
    printer = NumbaPrinter(spec.codegen.dtype)
    ctx = base_context(spec, version=version, spec_file=spec_file, mode="loop")
    layers = [
        LoopLayerCode(
            number=L.number, units=L.units, units_in=L.units_in, bias=L.bias,
            activation=L.activation, formula=_X.sub("net", L.formula),
            out=printer.doprint(L.out), derivative=printer.doprint(L.derivative),
            uses_z=Z in L.derivative.free_symbols, uses_y=OUT in L.derivative.free_symbols,
            source="X" if L.number == 1 else f"out{L.number - 1}")
        for L in program.layers
    ]
    temps = [Line(s.name, printer.doprint(e), "shared subexpression (CSE)")
             for s, e in program.output_temps]
    ctx.update({
        "loop_layers": layers,
        "output_temps": temps,
        "loss_term": printer.doprint(program.loss_term),
        "output_delta": printer.doprint(program.delta),
        "output_uses_z": any(Z in e.free_symbols
                             for e in [program.loss_term, program.delta]
                             + [e for _, e in program.output_temps]),
        "loss_formula": program.loss_formula,
    })
    return ctx
