"""How the kernels write a number (no sympy: the generated module's tables and settings are
printed without it)."""

from __future__ import annotations


def literal(value: float, dtype: str) -> str:
    """`value` as a literal of the kernel dtype: plain for float64, `np.float32(...)` for
    float32, so that no float64 constant promotes float32 arithmetic."""
    text = repr(float(value))
    return f"np.float32({text})" if dtype == "float32" else text
