"""The CPU backend's loop form: per-layer matrix products and explicit loops for the
elementwise parts, whose expressions come printed from the LoopProgram.

Each matrix product is either `np.dot` (BLAS) or `_gemm`, the module's own vector kernel
(templates/cpu/gemm.jinja). `_gemm` is used where it measured faster (docs/benchmarks.md,
section 9): both sides of the layer's weight matrix at most GEMM_MAX, and the product at
least GEMM_MIN_BYTES wide (a row of its result fills a 512-bit vector). Wider layers keep
BLAS, which blocks for the caches and runs on several threads; `_gemm` is serial."""

from __future__ import annotations

from dataclasses import dataclass

from symnet.loop import OUT, LoopProgram, Z
from symnet.spec import Spec

from .cpu import _X, Line, base_context
from .printer import NumbaPrinter

GEMM_MAX = 64  # no side of W<l> over this: the layer's products may use _gemm
GEMM_MIN_BYTES = 64  # and a product's result rows at least this wide (else np.dot)


def use_gemm(units: int, units_in: int, columns: int, dtype: str) -> bool:
    """Whether a product of the layer with weights (units, units_in), whose result has
    `columns` columns, runs through _gemm rather than np.dot."""
    size = 4 if dtype == "float32" else 8
    return max(units, units_in) <= GEMM_MAX and columns * size >= GEMM_MIN_BYTES


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
    gemm_forward: bool = False  # net<l> = source @ W<l>.T through _gemm (else np.dot)
    gemm_backward: bool = False  # dE/dW<l> and delta<l-1> = delta<l> @ W<l> through _gemm


def _block(steps, printer: NumbaPrinter) -> list[Line]:
    return [Line(a.lhs.name, printer.doprint(a.rhs), a.comment if a.role in
                 ("temp", "shift") else "") for a in steps]


def context(spec: Spec, program: LoopProgram, *, version: str, spec_file: str) -> dict:
    printer = NumbaPrinter(spec.codegen.dtype)
    ctx = base_context(spec, version=version, spec_file=spec_file, mode="loop")
    layers = [
        LoopLayerCode(
            number=L.number, units=L.units, units_in=L.units_in, bias=L.bias,
            activation=L.activation, formula=_X.sub("net", L.formula),
            out=printer.doprint(L.out), derivative=printer.doprint(L.derivative),
            uses_z=Z in L.derivative.free_symbols, uses_y=OUT in L.derivative.free_symbols,
            source="X" if L.number == 1 else f"out{L.number - 1}",
            gemm_forward=use_gemm(L.units, L.units_in, L.units, spec.codegen.dtype),
            gemm_backward=use_gemm(L.units, L.units_in, L.units_in, spec.codegen.dtype))
        for L in program.layers
    ]
    out = program.output

    def used(steps, symbols):
        free = set().union(*(a.rhs.free_symbols for a in steps)) if steps else set()
        return [(k, s.name) for k, s in enumerate(symbols) if s in free]

    printed = [L.out for L in layers] + [L.derivative for L in layers] + [
        line.code for block in ("forward", "loss_steps", "grad_steps")
        for line in _block(getattr(out, block), printer)]
    ctx.update({
        "uses_math": any("math." in code for code in printed),
        "uses_gemm": any(L.gemm_forward or L.gemm_backward for L in layers),
        "gemm_max": GEMM_MAX,
        "gemm_bias_sums": any(L.gemm_forward and L.bias == "per_unit" for L in layers),
        "loop_layers": layers,
        "loss_formula": program.loss_formula,
        "out_forward": _block(out.forward, printer),
        "out_loss": _block(out.loss_steps, printer),
        "out_grad": _block(out.grad_steps, printer),
        "out_names": [s.name for s in out.outs],
        "loss_name": out.loss.name,
        "delta_names": [s.name for s in out.deltas],
        "net_loads": {"forward": used(out.forward, out.nets),
                      "loss": used(out.loss_steps, out.nets),
                      "grad": used(out.grad_steps, out.nets)},
        "target_loads": {"loss": used(out.loss_steps, out.targets),
                         "grad": used(out.grad_steps, out.targets)},
        "weight_decay": (printer.doprint(program.decay) if program.decay is not None
                         else None),
        "weight_decay_grad": (printer.doprint(program.decay_grad)
                       if program.decay_grad is not None else None),
    })
    return ctx
