"""Store versus recompute, predicted and measured: a deep network (64 tanh layers of width 256
by default, the mse loss, float64) under every checkpoint strategy.

For each strategy the compiler predicts (symnet.checkpoint) the bytes per sample of the
kernel's arena (stored activations plus the two delta buffers) and the FLOPs per sample.
This script measures:

- memory: the peak that tracemalloc sees during one gradient call of the kernel file's `_run`,
  the flat parameter and gradient arrays preallocated outside it. Numba's runtime allocates
  through Python's raw allocator, which tracemalloc traces, so the kernel's arena is what it
  sees. The per-sample figure is that peak divided by the batch.
- time: the median of --repeats calls of the same kernel, against two predictions of the
  relative time: the FLOP ratio and the ratio of steps (layer evaluations plus backward
  steps). Run it with OPENBLAS_NUM_THREADS=1 for stable times on a shared machine.

Every strategy runs the same kernel (the module's `_run` with another table of actions,
compiled once); `--modules` compiles one module per strategy instead, each running its own
`_PLAN` (the same kernel file: every strategy is a table for the same code, the store
schedule included). The first strategy (checkpoint:1: every layer kept, the store schedule)
is the reference for the gradients and the relative time. The exit status is 1 when a
prediction is off by more than 10% or when a strategy's gradient differs from the reference
by more than 1e-12 (relative to the largest).

    python benchmarks/bench_checkpoint.py [--depth 64] [--width 256] [--batch 128]
        [--repeats 3] [--modules] [--out DIR]
        [--strategies checkpoint:1,checkpoint:sqrt,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_description  # noqa: E402

import symnet  # noqa: E402
from symnet.checkpoint import make_plan  # noqa: E402
from symnet.codegen.cpu.checkpoint import plan_table  # noqa: E402
from symnet.compiler import as_spec  # noqa: E402
from symnet.loop import lower_loop  # noqa: E402

STRATEGIES = ("checkpoint:1", "checkpoint:sqrt", "budget:8", "budget:4", "budget:2",
              "budget:1", "recompute")


def deep_spec(depth: int, width: int, strategy: str = "store") -> dict:
    return {
        "name": f"deep{depth}x{width}",
        "network": {"inputs": width,
                    "layers": [{"units": width, "activation": "tanh"}] * depth},
        "loss": {"kind": "mse"},
        "codegen": {"mode": "loop", "strategy": strategy},
    }


def measure(call, repeats: int) -> tuple[int, float]:
    call()  # compiled and warm
    tracemalloc.start()
    tracemalloc.reset_peak()
    call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return peak, statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=64)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modules", action="store_true",
                    help="compile one module per strategy (slower)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES),
                    help="comma-separated; the first is the reference for gradients and time")
    ap.add_argument("--out", help="where to write (and cache) the modules; a fresh temporary "
                    "directory by default")
    args = ap.parse_args(argv)
    strategies = args.strategies.split(",")
    rng = np.random.default_rng(0)
    n = args.batch
    X = rng.standard_normal((n, args.width))
    T = rng.standard_normal((n, args.width))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="symnet-bench-ckpt-"))
    print(f"# {cpu_description()}, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"numpy {np.__version__}; {args.depth} tanh layers of width {args.width}, "
          f"batch {n}, float64")

    spec0 = as_spec(deep_spec(args.depth, args.width, strategies[0]))
    t0 = time.perf_counter()
    shared = symnet.compile(spec0, out / "shared")
    params = shared.init_params(seed=1)
    Xk, Tk = shared._data(X, T)
    theta = shared._pack(shared._params(params, False))
    program = lower_loop(spec0)
    p0 = make_plan(spec0, program)
    shared.grad(params, X, T)
    print(f"# the kernel compiled in {time.perf_counter() - t0:.1f} s")
    store_plan = make_plan(spec0.replace_codegen(strategy="store"), program)
    base_flops, base_steps = store_plan.flops(), store_plan.steps
    print(f"{'strategy':<16} {'schedule':<13} {'evals':>5} {'pred B/sample':>13} "
          f"{'meas B/sample':>13} {'err':>6} {'pred GFLOP':>10} {'time s':>7} "
          f"{'rel time':>8} {'rel FLOP':>8} {'rel step':>8} {'grad err':>8}")
    failed = False
    ref = scale = base_time = None
    for text in strategies:
        spec = as_spec(deep_spec(args.depth, args.width, text))
        p = make_plan(spec, program) if text != strategies[0] else p0
        module = shared
        if args.modules and text != strategies[0]:
            module = symnet.compile(spec, out / text.replace(":", "_"))
        g = np.zeros(module._N_THETA, dtype=module.DTYPE)
        plan = None if args.modules else (plan_table(p), p.arena_values)

        def call():
            return module._run(module.GRAD, theta, g, Xk, Tk, plan=plan)

        peak, secs = measure(call, args.repeats)
        if ref is None:  # the first strategy is the reference (checkpoint:1 keeps every layer)
            ref, base_time = g.copy(), secs
            scale = float(np.abs(ref).max())
        predicted = p.peak_bytes
        err = peak / n / predicted - 1
        gerr = float(np.abs(g - ref).max()) / scale
        failed |= abs(err) > 0.10 or gerr > 1e-12
        print(f"{text:<16} {p.resolved:<13} {p.forward_steps:>5} {predicted:>13} "
              f"{peak / n:>13.0f} {err:>+6.1%} {p.flops() * n / 1e9:>10.2f} {secs:>7.3f} "
              f"{secs / base_time:>8.2f} {p.flops() / base_flops:>8.2f} "
              f"{p.steps / base_steps:>8.2f} {gerr:>8.1e}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
