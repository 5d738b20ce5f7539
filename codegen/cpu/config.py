"""The CPU backend's settings, fixed at code generation.

Each matrix product of the loop form is either `np.dot` (BLAS) or `_gemm`, the loop form's own
vector kernel (templates/cpu/gemm.jinja). Only layers with both sides of the weight matrix at
most GEMM_MAX are candidates for `_gemm`; wider layers keep BLAS, which blocks for the caches
and runs on several threads (`_gemm` is serial). Among the candidates, codegen/cpu/gemm.py
measures which is faster on the machine. `use_gemm` is the fixed rule that SYMNET_GEMM=bounds
applies instead, the same on every machine (it measured right on an AVX-512 Xeon,
docs/benchmarks.md, section 9): the product also at least GEMM_MIN_BYTES wide (a row of its
result fills a 512-bit vector).

The @njit options (`NJIT_OPTIONS`, and `FASTMATH32` for float32) are in codegen/context.py:
every target's module compiles its host-side `_accuracy` with them.
"""

from __future__ import annotations

# OpenBLAS runs a product of at most this many multiply-adds (m * n * k) on one thread: work
# shared out over threads keeps every product left on np.dot under it in each thread's share
# (BLAS's own threads inside them would contend with them)
ONE_THREAD_BLAS_MAX = 4 * 65536
GEMM_MAX = 64  # no side of W<l> over this: the layer's products may use _gemm
GEMM_MIN_BYTES = 64  # SYMNET_GEMM=bounds: a product's result rows at least this wide


def use_gemm(units: int, units_in: int, columns: int, dtype: str) -> bool:
    """The fixed rule (SYMNET_GEMM=bounds): whether a product of the layer with weights
    (units, units_in), whose result has `columns` columns, runs through _gemm."""
    size = 4 if dtype == "float32" else 8
    return max(units, units_in) <= GEMM_MAX and columns * size >= GEMM_MIN_BYTES


def one_thread_rows(units: int, units_in: int) -> int:
    """The most rows a product of a layer with weights (units, units_in) may have for OpenBLAS
    to run it on one thread (rows * units * units_in <= ONE_THREAD_BLAS_MAX)."""
    return ONE_THREAD_BLAS_MAX // (units * units_in)


# the loop form's update rules, by number (hyper[RULE]; the gemm file's RULE_<name> constants,
# its _update's branches): one kernel file serves every optimizer
UPDATE_RULES = ("sgd", "momentum", "nesterov", "adam")


def update_rule(settings) -> int:
    """The number in UPDATE_RULES of the rule that the optimizer's settings
    (codegen/context.py, `optimizer_settings`) describe."""
    if settings.optimizer == "adam":
        return UPDATE_RULES.index("adam")
    if settings.use_momentum:
        return UPDATE_RULES.index("nesterov" if settings.nesterov else "momentum")
    return UPDATE_RULES.index("sgd")
