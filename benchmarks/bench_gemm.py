"""The loop form's vector kernel `_gemm` against `np.dot` (BLAS through Numba), product by
product, inside `@njit` as the kernels call them; and what symnet measures on this machine to
choose between them, layer shape by layer shape (codegen/cpu/gemm.py).

Shapes (n x k by k x m): the deep-narrow step's three (forward 256x32 by 32x32, the weight
gradient's delta.T @ a, 32x256 by 256x32, with A transposed, and the backward delta @ W),
narrow ones with remainders, and the mnist-shaped network's wide ones, which stay on BLAS
(GEMM_MAX in codegen/cpu/config.py). Each figure is the best of 7 blocks, in microseconds per
product. BLAS uses the threads threadpoolctl allows (--threads, default 2, like
bench_peers.py); `_gemm` is serial. --avx2 compiles for haswell (benchmarks/machine.py).

The second table is what symnet does with it (codegen/cpu/gemm.py): per network (float32,
tanh layers, batch 256), the step of `fit` with the fixed bounds of codegen/cpu/config.py
(SYMNET_GEMM=bounds) against the step after `symnet.compile` tuned it on this machine
(SYMNET_GEMM=measure, in a fresh folder), both timed in this process, interleaved, median of
15 blocks; and the choices (forward, backward) of the first two layers.

    python benchmarks/bench_gemm.py [--threads N] [--dtype float32|float64] [--avx2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_description, emulate_avx2  # noqa: E402

if "--avx2" in sys.argv:  # before numpy loads its OpenBLAS
    emulate_avx2()

import numpy as np  # noqa: E402

SHAPES = [  # (n, k, m, A transposed)
    (256, 32, 32, False), (32, 256, 32, True), (128, 16, 16, False),
    (250, 30, 31, False), (256, 64, 64, False), (256, 128, 128, False),
    (512, 256, 256, False), (512, 784, 256, False), (256, 512, 784, True),
    (512, 256, 10, False), (256, 32, 1, False),
]
NETWORKS = [(32, 16), (16, 16), (48, 12), (64, 8)]  # (width, depth), 32 inputs, 1 output


def _network(name, width, depth, dtype):
    return {"name": name, "network": {"inputs": 32, "layers": [
        {"units": width, "activation": "tanh"}] * depth + [{"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"}, "training": {"learning_rate": 0.01},
        "codegen": {"dtype": dtype, "mode": "loop"}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--avx2", action="store_true", help="compile for haswell (AVX2)")
    args = p.parse_args()
    from numba import njit
    from threadpoolctl import threadpool_limits

    import symnet
    from symnet.codegen.cpu import gemm as calibration

    folder = tempfile.mkdtemp(prefix="bench_gemm_")
    g = calibration.load_gemm_file(Path(folder))
    gemm = g._gemm

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
    print(f"{cpu_description()}")
    print(f"{args.dtype}, BLAS threads {args.threads}, load {os.getloadavg()[0]:.2f}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"vector bytes {g._VECTOR_BYTES}, tile {g._TILE_ROWS} x {g._TILE_VECTORS} vectors")
    print("| product (n x k by k x m) | np.dot µs | _gemm µs | np.dot / _gemm | _gemm GFLOP/s |")
    print("|---|---|---|---|---|")
    with threadpool_limits(args.threads):
        for n, k, mm, transposed in SHAPES:
            A = rng.normal(size=(k, n) if transposed else (n, k)).astype(dt)
            A = A.T if transposed else A
            B = rng.normal(size=(k, mm)).astype(dt)
            C = np.empty((n, mm), dtype=dt)
            gemm(A, B, C)
            np.testing.assert_allclose(C, A.astype(np.float64) @ B, rtol=1e-3, atol=1e-3)
            t_dot, t_gemm = best(dot, A, B, C), best(gemm, A, B, C)
            name = f"{n}x{k} by {k}x{mm}" + (" (A = delta.T)" if transposed else "")
            print(f"| {name} | {t_dot:.2f} | {t_gemm:.2f} | {t_dot / t_gemm:.2f} | "
                  f"{2 * n * k * mm / t_gemm / 1e3:.0f} |")
    print(f"\nthe step of fit, fixed bounds against tuned on this machine ({args.dtype}, "
          f"batch {calibration.ROWS}, µs per step)")
    print("| network | bounds | tuned | tuned / bounds | bounds' choice | tuned choice |")
    print("|---|---|---|---|---|---|")
    os.environ["SYMNET_KERNEL_DIR"] = folder  # where the tuned choices go
    rng = np.random.default_rng(1)
    X = rng.normal(size=(calibration.ROWS, 32)).astype(dt)
    T = rng.normal(size=(calibration.ROWS, 1)).astype(dt)
    with threadpool_limits(args.threads):
        for width, depth in NETWORKS:
            mods = {}
            for how in ("bounds", "measure"):
                os.environ["SYMNET_GEMM"] = how
                mods[how] = symnet.compile(_network(f"net_{how}_{width}x{depth}", width, depth,
                                                    args.dtype), Path(folder) / how)
            params = {how: m.init_params() for how, m in mods.items()}
            for how, m in mods.items():
                m.fit(params[how], X, T, 3)
            times = {how: [] for how in mods}
            for r in range(15):
                for how in (("bounds", "measure") if r % 2 == 0 else ("measure", "bounds")):
                    t = time.perf_counter()
                    mods[how].fit(params[how], X, T, 20)
                    times[how].append((time.perf_counter() - t) / 20 * 1e6)
            med = {how: statistics.median(v) for how, v in times.items()}

            def choice(m):
                k = m._kernels
                return " ".join(
                    "(" + ", ".join("_gemm" if v else "np.dot" for v in row) + ")"
                    for row in m._LAYOUT[1:3, [k.GEMM_FORWARD, k.GEMM_BACKWARD]].tolist())

            print(f"| {width} x {depth} tanh | {med['bounds']:.1f} | {med['measure']:.1f} | "
                  f"{med['measure'] / med['bounds']:.3f} | {choice(mods['bounds'])} | "
                  f"{choice(mods['measure'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
