"""The loop form's vector kernel `_gemm` against `np.dot` (BLAS through Numba), product by
product, inside `@njit` as the kernels call them.

Shapes (n x k by k x m): the deep-narrow step's three (forward 256x32 by 32x32, the weight
gradient's delta.T @ a, 32x256 by 256x32, with A transposed, and the backward delta @ W),
narrow ones with remainders, and the mnist-shaped network's wide ones, which stay on BLAS
(GEMM_MAX in codegen/cpu/config.py). Each figure is the best of 7 blocks, in microseconds per
product. BLAS uses the threads threadpoolctl allows (--threads, default 2, like
bench_peers.py); `_gemm` is serial.

    python benchmarks/bench_gemm.py [--threads N] [--dtype float32|float64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = [  # (n, k, m, A transposed)
    (256, 32, 32, False), (32, 256, 32, True), (128, 16, 16, False),
    (250, 30, 31, False), (256, 64, 64, False), (256, 128, 128, False),
    (512, 256, 256, False), (512, 784, 256, False), (256, 512, 784, True),
    (512, 256, 10, False), (256, 32, 1, False),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args()
    from numba import njit
    from threadpoolctl import threadpool_limits

    import symnet
    from symnet.codegen.cpu.config import use_gemm

    spec = {"name": "bench_gemm", "network": {"inputs": 32, "layers": [
        {"units": 32, "activation": "tanh"}, {"units": 32, "activation": "linear"}]},
        "loss": {"kind": "mse"}, "codegen": {"mode": "loop", "dtype": args.dtype}}
    with tempfile.TemporaryDirectory() as d:
        m = symnet.compile(spec, d)
    gemm = m._gemm

    @njit
    def dot(A, B, C):
        np.dot(A, B, C)

    def best(f, A, B, C):
        f(A, B, C)
        reps = max(3, int(3e6 / (2 * A.shape[0] * A.shape[1] * B.shape[1] + 1e4)))
        times = []
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(reps):
                f(A, B, C)
            times.append((time.perf_counter() - t) / reps)
        return min(times) * 1e6

    dt = np.dtype(args.dtype)
    z = np.zeros((2, 2), dtype=dt)
    dot(z, z, z.copy())  # loads SciPy's BLAS, so that threadpoolctl sees it
    rng = np.random.default_rng(0)
    print(f"{args.dtype}, BLAS threads {args.threads}, load {os.getloadavg()[0]:.2f}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"vector bytes {m._VECTOR_BYTES}")
    print("| product (n x k by k x m) | np.dot µs | _gemm µs | np.dot / _gemm | _gemm GFLOP/s "
          "| the loop form uses |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(args.threads):
        for n, k, mm, transposed in SHAPES:
            A = rng.normal(size=(k, n) if transposed else (n, k)).astype(dt)
            A = A.T if transposed else A
            B = rng.normal(size=(k, mm)).astype(dt)
            C = np.empty((n, mm), dtype=dt)
            gemm(A, B, C)
            np.testing.assert_allclose(C, A.astype(np.float64) @ B, rtol=1e-3, atol=1e-3)
            t_dot, t_gemm = best(dot, A, B, C), best(gemm, A, B, C)
            # which side is the layer's: the batch is n (k for the weight gradient)
            units = (n, mm) if transposed else (k, mm)
            chosen = "_gemm" if use_gemm(max(units), min(units), mm, args.dtype) else "np.dot"
            name = f"{n}x{k} by {k}x{mm}" + (" (A = delta.T)" if transposed else "")
            print(f"| {name} | {t_dot:.2f} | {t_gemm:.2f} | {t_dot / t_gemm:.2f} | "
                  f"{2 * n * k * mm / t_gemm / 1e3:.0f} | {chosen} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
