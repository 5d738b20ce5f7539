"""The floor Numba and sympy set under symnet's time to the first step, with nothing of symnet.

For each of bench_first_step.py's workloads, in fresh processes (the data made, numpy imported
before the clock, as there):

- cold (an empty Numba cache): importing numba; Numba's first compile in a process (a function
  that adds one: the first compile pays for Numba's own set-up); compiling the smallest training
  step of the workload's network that Numba can compile (numba_floor_kernels.py: one full-batch
  SGD step written by hand in scalar loops, the scalar form's network written out for moons, a
  loop over a table of layers for the others); and running that step once. Their sum is the
  least a Numba-compiled first step costs, before anything of symnet: the derivation, rendering,
  an epoch loop, an optimizer, minibatches;
- importing sympy (symnet derives every gradient with it: a cold compile imports it);
- JAX cold: bench_first_step.py's own JAX worker (import jax, jit, the first step) in the same
  run, the time symnet's cold start is measured against;
- warm (a later process with the cold one's Numba cache, as a sweep's next point has): importing
  numba, Numba's first load from its cache in a process (its set-up: Numba imports its typing
  and lowering registries before loading anything), loading the step, running it; against 0.3x
  JAX's cold time (issue 12's target for a sweep's next point).

Medians over the repeats; the workloads run interleaved with JAX in each repeat.

    python benchmarks/numba_floor.py [--repeats N] [--workloads moons,mnist,deep,wide8]
                                     [--no-jax] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_first_step  # noqa: E402
from machine import cpu_description  # noqa: E402

WORKLOADS = ("moons", "mnist", "deep", "wide8")
SWEEP_TARGET = bench_first_step.SWEEP_TARGET


def worker(kind: str, name: str) -> dict:
    """A fresh process's figures (printed as one JSON line by --worker)."""
    if kind == "sympy":
        t0 = time.perf_counter()
        import sympy  # noqa: F401

        return {"sympy import": time.perf_counter() - t0}
    import numpy as np

    w = bench_first_step.get_workload(name, False)
    X, T = bench_first_step.data(w)
    dtype = X.dtype.type
    t0 = time.perf_counter()
    import numba  # noqa: F401

    t1 = time.perf_counter()
    import numba_floor_kernels as k

    k.add_one(1.0)
    t2 = time.perf_counter()
    if name == "moons":
        arrays = k.moons_network(dtype)

        def step():
            return k.moons_step(*arrays, X, T, dtype(0.01))
    else:
        widths = [w["inputs"]] + w["units"]
        theta, table, values, deltas = k.loop_network(widths, w["acts"], X.shape[0], dtype)
        loss = k.SOFTMAX_CROSS_ENTROPY if w["loss"] == "cross_entropy" else k.MSE

        def step():
            return k.loop_step(theta, table, values, deltas, X, T, dtype(0.01), loss)
    t3 = time.perf_counter()
    first = step()
    t4 = time.perf_counter()
    second = step()
    t5 = time.perf_counter()
    if not (np.isfinite(first) and second < first):
        raise SystemExit(f"{name}: the step did not train (loss {first} then {second})")
    run = t5 - t4
    setup = "first compile" if kind == "cold" else "first load"
    step_key = "step compile" if kind == "cold" else "step load"
    return {"numba import": t1 - t0, setup: t2 - t1, step_key: max(t4 - t3 - run, 0.0),
            "step run": run, "loss": first}


def run_worker(kind: str, name: str, env: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, name]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=HERE.parent)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"numba_floor worker {kind} {name} failed ({p.returncode}): {tail}")
    return json.loads(lines[-1])


def total(r: dict, parts) -> float:
    return sum(r[k] for k in parts)


COLD = ("numba import", "first compile", "step compile", "step run")
WARM = ("numba import", "first load", "step load", "step run")


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--no-jax", dest="jax", action="store_false",
                   help="skip JAX's cold start (no ratios)")
    p.add_argument("--json", help="also write every process's figures as JSON")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(*a.worker)))
        return 0
    names = [n.strip() for n in a.workloads.split(",") if n.strip()]
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        p.error(f"--workloads: unknown {unknown}; expected some of {', '.join(WORKLOADS)}")
    env0 = bench_first_step.base_env(2)
    res = {n: {"cold": [], "warm": [], "jax": []} for n in names}
    sympy = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(a.repeats):
            sympy.append(run_worker("sympy", "-", env0))
            for n in names:
                env = dict(env0, NUMBA_CACHE_DIR=tempfile.mkdtemp(dir=tmp))
                res[n]["cold"].append(run_worker("cold", n, env))
                res[n]["warm"].append(run_worker("warm", n, env))
                if a.jax:
                    r = bench_first_step.run_worker("jax", env0, workload=n, fallback=False)
                    if "error" in r:
                        raise SystemExit(f"JAX on {n}: {r['error']}")
                    res[n]["jax"].append(r)
                print(f"repeat {repeat + 1}/{a.repeats} {n}: cold floor "
                      f"{total(res[n]['cold'][-1], COLD):.2f} s", file=sys.stderr)
    s = median(sympy, "sympy import")
    print(f"# Numba's and sympy's floor under the first step: {cpu_description()}; medians of "
          f"{a.repeats} fresh processes each, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"importing sympy: {s:.3f} s\n")
    print("cold (empty Numba cache), seconds:\n")
    print("| workload | numba import | first compile | step compile | step run | floor "
          "| + sympy import | JAX cold | (floor + sympy) / JAX |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {"sympy import": s}
    for n in names:
        cold = res[n]["cold"]
        floor = statistics.median(total(r, COLD) for r in cold)
        jax = median(res[n]["jax"], "total") if a.jax else None
        summary[n] = {"floor": floor, "jax": jax}
        cells = [f"{median(cold, k):.3f}" for k in COLD]
        ratio = f"{(floor + s) / jax:.2f}x" if jax else "-"
        print(f"| {n} | {' | '.join(cells)} | {floor:.2f} | {floor + s:.2f} | "
              f"{f'{jax:.2f}' if jax else '-'} | {ratio} |")
    print("\nwarm (a later process, the same Numba cache: a sweep's next point at the least), "
          "seconds:\n")
    print(f"| workload | numba import | first load | step load | step run | floor "
          f"| {SWEEP_TARGET}x JAX cold |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in names:
        warm = res[n]["warm"]
        floor = statistics.median(total(r, WARM) for r in warm)
        summary[n]["warm floor"] = floor
        jax = summary[n]["jax"]
        cells = [f"{median(warm, k):.3f}" for k in WARM]
        print(f"| {n} | {' | '.join(cells)} | {floor:.2f} | "
              f"{f'{SWEEP_TARGET * jax:.2f}' if jax else '-'} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": cpu_description(), "summary": summary,
                                            "sympy": sympy, "runs": res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
