"""The floor Numba sets under any cold start, with nothing of symnet in it.

In fresh processes with an empty Numba cache, each prints: importing numpy, importing numba,
Numba's first compile in a process (a function that adds one: the first compile pays for
Numba's own set-up), and the compile of one full-batch SGD step of a 2-4-1 tanh network with
a mean squared error, written by hand as scalar loops over preallocated arrays (no array
expressions, which cost Numba more: the same step with `W1 -= lr * dW1 / n` and
`np.zeros_like` compiles in about 0.9 s). Then the medians, and their sum: about the least
a Numba-compiled first training step costs on this machine, before anything of symnet (sympy,
the derivation, rendering, a loop over epochs, an optimizer), to set against JAX's cold time
(bench_first_step.py) and scikit-learn's whole fit (bench_sklearn.py).

    python benchmarks/numba_floor.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_description  # noqa: E402

WORKER = r'''
import json, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
from numba import njit
t2 = time.perf_counter()


@njit
def add_one(x):
    return x + 1.0


add_one(1.0)
t3 = time.perf_counter()


@njit
def step(W1, b1, W2, b2, dW1, db1, dW2, db2, h, X, T, lr):
    n = X.shape[0]
    E = 0.0
    for j in range(4):
        db1[j] = 0.0
        dW2[0, j] = 0.0
        for i in range(2):
            dW1[j, i] = 0.0
    db2[0] = 0.0
    for s in range(n):
        for j in range(4):
            z = b1[j]
            for i in range(2):
                z += W1[j, i] * X[s, i]
            h[j] = np.tanh(z)
        y = b2[0]
        for j in range(4):
            y += W2[0, j] * h[j]
        d = y - T[s, 0]
        E += 0.5 * d * d
        db2[0] += d
        for j in range(4):
            dW2[0, j] += d * h[j]
            dh = d * W2[0, j] * (1.0 - h[j] * h[j])
            db1[j] += dh
            for i in range(2):
                dW1[j, i] += dh * X[s, i]
    for j in range(4):
        b1[j] -= lr * db1[j] / n
        W2[0, j] -= lr * dW2[0, j] / n
        for i in range(2):
            W1[j, i] -= lr * dW1[j, i] / n
    b2[0] -= lr * db2[0] / n
    return E / n


rng = np.random.default_rng(0)
X, T = rng.normal(size=(100, 2)), rng.normal(size=(100, 1))
z = np.zeros
step(rng.normal(size=(4, 2)), z(4), rng.normal(size=(1, 4)), z(1), z((4, 2)), z(4), z((1, 4)),
     z(1), z(4), X, T, 0.1)
t4 = time.perf_counter()
print(json.dumps({"numpy": t1 - t0, "numba": t2 - t1, "first compile": t3 - t2,
                  "2-4-1 step": t4 - t3}))
'''


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    runs = []
    for _ in range(a.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "NUMBA_CACHE_DIR": tmp}
            out = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True,
                                 text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"# Numba's floor: {cpu_description()}; medians of {a.repeats} fresh processes")
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    for k, v in medians.items():
        print(f"{k:>14}: {v:.3f} s")
    print(f"{'total':>14}: {sum(medians.values()):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
