"""Calling a generated module's inner functions from a test: a function that only compiled
code calls has no Python entry (codegen/context.py, INNER_OPTIONS), so a small compiled loop
calls it."""

from __future__ import annotations

from functools import cache

import numpy as np
from numba import njit


@cache
def _loop(f):
    @njit
    def each(x, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])

    return each


def each(f, values) -> np.ndarray:
    """f(v) for each of the values, called from compiled code: an array of their dtype."""
    x = np.ascontiguousarray(values)
    out = np.empty_like(x)
    _loop(f)(x, out)
    return out
