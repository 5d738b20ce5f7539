"""How long compilation takes as the unrolled network grows.

For each network of a series (hidden layers tanh, output sigmoid, loss sse summed) it measures:

- build: `symnet.build(spec)`, i.e. lowering to sympy, backprop, the schedule (CSE for
  "store", inlining for "recompute") and rendering the module's source, with a breakdown
  by stage;
- first: Numba's first compile of the kernels, in a fresh Python process whose
  NUMBA_CACHE_DIR is an empty temporary folder: the first `grad` call (compiles `_grad`),
  then the first `fit` call (compiles `_fit` and `_train_step`, reusing `_grad`);
- cached: the same import and calls in a second fresh process with the same cache folder
  (Numba loads the kernels from its on-disk cache).

Every measurement runs in its own process, so sympy's and Numba's in-memory caches never
carry over from one network to the next. The size limits (`symnet.compiler.MAX_SCALAR_PARAMS`,
`symnet.schedule.RECOMPUTE_MAX_PARAMS` and `RECOMPUTE_MAX_OPS`) are raised inside the
benchmark's processes only, never in the files.
A series stops after the first network whose build + first compile takes longer than
--stop-after seconds (default 90); a step running past --timeout seconds is recorded as such.

    python benchmarks/compile_time.py [--series store,recompute,recompute-deep,loop]
                                      [--max-params N] [--json results.json]

The default series are store, recompute and recompute-deep (about 8 minutes on 2 cores);
"loop" compiles the store networks in the loop form, for comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Layer sizes, inputs first. Parameters: per-unit biases, so sum of (n_in + 1) * n_out.
STORE_SERIES = [
    (2, 4, 1),  # 17
    (4, 8, 8, 2),  # 130
    (6, 10, 10, 2),  # 202
    (8, 12, 12, 2),  # 290
    (8, 16, 12, 4),  # 400
    (8, 16, 16, 4),  # 484
    (16, 16, 16, 4),  # 612
    (16, 20, 16, 4),  # 744
]
RECOMPUTE_SERIES = [  # one hidden layer
    (2, 2, 1),  # 9
    (3, 3, 2),  # 20
    (4, 4, 1),  # 25
    (4, 4, 2),  # 30
    (6, 5, 2),  # 47
    (6, 6, 3),  # 63
    (7, 7, 3),  # 80
]
RECOMPUTE_DEEP_SERIES = [  # two hidden layers: the inlined gradients grow faster with depth
    (2, 2, 2, 1),  # 15
    (2, 2, 2, 2),  # 18 (2-3-3-1, 25 parameters, took over 100 s)
]
# name -> (strategy, form, networks); form "scalar" is the unrolled code these limits are for
SERIES = {
    "store": ("store", "scalar", STORE_SERIES),
    "recompute": ("recompute", "scalar", RECOMPUTE_SERIES),
    "recompute-deep": ("recompute", "scalar", RECOMPUTE_DEEP_SERIES),
    "loop": ("store", "loop", STORE_SERIES),  # for comparison, where symnet has the loop form
}
DEFAULT_SERIES = "store,recompute,recompute-deep"
BATCH = 8


def spec_dict(sizes, strategy, form="scalar"):
    layers = [{"units": u, "activation": "tanh" if i < len(sizes) - 2 else "sigmoid"}
              for i, u in enumerate(sizes[1:])]
    return {
        "name": f"ct_{'_'.join(map(str, sizes))}_{strategy}_{form}",
        "network": {"inputs": sizes[0], "layers": layers},
        "loss": {"kind": "sse", "reduction": "sum"},
        "training": {"learning_rate": 0.1},
        "codegen": {"strategy": strategy},
    }


def n_params(sizes):
    return sum((a + 1) * b for a, b in pairwise(sizes))


# ---------------------------------------------------------------------------------------------
# workers: each runs in a fresh process and prints one JSON object on its last line


def worker_build(spec_json: str, out_dir: str) -> dict:
    sys.path.insert(0, str(ROOT))
    import importlib

    import symnet
    import symnet.autodiff
    import symnet.compiler
    import symnet.lower
    import symnet.schedule
    import symnet.spec

    symnet.compiler.MAX_SCALAR_PARAMS = 10**9
    symnet.schedule.RECOMPUTE_MAX_PARAMS = 10**9
    if hasattr(symnet.schedule, "RECOMPUTE_MAX_OPS"):  # a cap on the inlined operations
        symnet.schedule.RECOMPUTE_MAX_OPS = 10**9
    stages: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    # the names build() looks up when it runs (it imports the stages where it runs them)
    symnet.lower.lower = timed("lower", symnet.lower.lower)
    symnet.autodiff.differentiate = timed("differentiate", symnet.autodiff.differentiate)
    symnet.schedule.schedule = timed("schedule", symnet.schedule.schedule)
    # and the names the CPU backend looks up when it renders (the scalar form, the loop form)
    # (the CPU backend's package, codegen/cpu/; before it, codegen/cpu_backend.py and
    # codegen/kernels.py)
    try:
        cpu = importlib.import_module("symnet.codegen.cpu")
        kernels = importlib.import_module("symnet.codegen.cpu.kernels")
    except ImportError:
        cpu = importlib.import_module("symnet.codegen.cpu_backend")
        kernels = importlib.import_module("symnet.codegen.kernels")
    for name in ("context", "cpu_scalar_context"):  # the scalar form's context, as named then
        if hasattr(cpu, name):
            setattr(cpu, name, timed("render", getattr(cpu, name)))
    cpu.render = timed("render", cpu.render)
    kernels.render = timed("render", kernels.render)

    d = json.loads(spec_json)
    form = d.pop("_form")
    if hasattr(symnet.spec, "MODES"):  # symnet with a choice of forms: ask for this one
        d["codegen"]["mode"] = form
    elif form != "scalar":
        raise SystemExit(f"this symnet has no {form} form")
    spec = symnet.spec_from_dict(d)
    t0 = time.perf_counter()
    compiled = symnet.build(spec)
    build_s = time.perf_counter() - t0
    path = symnet.compiler.write(compiled, out_dir)
    result = {"build_s": build_s, "stages": stages, "n_params": spec.n_params(),
              "lines": compiled.source.count("\n"), "path": str(path)}
    if compiled.schedule is not None:
        counts = compiled.schedule.counts
        result.update(forward_ops=counts.forward_ops, backward_ops=counts.backward_ops,
                      temporaries=counts.temporaries)
    return result


def worker_call(path: str, name: str, n_in: int, n_out: int) -> dict:
    t0 = time.perf_counter()
    import importlib.util

    import numba  # noqa: F401
    import numpy as np

    t_numba = time.perf_counter() - t0
    t0 = time.perf_counter()
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    t_import = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (BATCH, n_in))
    T = rng.uniform(0.0, 1.0, (BATCH, n_out))
    params = module.init_params()
    t0 = time.perf_counter()
    E, _ = module.grad(params, X, T)
    t_grad = time.perf_counter() - t0
    t0 = time.perf_counter()
    losses = module.fit(params, X, T, 2)
    t_fit = time.perf_counter() - t0
    assert math.isfinite(E) and abs(losses[0] - E) <= 1e-9 * max(1.0, abs(E)), (E, losses)
    return {"import_numba_s": t_numba, "import_s": t_import, "grad_s": t_grad, "fit_s": t_fit}


# ---------------------------------------------------------------------------------------------
# the driver


def run_worker(args: list[str], timeout: float, env=None) -> tuple[dict | None, float]:
    """Run this file as a worker; its JSON result (None on timeout) and the process's wall time."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def measure(sizes, strategy, form, timeout: float) -> dict:
    d = dict(spec_dict(sizes, strategy, form), _form=form)
    row = {"sizes": list(sizes), "strategy": strategy, "form": form, "n_params": n_params(sizes),
           "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="symnet-ct-") as tmp:
        out_dir = os.path.join(tmp, "out")
        cache_dir = os.path.join(tmp, "numba-cache")
        os.makedirs(cache_dir)
        build, _ = run_worker(["_build", json.dumps(d), out_dir], timeout)
        row["timeout_s"] = timeout
        if build is None:
            row["timeout"] = "build"
            return row
        row.update(build)
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        call = ["_call", build["path"], d["name"], str(sizes[0]), str(sizes[-1])]
        first, wall = run_worker(call, timeout, env)
        if first is None:
            row["timeout"] = "first"
            return row
        row["first"] = dict(first, process_s=wall)
        row["cache_files"] = sum(len(files) for _, _, files in os.walk(cache_dir))
        cached, wall = run_worker(call, timeout, env)
        if cached is None:
            row["timeout"] = "cached"
            return row
        row["cached"] = dict(cached, process_s=wall)
    return row


def point_cost(row) -> float:
    """build + first compile of grad and fit, seconds (inf after a timeout)."""
    if "first" not in row:
        return math.inf
    return row["build_s"] + row["first"]["grad_s"] + row["first"]["fit_s"]


HEADER = ("| network | params | form, strategy | ops fwd+bwd | lines | build (sympy+render) s "
          "| first grad s | first fit s | first grad+fit s | cached import+grad+fit s | load |")
RULE = "|" + "---|" * (HEADER.count("|") - 1)


def table_row(row) -> str:
    net = "-".join(map(str, row["sizes"]))
    kind = f"{row['form']}, {row['strategy']}"
    if "build_s" not in row:
        return (f"| {net} | {row['n_params']} | {kind} | | | "
                f"> {row['timeout_s']:.0f} (timeout) | | | | | |")
    ops = f"{row['forward_ops']}+{row['backward_ops']}" if "forward_ops" in row else ""
    cells = [net, str(row["n_params"]), kind, ops, str(row["lines"]),
             f"{row['build_s']:.2f}"]
    if "first" in row:
        f = row["first"]
        cells += [f"{f['grad_s']:.2f}", f"{f['fit_s']:.2f}", f"{f['grad_s'] + f['fit_s']:.2f}"]
    else:
        cells += [f"> {row['timeout_s']:.0f} (timeout)", "", ""]
    if "cached" in row:
        c = row["cached"]
        cells.append(f"{c['import_s'] + c['grad_s'] + c['fit_s']:.2f}")
    else:
        cells.append("")
    cells.append(f"{row['load_before']:.1f}")
    return "| " + " | ".join(cells) + " |"


def stage_line(row) -> str:
    st = row.get("stages", {})
    parts = ", ".join(f"{k} {v:.2f}" for k, v in st.items())
    return f"  {'-'.join(map(str, row['sizes']))} {row['form']}, {row['strategy']}: {parts}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Compile time of symnet + Numba as networks grow.")
    ap.add_argument("--series", default=DEFAULT_SERIES,
                    help=f"comma-separated, of: {', '.join(SERIES)} (default {DEFAULT_SERIES})")
    ap.add_argument("--max-params", type=int, default=None,
                    help="skip the networks with more parameters than this")
    ap.add_argument("--stop-after", type=float, default=90.0,
                    help="stop a series after a network whose build + first compile takes "
                         "longer than this many seconds (default 90)")
    ap.add_argument("--timeout", type=float, default=100.0,
                    help="limit for each step of a network, seconds (default 100)")
    ap.add_argument("--json", metavar="PATH", help="also write the raw results here")
    args = ap.parse_args(argv)

    import numba
    import numpy
    import sympy

    print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, numba {numba.__version__}, "
          f"sympy {sympy.__version__}, {os.cpu_count()} CPUs", flush=True)
    rows = []
    t_start = time.perf_counter()
    for name in args.series.split(","):
        strategy, form, series = SERIES[name]
        for sizes in series:
            if args.max_params is not None and n_params(sizes) > args.max_params:
                continue
            row = measure(sizes, strategy, form, args.timeout)
            rows.append(row)
            cost = point_cost(row)
            shown = f"{cost:7.2f} s" if math.isfinite(cost) else f"timed out ({row['timeout']})"
            label = f"{'-'.join(map(str, sizes)):>12} {form:6} {strategy:9}"
            print(f"{label} {row['n_params']:4d} params: build + first grad + fit {shown}",
                  flush=True)
            if cost > args.stop_after:
                print(f"  stopping the {name} series (over {args.stop_after:.0f} s)"
                      if math.isfinite(cost) else f"  stopping the {name} series (timed out)",
                      flush=True)
                break
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s\n")
    print(HEADER)
    print(RULE)
    for row in rows:
        print(table_row(row))
    print("\nbuild stages, seconds:")
    for row in rows:
        if "stages" in row:
            print(stage_line(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_build":
        print(json.dumps(worker_build(*sys.argv[2:4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_call":
        print(json.dumps(worker_call(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                     int(sys.argv[5]))))
    else:
        sys.exit(main())
