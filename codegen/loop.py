"""The CPU backend's loop form: per-layer matrix products and explicit loops for the
elementwise parts, whose expressions come printed from the LoopProgram.

Each matrix product is either `np.dot` (BLAS) or `_gemm`, the module's own vector kernel
(templates/cpu/gemm.jinja). `_gemm` is used where it measured faster (docs/benchmarks.md,
section 9): both sides of the layer's weight matrix at most GEMM_MAX, and the product at
least GEMM_MIN_BYTES wide (a row of its result fills a 512-bit vector). Wider layers keep
BLAS, which blocks for the caches and runs on several threads; `_gemm` is serial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def decay_code(program, printer: NumbaPrinter) -> tuple[str, str] | None:
    """A LoopProgram's weight decay, printed for one weight w: (lambda*w^2, its gradient), or
    None. The one place either backend's loop form prints the term (the CPU's kernel file and
    its module's tables; the CUDA module's penalty and gradient)."""
    decay = program.decay
    if decay is None:
        return None
    return printer.doprint(decay.term), printer.doprint(decay.grad)


def _block(steps, printer: NumbaPrinter) -> list:
    from .cpu.scalar import Line  # (the CPU package imports this module)

    return [Line(a.lhs.name, printer.doprint(a.rhs), a.comment if a.role in
                 ("temp", "shift") else "") for a in steps]


def output_block_fields(program, printer: NumbaPrinter) -> dict:
    """The fields of codegen/context.py's OutputBlockContext (the loop-form output block as
    both backends' templates read it): the loss formula, the printed forward and gradient
    steps, the names of the outputs and deltas, and the targets the gradient reads."""
    out = program.output
    return {
        "loss_formula": program.loss_formula,
        "out_forward": _block(out.forward, printer),
        "out_grad": _block(out.grad_steps, printer),
        "out_names": [s.name for s in out.outs],
        "delta_names": [s.name for s in out.deltas],
        "target_loads": used_symbols(out.grad_steps, out.targets),
    }


def used_symbols(steps, symbols) -> list[tuple[int, str]]:
    """(index, name) of each of `symbols` that the right-hand sides of `steps` read: the
    output block's nets and targets to load, in both the CPU kernel file and the CUDA
    module."""
    free = set().union(*(a.rhs.free_symbols for a in steps)) if steps else set()
    return [(k, s.name) for k, s in enumerate(symbols) if s in free]
