"""The lecture's 2-2-2 example (examples/mazur.toml): symnet's compiled `fit` against a plain
NumPy loop doing the same math, 10,000 SGD steps each.

Both sides: one sample x = (0.05, 0.10), target t = (0.01, 0.99); sigmoid units; one bias
shared by the units of each layer; E = sum 1/2 (t - y)^2 (summed); SGD with learning rate
0.5 on the weights only (the biases stay at 0.35 and 0.60).

Numba's compile time is excluded (the module is compiled, imported and `fit` called once
before timing). Each side is timed several times from the initial parameters; the median is
reported. The exit status is 1 when the two final losses differ (with --strict, also when
the ratio is below the 100x target).

    python benchmarks/bench_mazur.py [--repeats N] [--steps N] [--strict]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "mazur.toml"
X = np.array([[0.05, 0.10]])
T = np.array([[0.01, 0.99]])
STEPS = 10_000
LR = 0.5
EXPECTED_LOSS = 3.51019e-05  # after 10,000 steps
TARGET_RATIO = 100.0


def initial():
    """The spec's initial values, as (W1, b1, W2, b2); W has shape (units_out, units_in)."""
    W1 = np.array([[0.15, 0.20], [0.25, 0.30]])
    W2 = np.array([[0.40, 0.45], [0.50, 0.55]])
    return W1, 0.35, W2, 0.60


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_fit(W1, b1, W2, b2, X, T, steps, lr):
    """Plain NumPy, matrix form: forward, backprop, SGD on W1 and W2. Returns the final loss."""
    W1 = W1.copy()
    W2 = W2.copy()
    for _ in range(steps):
        H = sigmoid(X @ W1.T + b1)  # (batch, 2)
        Y = sigmoid(H @ W2.T + b2)  # (batch, 2)
        D2 = (Y - T) * Y * (1.0 - Y)  # dE/dnet, output layer
        D1 = (D2 @ W2) * H * (1.0 - H)  # dE/dnet, hidden layer
        W2 -= lr * (D2.T @ H)
        W1 -= lr * (D1.T @ X)
    H = sigmoid(X @ W1.T + b1)
    Y = sigmoid(H @ W2.T + b2)
    return 0.5 * float(np.sum((T - Y) ** 2))


def symnet_run(module, steps):
    """Time the compiled fit alone (in place on fresh parameters). Returns (seconds, loss)."""
    params = module.init_params()
    t0 = time.perf_counter()
    module.fit(params, X, T, steps)
    seconds = time.perf_counter() - t0
    return seconds, module.loss(params, X, T)


def numpy_run(steps):
    """Time the NumPy loop. Returns (seconds, loss)."""
    W1, b1, W2, b2 = initial()
    t0 = time.perf_counter()
    loss = numpy_fit(W1, b1, W2, b2, X, T, steps, LR)
    return time.perf_counter() - t0, loss


def timed(run, repeats):
    """Median and minimum time of `repeats` runs, and the last run's final loss."""
    times, loss = [], None
    for _ in range(repeats):
        seconds, loss = run()
        times.append(seconds)
    return statistics.median(times), min(times), loss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per side (default 7)")
    ap.add_argument("--steps", type=int, default=STEPS, help="SGD steps (default 10000)")
    ap.add_argument("--strict", action="store_true",
                    help="exit with status 1 when the ratio is below the target too")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))  # the repository's symnet, installed or not
    import symnet

    with tempfile.TemporaryDirectory(prefix="symnet-bench-") as out_dir:
        t0 = time.perf_counter()
        module = symnet.compile(SPEC, out_dir=out_dir)
        t_build = time.perf_counter() - t0
        # warm-up: Numba compiles _fit (and what it calls) in this first call
        t_jit, _ = symnet_run(module, 1)
        # the initial values the module uses are the ones the NumPy loop starts from
        p = module.init_params()
        W1, b1, W2, b2 = initial()
        assert np.array_equal(p["W1"], W1) and np.array_equal(p["W2"], W2)
        assert float(p["b1"]) == b1 and float(p["b2"]) == b2

        t_sym, t_sym_min, loss_sym = timed(lambda: symnet_run(module, args.steps), args.repeats)
        numpy_run(10)  # warm-up
        t_np, t_np_min, loss_np = timed(lambda: numpy_run(args.steps), args.repeats)

    ratio = t_np / t_sym
    print(f"mazur 2-2-2, {args.steps} SGD steps, lr {LR}, median of {args.repeats} runs")
    print(f"  symnet build (sympy + render + write + import) {t_build:6.3f} s")
    print(f"  Numba first compile + call of fit              {t_jit:6.3f} s  (excluded below)")
    print(f"  symnet fit   {t_sym * 1e3:10.3f} ms (min {t_sym_min * 1e3:.3f})  "
          f"{t_sym / args.steps * 1e9:8.1f} ns/step  final loss {loss_sym:.6e}")
    print(f"  NumPy loop   {t_np * 1e3:10.3f} ms (min {t_np_min * 1e3:.3f})  "
          f"{t_np / args.steps * 1e9:8.1f} ns/step  final loss {loss_np:.6e}")
    print(f"  ratio NumPy / symnet: {ratio:.0f}x of the medians (target >= {TARGET_RATIO:.0f}x), "
          f"{t_np_min / t_sym_min:.0f}x of the minimums")

    ok = True
    if not np.isclose(loss_sym, loss_np, rtol=1e-9, atol=0.0):
        print(f"FAIL: final losses differ: {loss_sym!r} vs {loss_np!r}")
        ok = False
    if args.steps == STEPS and not np.isclose(loss_sym, EXPECTED_LOSS, rtol=1e-5, atol=0.0):
        print(f"FAIL: final loss {loss_sym:.6e}, expected {EXPECTED_LOSS:.5e}")
        ok = False
    if ok:
        print("OK: same final loss")
    if ratio < TARGET_RATIO:
        print(f"BELOW TARGET: ratio {ratio:.0f}x < {TARGET_RATIO:.0f}x")
        ok = ok and not args.strict
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
