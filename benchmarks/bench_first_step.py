"""Time to the first trained step: symnet (spec -> generated module -> Numba kernels) against JAX
(jax.jit of value_and_grad + the SGD update), from a fresh Python process with empty caches.

Four workloads, float32, full-batch SGD, one step (the first three are bench_peers.py's):

- moons: 2-4-2-1, tanh, tanh, sigmoid, bce (mean), batch 1,000;
- mnist: 784-256-256-10, relu, relu, softmax + cross_entropy (mean), batch 512;
- deep: 32 inputs, 16 tanh layers of width 32, a linear output unit, mse, batch 256;
- wide8: 64 inputs, 8 relu layers of width 128, softmax over 10 outputs + cross_entropy
  (mean), batch 256 (random normal inputs and one-hot labels).

Every measurement runs in a fresh Python process (this file with --worker), which prints one
JSON line. The data (X, T, and JAX's initial parameters) are made before the clock starts;
then the measured part is timed inside the process (the interpreter's own start and the import
of numpy are not in it; the whole process's wall time is in the JSON as process_s). "Cold"
means empty Numba and symnet caches (fresh temporary folders for NUMBA_CACHE_DIR and for
symnet's output folder, SYMNET_CACHE_DIR, also passed as out_dir); Python's own bytecode caches
and the OS's file cache stay warm.

- symnet cold: `import symnet` + `symnet.compile(spec, out_dir)` (sympy, rendering, writing,
  importing the generated module and numba) + `init_params()` + the first `fit(params, X, T,
  1)` (Numba compiles the kernels), with that breakdown;
- JAX cold: `import jax` + building the jitted step (bench_peers.Jax: value_and_grad of the
  same network and loss + the SGD update, jax.jit) + its first call, `block_until_ready`.
  The worker checks that neither symnet nor numba was imported. JAX's persistent compilation
  cache stays off (its default);
- symnet warm: a later process with the cold run's caches, the same spec again (import +
  compile, which reuses the generated module, + init_params + first fit, from Numba's cache);
- all entry points: a fresh process with empty caches calls, one after another, the first
  `forward`, `grad`, `train_step` and `fit` (1 step); the all-entry ratio is that process's
  measured part (import, compile, the four first calls) over the cold process's (import,
  compile, the first `fit`): `symnet.compile` may run the first `fit` itself (it tunes a
  network with narrow layers on the machine, codegen/cpu/gemm.py), so the first calls alone
  are not comparable; they are printed too;
- sweep's next point (when deep is run): after deep's cold process, another fresh process with
  the SAME Numba cache and symnet output folders compiles a variant, 12 tanh layers of width 48
  (same inputs, output, loss, optimizer and dtype; learning rate 0.02; its own module name,
  peers_deep_12x48, as a sweep keeps every point's module) and times import + compile +
  init_params + first fit; compared with JAX's cold time for deep;
- sweep's next point in the same process (when deep is run): what a sweep that runs its points
  one after another in one process (a loop over specs, a Dask worker's later tasks) waits for.
  A process with deep's caches runs deep (compile + first fit, untimed), then times
  compile + init_params + first fit of another variant, 10 tanh layers of width 40 (learning
  rate 0.03, module peers_deep_10x40); JAX in its own process does the same with its jitted
  steps (deep's first step, untimed; then the variant's build + first call: a new trace and
  XLA compile, since the shapes changed).

Order within a repeat, per workload: symnet cold, sweep's next point (deep), symnet warm, JAX
cold, all entry points, the next point in the same process (deep: symnet, then JAX). The table
gives medians over the repeats. Threads: OpenBLAS and MKL are limited to --threads (default 2,
as in bench_peers.py) through their environment variables (no import before the clock); XLA
uses the machine's cores, or one thread with --threads 1. If symnet cannot compile softmax +
cross_entropy, the workload's output becomes sigmoid + bce for every contender (as in
bench_peers.py), and the script says so. Every worker imports symnet as an installed copy
is imported: this checkout's bytecode compiled beforehand and Python's default of writing
bytecode kept (machine.as_installed), as JAX's is, compiled when pip installed it.

Targets: symnet cold <= JAX cold on every workload (ratio JAX/symnet >= 1); all-entry ratio
<= 1.5; sweep's next point <= 0.3x JAX's cold time for deep (a fresh process, and in the
same process).

    python benchmarks/bench_first_step.py [--quick] [--repeats N] [--threads N] [--json PATH]
                                          [--workloads moons,mnist,deep,wide8] [--no-sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import bench_peers  # noqa: E402  (numpy and the standard library only: no symnet, no numba)
from machine import as_installed  # noqa: E402

DTYPE = bench_peers.DTYPE
THREADS = 2
COLD_TARGET = 1.0  # JAX cold / symnet cold, at least
ALL_ENTRY_TARGET = 1.5  # first forward + grad + train_step + fit over the first fit alone
SWEEP_TARGET = 0.3  # sweep's next point over JAX's cold time for deep, at most
WORKER_TIMEOUT_S = 1800


# ---------------------------------------------------------------------------------------------
# workloads


def workload_wide8():
    rng = np.random.default_rng(4)
    n = 256
    X = rng.normal(0.0, 1.0, (n, 64))
    T = np.eye(10)[rng.integers(0, 10, n)]
    return {
        "name": "wide8", "title": "wide8 64-(128 relu)x8-10 softmax, cross_entropy, batch 256",
        "inputs": 64, "units": [128] * 8 + [10], "acts": ["relu"] * 8 + ["softmax"],
        "loss": "cross_entropy", "lr": 0.01, "X": X, "T": T,
    }


def workload_deep_next():
    """The sweep's next point after deep: 12 tanh layers of 48, another learning rate."""
    w = bench_peers.workload_deep()
    w.update(name="deep_12x48", title="deep-narrow 32-(48 tanh)x12-1 linear, mse, batch 256",
             units=[48] * 12 + [1], acts=["tanh"] * 12 + ["linear"], lr=0.02)
    return w


def workload_deep_next_in_process():
    """The next point of a sweep run in one process: 10 tanh layers of 40, another learning
    rate (not the fresh process's variant, whose module that process wrote)."""
    w = bench_peers.workload_deep()
    w.update(name="deep_10x40", title="deep-narrow 32-(40 tanh)x10-1 linear, mse, batch 256",
             units=[40] * 10 + [1], acts=["tanh"] * 10 + ["linear"], lr=0.03)
    return w


WORKLOADS = {**bench_peers.WORKLOADS, "wide8": workload_wide8,
             "deep_12x48": workload_deep_next, "deep_10x40": workload_deep_next_in_process}
VARIANTS = ("deep_12x48", "deep_10x40")  # sweep points, not workloads of their own
DEFAULT_WORKLOADS = "moons,mnist,deep,wide8"


def get_workload(name: str, fallback: bool):
    """The workload; with fallback, its softmax + cross_entropy output made sigmoid + bce (what
    bench_peers.build_symnet does when symnet refuses softmax)."""
    w = WORKLOADS[name]()
    if fallback and w["loss"] == "cross_entropy":
        w["acts"] = w["acts"][:-1] + ["sigmoid"]
        w["loss"] = "bce"
        w["title"] = w["title"].replace("softmax", "sigmoid").replace("cross_entropy", "bce")
    return w


def data(w):
    return (np.ascontiguousarray(w["X"], dtype=DTYPE), np.ascontiguousarray(w["T"], dtype=DTYPE))


# ---------------------------------------------------------------------------------------------
# workers: run in a fresh process (this file with --worker KIND JSON), print one JSON line


def worker_symnet(a: dict) -> dict:
    """kind "first": import + compile + init_params + first fit; kind "all": the same, then the
    first forward, grad, train_step and fit one after another."""
    w = get_workload(a["workload"], a["fallback"])
    X, T = data(w)
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    import symnet

    t1 = time.perf_counter()
    module, note = bench_peers.build_symnet(w, a["out_dir"])  # symnet.compile, + fallback
    t2 = time.perf_counter()
    params = module.init_params()
    t3 = time.perf_counter()
    r = {"import": t1 - t0, "compile": t2 - t1, "init_params": t3 - t2,
         "fallback": note is not None, "note": note, "mode": module.MODE,
         "symnet_file": symnet.__file__}
    if a["kind"] == "sweep":  # deep ran (above); now the next point, in this process
        module.fit(params, X, T, 1)
        nxt = get_workload(a["next"], a["fallback"])
        Xn, Tn = data(nxt)
        t = time.perf_counter()
        module, _ = bench_peers.build_symnet(nxt, a["out_dir"])
        params = module.init_params()
        losses = module.fit(params, Xn, Tn, 1)
        return {"next": time.perf_counter() - t, "first_loss": float(losses[0]),
                "mode": module.MODE}
    if a["kind"] == "all":
        calls = (("forward", lambda: module.forward(params, X)),
                 ("grad", lambda: module.grad(params, X, T)[0]),
                 ("train_step", lambda: module.train_step(params, X, T)),
                 ("fit", lambda: module.fit(params, X, T, 1)[0]))
        for name, call in calls:
            t = time.perf_counter()
            out = call()
            r[f"first_{name}"] = time.perf_counter() - t
            if name == "grad":
                r["first_loss"] = float(out)
        r["calls"] = sum(r[f"first_{n}"] for n, _ in calls)
    else:
        t = time.perf_counter()
        losses = module.fit(params, X, T, 1)
        r["first_fit"] = time.perf_counter() - t
        r["first_loss"] = float(losses[0])
    r["total"] = time.perf_counter() - t0
    return r


def jax_params(w) -> dict:
    """Initial parameters for JAX, made with NumPy (symnet's init_params is not importable
    here): weights N(0, 1/fan_in), biases zero."""
    rng = np.random.default_rng(0)
    sizes = [w["inputs"]] + w["units"]
    p = {}
    for i in range(len(w["units"])):
        p[f"W{i + 1}"] = (rng.standard_normal((sizes[i + 1], sizes[i]))
                          / np.sqrt(sizes[i])).astype(DTYPE)
        p[f"b{i + 1}"] = np.zeros(sizes[i + 1], dtype=DTYPE)
    return p


def worker_jax(a: dict) -> dict:
    w = get_workload(a["workload"], a["fallback"])
    X, T = data(w)
    params = jax_params(w)
    t0 = time.perf_counter()
    import jax

    jax.config.update("jax_platforms", "cpu")
    t1 = time.perf_counter()
    step = bench_peers.Jax(w, params, X, T, fori=False)  # jnp arrays + jax.jit(step)
    t2 = time.perf_counter()
    first, _ = step.run(1)  # first call: trace, lower, XLA compile, run; block_until_ready
    t3 = time.perf_counter()
    if a["kind"] == "jax_sweep":  # deep ran (above); now the next point, in this process
        nxt = get_workload(a["next"], a["fallback"])
        Xn, Tn = data(nxt)
        pn = jax_params(nxt)
        t = time.perf_counter()
        first, _ = bench_peers.Jax(nxt, pn, Xn, Tn, fori=False).run(1)
        return {"next": time.perf_counter() - t, "first_loss": first}
    leaked = sorted(m for m in ("symnet", "numba") if m in sys.modules)
    if leaked:
        raise SystemExit(f"the JAX worker imported {leaked}")
    return {"import": t1 - t0, "build": t2 - t1, "first_call": t3 - t2, "total": t3 - t0,
            "first_loss": first, "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()]}


def worker_main(kind: str, arg: str) -> int:
    warnings.filterwarnings("ignore")  # JAX: donated buffers unusable on CPU
    a = json.loads(arg)
    a["kind"] = kind
    r = worker_jax(a) if kind.startswith("jax") else worker_symnet(a)
    print(json.dumps(r))
    return 0


# ---------------------------------------------------------------------------------------------
# the parent


def run_worker(kind: str, env: dict, **kw) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(kw)]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT_S} s"}
    wall = time.perf_counter() - t0
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"worker {kind} failed ({p.returncode}): {tail}",
                "stderr": p.stderr[-4000:]}
    r = json.loads(lines[-1])
    r["process_s"] = wall
    return r


def base_env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("NUMBA_CACHE_DIR", "SYMNET_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR"):
        env.pop(k, None)
    n = str(threads)
    env.update(OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n, JAX_PLATFORMS="cpu")
    if threads == 1:  # as bench_peers.py: XLA's CPU client on one thread
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1").strip()
    return as_installed(env)


def caches(tmp: str, env: dict, tag: str) -> dict:
    """Fresh, empty Numba cache and symnet output folders under tmp."""
    root = Path(tempfile.mkdtemp(prefix=f"{tag}_", dir=tmp))
    (root / "numba").mkdir()
    (root / "out").mkdir()
    return dict(env, NUMBA_CACHE_DIR=str(root / "numba"), SYMNET_CACHE_DIR=str(root / "out"))


def fmt(x, spec=".2f", suffix=""):
    return "failed" if x is None else f"{x:{spec}}{suffix}"


def med(runs: list, key: str):
    v = [r[key] for r in runs if "error" not in r and key in r]
    return statistics.median(v) if v else None


def ratio(a, b):
    return a / b if a is not None and b else None


def one_repeat(name: str, res: dict, args, env0: dict, tmp: str, log) -> None:
    """One repeat of every measurement for a workload; appends to res's lists."""
    fb = res["fallback"]
    env = caches(tmp, env0, name)
    out = env["SYMNET_CACHE_DIR"]
    cold = run_worker("first", env, workload=name, fallback=fb, out_dir=out)
    if cold.get("fallback") and not fb:
        res["fallback"] = fb = True
        res["title"] = get_workload(name, True)["title"]
        res["notes"].append(cold["note"])
        log(f"  note: {cold['note']}")
    res["symnet_cold"].append(cold)
    log(f"  symnet cold {fmt(cold.get('total'))} s" + _parts(cold, (
        "import", "compile", "init_params", "first_fit")) + _err(cold))
    if name == "deep" and args.sweep:
        nxt = run_worker("first", env, workload="deep_12x48", fallback=fb, out_dir=out)
        res["sweep_next"].append(nxt)
        log(f"  sweep's next point (12x48, same caches) {fmt(nxt.get('total'))} s"
            + _parts(nxt, ("import", "compile", "init_params", "first_fit")) + _err(nxt))
    warm = run_worker("first", env, workload=name, fallback=fb, out_dir=out)
    res["symnet_warm"].append(warm)
    log(f"  symnet warm {fmt(warm.get('total'))} s"
        + _parts(warm, ("import", "compile", "init_params", "first_fit")) + _err(warm))
    jx = run_worker("jax", caches(tmp, env0, f"{name}_jax"), workload=name, fallback=fb)
    res["jax_cold"].append(jx)
    log(f"  JAX cold {fmt(jx.get('total'))} s"
        + _parts(jx, ("import", "build", "first_call")) + _err(jx))
    env = caches(tmp, env0, f"{name}_all")
    allr = run_worker("all", env, workload=name, fallback=fb, out_dir=env["SYMNET_CACHE_DIR"])
    res["symnet_all"].append(allr)
    log(f"  symnet all entry points {fmt(allr.get('total'))} s"
        + _parts(allr, ("first_forward", "first_grad", "first_train_step", "first_fit"))
        + _err(allr))
    if name == "deep" and args.sweep:
        env = caches(tmp, env0, f"{name}_inproc")  # deep's kernels compiled, then its variant
        run_worker("first", env, workload=name, fallback=fb, out_dir=env["SYMNET_CACHE_DIR"])
        nxt = run_worker("sweep", env, workload=name, next="deep_10x40", fallback=fb,
                         out_dir=env["SYMNET_CACHE_DIR"])
        res["sweep_in_process"].append(nxt)
        jn = run_worker("jax_sweep", caches(tmp, env0, f"{name}_jax_inproc"), workload=name,
                        next="deep_10x40", fallback=fb)
        res["jax_in_process"].append(jn)
        log(f"  next point in the same process (10x40): symnet {fmt(nxt.get('next'))} s"
            + _err(nxt) + f", JAX {fmt(jn.get('next'))} s" + _err(jn))


def _parts(r, keys):
    if "error" in r:
        return ""
    return " (" + ", ".join(f"{k} {r[k]:.2f}" for k in keys if k in r) + ")"


def _err(r):
    return f" FAILED: {r['error']}" if "error" in r else ""


def summarize(name: str, res: dict) -> dict:
    cold, warm, jx, al = (res[k] for k in ("symnet_cold", "symnet_warm", "jax_cold",
                                           "symnet_all"))
    s = {
        "symnet_cold": med(cold, "total"), "jax_cold": med(jx, "total"),
        "symnet_warm": med(warm, "total"),
        "cold_parts": {k: med(cold, k) for k in ("import", "compile", "init_params",
                                                 "first_fit")},
        "warm_parts": {k: med(warm, k) for k in ("import", "compile", "init_params",
                                                 "first_fit")},
        "jax_parts": {k: med(jx, k) for k in ("import", "build", "first_call")},
        "all_parts": {k: med(al, k) for k in ("first_forward", "first_grad",
                                              "first_train_step", "first_fit", "calls")},
        "all_total": med(al, "total"),
        "mode": next((r["mode"] for r in cold if "mode" in r), None),
    }
    s["ratio_jax_over_symnet"] = ratio(s["jax_cold"], s["symnet_cold"])
    s["all_entry_ratio"] = ratio(s["all_total"], s["symnet_cold"])
    s["all_entry_process_ratio"] = s["all_entry_ratio"]
    if res["sweep_next"]:
        s["sweep_next"] = med(res["sweep_next"], "total")
        s["sweep_parts"] = {k: med(res["sweep_next"], k) for k in ("import", "compile",
                                                                   "init_params", "first_fit")}
        s["sweep_ratio"] = ratio(s["sweep_next"], s["jax_cold"])
    if res["sweep_in_process"]:
        s["sweep_in_process"] = med(res["sweep_in_process"], "next")
        s["jax_in_process"] = med(res["jax_in_process"], "next")
        s["sweep_in_process_ratio"] = ratio(s["sweep_in_process"], s["jax_cold"])
    return s


def print_report(results: dict, summaries: dict, args, header: str) -> None:
    print()
    print(header)
    print()
    print("| workload | symnet cold (s) | JAX cold (s) | ratio JAX/symnet | symnet warm (s) "
          "| all-entry ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in summaries.items():
        print(f"| {name} | {fmt(s['symnet_cold'])} | {fmt(s['jax_cold'])} "
              f"| {fmt(s['ratio_jax_over_symnet'], suffix='x')} | {fmt(s['symnet_warm'])} "
              f"| {fmt(s['all_entry_ratio'])} |")
    print()
    deep = summaries.get("deep")
    if deep and "sweep_next" in deep:
        r = deep["sweep_ratio"]
        verdict = "" if r is None else (" (target <= 0.3x: "
                                        + ("met" if r <= SWEEP_TARGET else "NOT met") + ")")
        print(f"sweep's next point (deep 16x32 -> 12x48, lr 0.02, same Numba and symnet "
              f"caches): {fmt(deep['sweep_next'])} s = {fmt(r, suffix='x')} JAX's cold deep "
              f"{fmt(deep['jax_cold'])} s{verdict}; "
              + ", ".join(f"{k} {fmt(v)}" for k, v in deep["sweep_parts"].items()))
        r = deep.get("sweep_in_process_ratio")
        verdict = "" if r is None else (" (target <= 0.3x: "
                                        + ("met" if r <= SWEEP_TARGET else "NOT met") + ")")
        print(f"sweep's next point in the same process (deep, then 10x40, lr 0.03): symnet "
              f"{fmt(deep.get('sweep_in_process'), '.3f')} s = {fmt(r, '.2f', 'x')} JAX's cold "
              f"deep{verdict}; JAX's own next point in its process "
              f"{fmt(deep.get('jax_in_process'), '.3f')} s")
    else:
        print("sweep's next point: not run (needs deep in --workloads, and no --no-sweep)")
    print()
    print("breakdown (medians, s):")
    for name, s in summaries.items():
        print(f"  {results[name]['title']} ({s['mode']} form)")
        print("    symnet cold: " + ", ".join(f"{k} {fmt(v)}" for k, v in
                                              s["cold_parts"].items()))
        print("    symnet warm: " + ", ".join(f"{k} {fmt(v)}" for k, v in
                                              s["warm_parts"].items()))
        print("    JAX cold:    " + ", ".join(f"{k} {fmt(v)}" for k, v in
                                              s["jax_parts"].items()))
        print("    all entry points, first calls: " + ", ".join(
            f"{k.removeprefix('first_')} {fmt(v)}" for k, v in s["all_parts"].items())
            + f"; whole measured part {fmt(s['all_total'])} s, "
              f"{fmt(s['all_entry_process_ratio'])}x the cold one")
        for n in results[name]["notes"]:
            print(f"    note: {n}")
    print()
    bad = [n for n, s in summaries.items() if s["ratio_jax_over_symnet"] is None
           or s["ratio_jax_over_symnet"] < COLD_TARGET]
    print("target symnet cold <= JAX cold: " + ("met on every workload" if not bad
                                                 else f"NOT met on {', '.join(bad)}"))
    bad = [n for n, s in summaries.items() if s["all_entry_ratio"] is None
           or s["all_entry_ratio"] > ALL_ENTRY_TARGET]
    print(f"target all-entry ratio <= {ALL_ENTRY_TARGET:g}: "
          + ("met on every workload" if not bad else f"NOT met on {', '.join(bad)}"))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2], sys.argv[3])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 1 repeat, moons only")
    p.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    p.add_argument("--workloads", default=None,
                   help=f"comma list (default {DEFAULT_WORKLOADS}; moons with --quick)")
    p.add_argument("--threads", type=int, default=THREADS,
                   help="OpenBLAS/MKL threads (default 2); 1 also limits XLA to one thread")
    p.add_argument("--no-sweep", dest="sweep", action="store_false",
                   help="skip the sweep's next point (run after deep's cold process)")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = p.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.workloads is None:
        args.workloads = "moons" if args.quick else DEFAULT_WORKLOADS
    names = args.workloads.split(",")
    unknown = [n for n in names if n not in WORKLOADS or n in VARIANTS]
    if unknown:
        p.error(f"unknown workloads {unknown}; choose from {DEFAULT_WORKLOADS}")

    date = time.strftime("%Y-%m-%d %H:%M")
    facts = {"cpu": bench_peers.cpu_description(), "cpus": os.cpu_count(), "date": date,
             **bench_peers.git_facts(), "python": sys.version.split()[0],
             "threads": args.threads, "repeats": args.repeats}
    header = (f"# symnet vs JAX: time to the first trained step\n\n"
              f"{facts['cpu']}, {facts['cpus']} CPUs; {date}; symnet at {facts['commit']}"
              + (" (uncommitted changes to the compiler)" if facts["compiler_dirty"] else "")
              + f"; python {facts['python']}; BLAS threads {args.threads}; "
                f"median of {args.repeats} repeat(s)")
    print(header.replace("\n\n", "\n"))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    env0 = base_env(args.threads)
    results = {n: {"title": WORKLOADS[n]()["title"], "fallback": False, "notes": [],
                   "symnet_cold": [], "symnet_warm": [], "jax_cold": [], "symnet_all": [],
                   "sweep_next": [], "sweep_in_process": [], "jax_in_process": []}
               for n in names}
    with tempfile.TemporaryDirectory(prefix="bench_first_step_") as tmp:
        for rep in range(args.repeats):
            for name in names:
                print(f"repeat {rep + 1}/{args.repeats}, {name}:", flush=True)
                one_repeat(name, results[name], args, env0, tmp,
                           lambda s: print(s, flush=True))
    summaries = {n: summarize(n, results[n]) for n in names}
    print_report(results, summaries, args, header)
    facts["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": facts, "results": results,
                                               "summary": summaries}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
