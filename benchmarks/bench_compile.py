"""How long the mnist-shaped network of bench_peers.py (784-256-256-10, relu, relu, softmax +
cross_entropy, float32, loop form) takes to compile, and to load once compiled.

Each repeat uses a fresh temporary folder (spec, output folder and Numba cache) and measures,
each in a fresh Python process:

- compile: `python -m symnet compile SPEC -o OUT` (interpreter start, importing symnet and
  sympy, lowering, backprop, rendering, writing), as the wall time of the command; a second
  process gives the breakdown (import symnet / build / write);
- first: with NUMBA_CACHE_DIR set to the empty cache folder (Numba would otherwise cache in
  OUT/__pycache__, which is fresh too), import numba, import the generated module, call
  `grad` once (Numba compiles _grad) and then `fit` for 1 step (compiles _train_step and
  _fit, reusing _grad);
- cached: a new process with the same cache folder imports numba and the module and calls
  `fit` for 1 step: Numba loads the kernels from its cache.

Targets: compile + first `grad` + first `fit` under 10 s; cached import of the module (with
scipy.linalg, which the kernels' np.dot needs) + one `fit` call under 1 s (importing numba
itself, about 0.3 to 0.5 s, is reported separately).
If symnet cannot compile softmax + cross_entropy yet, the network's output becomes sigmoid
with bce (as in bench_peers.py), and the script says so.

    python benchmarks/bench_compile.py [--repeats N] [--json PATH]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPILE_TARGET_S = 10.0
CACHED_TARGET_S = 1.0


def spec_toml(softmax: bool) -> str:
    out = ("softmax", "cross_entropy") if softmax else ("sigmoid", "bce")
    lines = ['name = "peers_mnist"', "", "[network]", "inputs = 784"]
    for units, act in ((256, "relu"), (256, "relu"), (10, out[0])):
        lines += ["", "[[network.layers]]", f"units = {units}", f'activation = "{act}"']
    lines += ["", "[loss]", f'kind = "{out[1]}"', 'reduction = "mean"',
              "", "[training]", 'optimizer = "sgd"', "learning_rate = 0.01",
              "", "[codegen]", 'dtype = "float32"', ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# workers: run in a fresh process (this file with --worker), print one JSON line


def worker_build(spec: str, out_dir: str) -> dict:
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    import symnet.compiler

    t1 = time.perf_counter()
    compiled = symnet.compiler.build(spec)
    t2 = time.perf_counter()
    symnet.compiler.write(compiled, out_dir)
    t3 = time.perf_counter()
    return {"import": t1 - t0, "build": t2 - t1, "write": t3 - t2}


def worker_load(out_dir: str, first: bool) -> dict:
    import importlib.util

    t0 = time.perf_counter()
    import numba  # noqa: F401
    import numpy as np

    t1 = time.perf_counter()
    path = Path(out_dir) / "peers_mnist.py"
    spec = importlib.util.spec_from_file_location("peers_mnist", path)
    m = importlib.util.module_from_spec(spec)
    sys.modules["peers_mnist"] = m
    spec.loader.exec_module(m)
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, (512, m.N_INPUTS)).astype(m.DTYPE)
    T = np.eye(m.N_OUTPUTS, dtype=m.DTYPE)[rng.integers(0, m.N_OUTPUTS, 512)]
    params = m.init_params()
    r = {"import_numba": t1 - t0, "import_module": t2 - t1}
    t = time.perf_counter()
    import scipy.linalg  # noqa: F401  (np.dot in a kernel needs it; the first call imports it)

    r["import_scipy"] = time.perf_counter() - t
    if first:
        t3 = time.perf_counter()
        m.grad(params, X, T)
        t4 = time.perf_counter()
        r["first_grad"] = t4 - t3
    t5 = time.perf_counter()
    m.fit(params, X, T, 1)
    r["first_fit" if first else "fit"] = time.perf_counter() - t5
    r["mode"] = m.MODE
    return r


# ---------------------------------------------------------------------------------------------


def run(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, p


def worker_cmd(*args):
    return [sys.executable, str(Path(__file__).resolve()), "--worker", *args]


def last_json(p):
    if p.returncode != 0:
        raise SystemExit(f"worker failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def one_repeat(softmax: bool) -> tuple[dict, str | None]:
    with tempfile.TemporaryDirectory(prefix="bench_compile_") as tmp:
        tmp = Path(tmp)
        spec, out, cache = tmp / "peers_mnist.toml", tmp / "out", tmp / "numba_cache"
        out.mkdir()
        cache.mkdir()
        env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(cache))
        spec.write_text(spec_toml(softmax))
        load1 = os.getloadavg()[0]
        t_cli, p = run([sys.executable, "-m", "symnet", "compile", str(spec), "-o", str(out)],
                       env)
        note = None
        if p.returncode == 2 and softmax:
            note = (f"symnet refused softmax + cross_entropy ({p.stderr.strip()}); "
                    f"measured with a sigmoid output and bce")
            return {}, note
        if p.returncode != 0:
            raise SystemExit(f"symnet compile failed:\n{p.stdout}\n{p.stderr}")
        # the breakdown, in a fresh process writing into another fresh folder
        _, pb = run(worker_cmd("build", str(spec), str(tmp / "out_breakdown")), env)
        breakdown = last_json(pb)
        t_first, pf = run(worker_cmd("first", str(out)), env)
        first = last_json(pf)
        t_cached, pc = run(worker_cmd("cached", str(out)), env)
        cached = last_json(pc)
        return {
            "load": load1,
            "compile_cli": t_cli, "breakdown": breakdown,
            "first_process": t_first, **{f"first_{k}": v for k, v in first.items()
                                         if k != "mode"},
            "cached_process": t_cached, **{f"cached_{k}": v for k, v in cached.items()
                                           if k != "mode"},
            "mode": first["mode"],
        }, note


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind = sys.argv[2]
        if kind == "build":
            print(json.dumps(worker_build(sys.argv[3], sys.argv[4])))
        else:
            print(json.dumps(worker_load(sys.argv[3], first=(kind == "first"))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()

    softmax, notes, runs = True, [], []
    while len(runs) < args.repeats:
        r, note = one_repeat(softmax)
        if note:
            notes.append(note)
            print(f"note: {note}")
            softmax = False
            continue
        runs.append(r)
        print(f"repeat {len(runs)} (load {r['load']:.1f}): compile {r['compile_cli']:.2f} s, "
              f"first grad {r['first_first_grad']:.2f} s + fit {r['first_first_fit']:.2f} s, "
              f"cached import {r['cached_import_module'] + r['cached_import_scipy']:.3f} s "
              f"+ fit {r['cached_fit']:.3f} s")

    def med(key, sub=None):
        return statistics.median(r[key][sub] if sub else r[key] for r in runs)

    def rng(key, sub=None):
        v = [r[key][sub] if sub else r[key] for r in runs]
        return f"{statistics.median(v):6.2f} s  ({min(v):.2f} to {max(v):.2f})"

    out = "softmax + cross_entropy" if softmax else "sigmoid + bce"
    print(f"\nmnist-shaped 784-256-256-10 relu/relu/{out}, float32, {runs[0]['mode']} form; "
          f"median of {len(runs)} (min to max)")
    print(f"  symnet compile (CLI process)           {rng('compile_cli')}")
    print(f"    import symnet {med('breakdown', 'import'):.2f} s, build "
          f"{med('breakdown', 'build'):.2f} s, write {med('breakdown', 'write'):.3f} s")
    print(f"  first process: import numba            {rng('first_import_numba')}")
    print(f"                 import module           {rng('first_import_module')}")
    print(f"                 import scipy.linalg     {rng('first_import_scipy')}")
    print(f"                 first grad (compile)    {rng('first_first_grad')}")
    print(f"                 first fit (compile)     {rng('first_first_fit')}")
    print(f"                 whole process           {rng('first_process')}")
    print(f"  cached process: import numba           {rng('cached_import_numba')}")
    print(f"                  import module          {rng('cached_import_module')}")
    print(f"                  import scipy.linalg    {rng('cached_import_scipy')}")
    print(f"                  fit, 1 step            {rng('cached_fit')}")
    print(f"                  whole process          {rng('cached_process')}")
    total = [r["compile_cli"] + r["first_first_grad"] + r["first_first_fit"] for r in runs]
    cached = [r["cached_import_module"] + r["cached_import_scipy"] + r["cached_fit"]
              for r in runs]
    t, c = statistics.median(total), statistics.median(cached)
    print(f"  compile + first grad + first fit: {t:.2f} s (target < {COMPILE_TARGET_S:g} s: "
          f"{'met' if t < COMPILE_TARGET_S else 'NOT met'})")
    print(f"  cached import of the module (+ scipy.linalg) + fit: {c:.3f} s "
          f"(target < {CACHED_TARGET_S:g} s: "
          f"{'met' if c < CACHED_TARGET_S else 'NOT met'}); with numba's import "
          f"{c + med('cached_import_numba'):.3f} s")
    for n in notes:
        print(f"  note: {n}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "notes": notes,
                                               "compile_total_s": t, "cached_s": c}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
