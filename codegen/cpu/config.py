"""The CPU backend's settings, fixed at code generation.

Each matrix product of the loop form is either `np.dot` (BLAS) or `_gemm`, the module's own
vector kernel (templates/cpu/gemm.jinja). `_gemm` is used where it measured faster
(docs/benchmarks.md, section 9): both sides of the layer's weight matrix at most GEMM_MAX, and
the product at least GEMM_MIN_BYTES wide (a row of its result fills a 512-bit vector). Wider
layers keep BLAS, which blocks for the caches and runs on several threads; `_gemm` is serial.

The @njit options (`NJIT_OPTIONS`, and `FASTMATH32` for float32) are in codegen/context.py:
every target's module compiles its host-side `_accuracy` with them.
"""

from __future__ import annotations

GEMM_MAX = 64  # no side of W<l> over this: the layer's products may use _gemm
GEMM_MIN_BYTES = 64  # and a product's result rows at least this wide (else np.dot)


def use_gemm(units: int, units_in: int, columns: int, dtype: str) -> bool:
    """Whether a product of the layer with weights (units, units_in), whose result has
    `columns` columns, runs through _gemm rather than np.dot."""
    size = 4 if dtype == "float32" else 8
    return max(units, units_in) <= GEMM_MAX and columns * size >= GEMM_MIN_BYTES
