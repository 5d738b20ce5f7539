"""symnet's generated training step against its peers: PyTorch (eager and torch.compile), JAX
(a jitted step, and K steps in one jit with lax.fori_loop) and a hand-written NumPy step.

Three workloads, float32, full-batch SGD (forward, backward, update of every W and b):

- moons: 2-4-2-1, tanh, tanh, sigmoid, bce (mean), batch 1,000 (two-moons data);
- mnist: 784-256-256-10, relu, relu, softmax + cross_entropy (mean), batch 512 (random
  inputs in [0, 1) and one-hot labels: only the shapes matter for speed);
- deep: 32 inputs, 16 tanh layers of width 32, a linear output unit, mse, batch 256.

Contenders:

- symnet fit: the generated module's `fit(params, X, T, K)`, K steps in one compiled call,
  divided by K (symnet's intended hot path);
- symnet train_step: K calls of `train_step(params, X, T)` from Python;
- torch eager: zero_grad, forward, loss, backward, optimizer.step (torch.optim.SGD);
- torch.compile: the same loop with forward + loss and the optimizer step compiled;
- jax jit: one jitted step (value_and_grad + update) called K times from Python;
- jax fori: K steps in one jit with lax.fori_loop (the fair peer of symnet's fit);
- numpy: a hand-written matrix-form step (X @ W.T, deltas, W -= lr * dW).

All start from the same parameters (symnet's init_params). Before timing, each contender's
first-step loss is compared with a float64 NumPy reference (to 1e-4 relative), and the loss
after the warm-up block of K steps with the other contenders' (to 1e-3 relative, a check that
the update rules agree). Then every contender runs a block of K steps per repeat, all of them
interleaved in one process (the order rotates each repeat), and the table gives the median
microseconds per step and the ratio to PyTorch eager (> 1: faster than PyTorch eager).

Threads (--threads N, default 2, the same for everyone): torch.set_num_threads(N); NumPy's and
SciPy's OpenBLAS (the generated module's np.dot calls SciPy's) limited to N with threadpoolctl;
JAX's XLA CPU client uses the machine's cores (2 here), or one thread with --threads 1
(XLA_FLAGS); symnet's fit shares each batch's rows out over N threads where the batch allows it
(SYMNET_THREADS; the other symnet rows are serial). With N = 2, "torch eager, 1 thr" and
"symnet fit, 1 thr" rows are added as diagnostics. The cpu/wall column is the process's CPU
time over wall time during the blocks (about N for a contender that keeps N threads busy, below
1 when other jobs take the CPU). Run it once as is and once with `env -u OPENBLAS_CORETYPE -u
OPENBLAS_L2_SIZE` to compare OpenBLAS's kernels (threadpoolctl's "architecture" is printed at
the end).

    python benchmarks/bench_peers.py [--quick] [--threads N] [--repeats N] [--json PATH]
                                     [--workloads moons,mnist,deep] [--no-torch-compile]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_description, emulate_avx2, emulating_avx2  # noqa: E402

if "--avx2" in sys.argv:  # before numpy loads its OpenBLAS (argparse checks it again below)
    emulate_avx2()

import numpy as np  # noqa: E402

THREADS = 2  # --threads; every contender gets the same number
DTYPE = np.float32
CHECK_RTOL = 1e-4  # first-step loss against the float64 reference
AFTER_RTOL = 1e-3  # loss after the warm-up block, between contenders


# ---------------------------------------------------------------------------------------------
# workloads


def _layers(units, acts):
    return [{"units": u, "activation": a} for u, a in zip(units, acts, strict=True)]


def workload_moons():
    rng = np.random.default_rng(1)
    n = 1000
    angle = rng.uniform(0.0, np.pi, n)
    upper = rng.integers(0, 2, n)
    x = np.where(upper, np.cos(angle), 1.0 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    X = np.stack([x, y], axis=1) + rng.normal(0.0, 0.1, (n, 2))
    T = upper[:, None].astype(float)
    return {
        "name": "moons", "title": "moons 2-4-2-1 tanh/tanh/sigmoid, bce, batch 1000",
        "inputs": 2, "units": [4, 2, 1], "acts": ["tanh", "tanh", "sigmoid"], "loss": "bce",
        "lr": 0.1, "X": X, "T": T, "steps": 400, "quick_steps": 100, "target": 20.0,
        "bound": "elementwise float32 math: about 10 tanh/exp/log and 100 other flops a "
                 "sample, vectorized over the 1,000 samples",
    }


def workload_mnist():
    rng = np.random.default_rng(2)
    n = 512
    X = rng.uniform(0.0, 1.0, (n, 784))
    T = np.eye(10)[rng.integers(0, 10, n)]
    return {
        "name": "mnist", "title": "mnist-shaped 784-256-256-10 relu/relu/softmax, "
                                  "cross_entropy, batch 512",
        "inputs": 784, "units": [256, 256, 10], "acts": ["relu", "relu", "softmax"],
        "loss": "cross_entropy", "lr": 0.01, "X": X, "T": T, "steps": 10, "quick_steps": 4,
        "target": 1.0, "bound": "BLAS (sgemm)",
    }


def workload_deep():
    rng = np.random.default_rng(3)
    n = 256
    X = rng.normal(0.0, 1.0, (n, 32))
    T = np.sin(X[:, :4].sum(axis=1, keepdims=True))
    return {
        "name": "deep", "title": "deep-narrow 32-(32 tanh)x16-1 linear, mse, batch 256",
        "inputs": 32, "units": [32] * 16 + [1], "acts": ["tanh"] * 16 + ["linear"],
        "loss": "mse", "lr": 0.01, "X": X, "T": T, "steps": 60, "quick_steps": 20,
        "target": 5.0, "bound": "49 small matrix products (256x32 by 32x32) in symnet's _gemm "
                                "vector kernel, near one core's FMA peak, then the tanh and "
                                "elementwise loops",
    }


WORKLOADS = {"moons": workload_moons, "mnist": workload_mnist, "deep": workload_deep}


def spec_dict(w):
    return {
        "name": f"peers_{w['name']}",
        "network": {"inputs": w["inputs"], "layers": _layers(w["units"], w["acts"])},
        "loss": {"kind": w["loss"], "reduction": "mean"},
        "training": {"optimizer": "sgd", "learning_rate": w["lr"]},
        "codegen": {"dtype": "float32"},
    }


def kernel_facts(module):
    """What the generated kernels look like: the form, the kernel's decorator, how many
    matrix products go to _gemm and to np.dot, and whether the elementwise functions are libm
    calls (np.tanh, np.exp) or pure-arithmetic float32 ones. A loop-form module's kernels are
    in its kernel file (KERNEL_FILE); its products are counted per layer from its layout."""
    loop = hasattr(module, "KERNEL_FILE")
    src = Path(module.KERNEL_FILE if loop else module.__file__).read_text()
    lines = src.splitlines()
    kernel = "def _run(" if loop else "def _grad("
    grad = next(i for i, line in enumerate(lines) if line.startswith(kernel))
    libm = sorted({f for f in ("np.tanh(", "np.exp(", "np.log(", "np.logaddexp(", "np.log1p(")
                   if f in src})
    if loop:  # per layer: the forward product, dE/dW, and delta<l-1> (not for layer 1)
        k, layout = module._kernels, module._LAYOUT[1:]
        gemm = [row[c] for i, row in enumerate(layout)
                for c in (k.GEMM_FORWARD, k.GEMM_BACKWARD, k.GEMM_BACKWARD)[:3 if i else 2]]
        products = {"_gemm": int(sum(gemm)), "np.dot": len(gemm) - int(sum(gemm))}
    else:
        products = {"_gemm": 0, "np.dot": sum(ln.strip().startswith("np.dot(")
                                              or "= np.dot(" in ln for ln in lines)}
    return {"mode": module.MODE, "decorator": lines[grad - 1].strip(), "products": products,
            "libm_calls": [f[:-1] for f in libm],
            "float32_helpers": sorted({w.split("(")[0] for w in src.split()
                                       if w.startswith(("_tanh32(", "_exp32(", "_log32(",
                                                        "_softplus32("))})}


def build_symnet(w, out_dir):
    """Compile the workload's spec. If the loop form cannot emit softmax + cross_entropy yet,
    fall back to a sigmoid output with bce for every contender, and say so."""
    import symnet

    try:
        return symnet.compile(spec_dict(w), out_dir=out_dir), None
    except symnet.SymnetError as exc:
        if w["loss"] != "cross_entropy":
            raise
        note = (f"symnet refused softmax + cross_entropy ({exc}); this row uses a sigmoid "
                f"output with bce (summed over the 10 outputs) for every contender")
        w["acts"] = w["acts"][:-1] + ["sigmoid"]
        w["loss"] = "bce"
        w["title"] = w["title"].replace("softmax", "sigmoid").replace("cross_entropy", "bce")
        return symnet.compile(spec_dict(w), out_dir=out_dir), note


# ---------------------------------------------------------------------------------------------
# the contenders: each has run(K) -> (loss before the first step, loss before the last step)


class SymnetFit:
    name = "symnet fit"

    def __init__(self, module, params, X, T, threads=None):
        self.m, self.p, self.X, self.T = module, params, X, T
        self.threads = threads  # None: the module's THREADS (--threads)
        if threads is not None:
            self.name = f"symnet fit, {threads} thr"

    def run(self, k):
        saved = getattr(self.m, "THREADS", None)
        if self.threads is not None and saved is not None:
            self.m.THREADS = self.threads
        try:
            losses = self.m.fit(self.p, self.X, self.T, k)
        finally:
            if saved is not None:
                self.m.THREADS = saved
        return float(losses[0]), float(losses[-1])


class SymnetStep:
    name = "symnet train_step"

    def __init__(self, module, params, X, T):
        self.m, self.p, self.X, self.T = module, params, X, T

    def run(self, k):
        step = self.m.train_step
        first = last = step(self.p, self.X, self.T)
        for _ in range(k - 1):
            last = step(self.p, self.X, self.T)
        return first, last


def _numpy_act(name):
    if name == "tanh":
        return np.tanh, lambda y: 1.0 - y * y
    if name == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda y: (y > 0.0).astype(y.dtype))
    if name == "sigmoid":
        return (lambda z: 1.0 / (1.0 + np.exp(-z))), (lambda y: y * (1.0 - y))
    raise ValueError(name)


class NumpyStep:
    """Matrix form, by hand: forward, output delta (fused with the loss), backprop, update."""

    name = "numpy"

    def __init__(self, w, params, X, T, dtype=DTYPE):
        self.L = len(w["units"])
        self.Ws = [params[f"W{i + 1}"].astype(dtype) for i in range(self.L)]
        self.bs = [params[f"b{i + 1}"].astype(dtype) for i in range(self.L)]
        self.acts = [_numpy_act(a) for a in w["acts"][:-1]]
        self.loss, self.lr = w["loss"], dtype(w["lr"])
        self.X, self.T = X.astype(dtype), T.astype(dtype)

    def step(self):
        X, T, Ws, bs, lr = self.X, self.T, self.Ws, self.bs, self.lr
        n = X.shape[0]
        outs = [X]
        for i in range(self.L - 1):
            outs.append(self.acts[i][0](outs[-1] @ Ws[i].T + bs[i]))
        z = outs[-1] @ Ws[-1].T + bs[-1]
        if self.loss == "bce":
            E = np.sum(np.logaddexp(0.0, z) - T * z) / n
            D = (1.0 / (1.0 + np.exp(-z)) - T) / n
        elif self.loss == "cross_entropy":
            zs = z - z.max(axis=1, keepdims=True)
            ez = np.exp(zs)
            s = ez.sum(axis=1, keepdims=True)
            E = -np.sum(T * (zs - np.log(s))) / n
            D = (ez / s * T.sum(axis=1, keepdims=True) - T) / n
        else:  # mse: 1/K sum_k (t - y)^2, mean over the batch
            r = z - T
            E = np.sum(r * r) / (n * T.shape[1])
            D = r * (2.0 / (n * T.shape[1]))
        for i in range(self.L - 1, -1, -1):
            gW = D.T @ outs[i]
            gb = D.sum(axis=0)
            if i > 0:
                D = (D @ Ws[i]) * self.acts[i - 1][1](outs[i])
            Ws[i] -= lr * gW
            bs[i] -= lr * gb
        return float(E)

    def run(self, k):
        first = last = self.step()
        for _ in range(k - 1):
            last = self.step()
        return first, last


def _torch_model(torch, w, params):
    nn = torch.nn
    mods = []
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    sizes = [w["inputs"]] + w["units"]
    for i in range(len(w["units"])):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[f"W{i + 1}"]))
            lin.bias.copy_(torch.from_numpy(params[f"b{i + 1}"]))
        mods.append(lin)
        if i < len(w["units"]) - 1:
            mods.append(acts[w["acts"][i]]())
    return nn.Sequential(*mods)  # the output layer's activation is fused into the loss


def _torch_loss(torch, w):
    F = torch.nn.functional
    if w["loss"] == "bce":  # summed over the outputs, mean over the batch
        return lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="sum") / z.shape[0]
    if w["loss"] == "cross_entropy":  # t holds class indices here
        return lambda z, t: F.cross_entropy(z, t)
    return lambda z, t: F.mse_loss(z, t)


class TorchEager:
    name = "torch eager"

    def __init__(self, torch, w, params, X, T, compiled=False, threads=None):
        self.torch = torch
        self.threads = threads  # None: the process's setting (--threads)
        self.default_threads = torch.get_num_threads()
        if threads is not None:
            self.name = f"torch eager, {threads} thr"
        self.model = _torch_model(torch, w, params)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=w["lr"])
        self.X = torch.from_numpy(X)
        self.T = torch.from_numpy(T.argmax(axis=1)) if w["loss"] == "cross_entropy" \
            else torch.from_numpy(T)
        loss_fn = _torch_loss(torch, w)
        model = self.model
        self.fwd = lambda x, t: loss_fn(model(x), t)
        self.opt_step = self.opt.step
        self.note = None
        if compiled:
            self.name = "torch.compile"
            self.fwd = torch.compile(self.fwd, dynamic=False)
            self.opt_step = torch.compile(self.opt.step, dynamic=False)

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.fwd(self.X, self.T)
        loss.backward()
        self.opt_step()
        return loss

    def run(self, k):
        if self.threads is not None:
            self.torch.set_num_threads(self.threads)
        try:
            first = last = self.step()
            for _ in range(k - 1):
                last = self.step()
        finally:
            self.torch.set_num_threads(self.default_threads)
        return float(first.detach()), float(last.detach())


class Jax:
    def __init__(self, w, params, X, T, fori):
        import jax
        import jax.numpy as jnp

        self.jax = jax
        self.name = "jax fori" if fori else "jax jit"
        L = len(w["units"])
        acts = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}
        hidden = [acts[a] for a in w["acts"][:-1]]
        kind, lr = w["loss"], DTYPE(w["lr"])

        def loss_fn(ps, X, T):
            h = X
            for i, (W, b) in enumerate(ps):
                z = h @ W.T + b
                h = hidden[i](z) if i < L - 1 else z
            n = X.shape[0]
            if kind == "bce":
                return jnp.sum(jnp.logaddexp(0.0, z) - T * z) / n
            if kind == "cross_entropy":
                return -jnp.sum(T * jax.nn.log_softmax(z, axis=1)) / n
            return jnp.mean((z - T) ** 2)

        def step(ps, X, T):
            E, g = jax.value_and_grad(loss_fn)(ps, X, T)
            return jax.tree.map(lambda p, d: p - lr * d, ps, g), E

        self.params = [(jnp.asarray(params[f"W{i + 1}"]), jnp.asarray(params[f"b{i + 1}"]))
                       for i in range(L)]
        self.X, self.T = jnp.asarray(X), jnp.asarray(T)
        if fori:
            def fit(ps, X, T, k):
                def body(i, carry):
                    ps, losses = carry
                    ps, E = step(ps, X, T)
                    return ps, losses.at[i].set(E)
                return jax.lax.fori_loop(0, k, body, (ps, jnp.zeros(k, jnp.float32)))
            self.fit = jax.jit(fit, static_argnums=3, donate_argnums=0)
        else:
            self.step = jax.jit(step, donate_argnums=0)
        self.fori = fori

    def run(self, k):
        if self.fori:
            self.params, losses = self.fit(self.params, self.X, self.T, k)
            losses = np.asarray(losses)  # waits for the result
            return float(losses[0]), float(losses[-1])
        self.params, first = self.step(self.params, self.X, self.T)
        last = first
        for _ in range(k - 1):
            self.params, last = self.step(self.params, self.X, self.T)
        self.jax.block_until_ready(self.params)
        return float(first), float(last)


# ---------------------------------------------------------------------------------------------
# the machine


def git_facts():
    """The commit benchmarked, and whether the compiler's files had uncommitted changes."""
    import subprocess

    def git(*a):
        p = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", "symnet", "codegen", "templates")
    return {"commit": git("rev-parse", "--short", "HEAD"), "compiler_dirty": bool(dirty)}


def machine_facts(torch, jax):
    import numba
    import scipy
    import threadpoolctl

    facts = {
        **git_facts(),
        "cpu": cpu_description(),
        "avx2_stand_in": emulating_avx2(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
        "torch": getattr(torch, "__version__", None), "jax": getattr(jax, "__version__", None),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,  # get_num_threads() would launch them
        "torch_threads": torch.get_num_threads() if torch else None,
        "jax_devices": [str(d) for d in jax.devices()] if jax else None,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "MKL_ENABLE_INSTRUCTIONS": os.environ.get("MKL_ENABLE_INSTRUCTIONS"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "blas": [{k: i.get(k) for k in ("internal_api", "version", "architecture",
                                         "num_threads", "filepath")}
                 for i in threadpoolctl.threadpool_info()],
    }
    if torch:
        facts["torch_blas"] = "mkl" if torch.backends.mkl.is_available() else "other"
        facts["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return facts


def print_facts(f):
    print(f"machine: {f['cpu']}, load average "
          + " ".join(f"{x:.2f}" for x in f["loadavg"]))
    print(f"  symnet at commit {f['commit']}"
          + (" with uncommitted changes to symnet/, codegen/ or templates/"
             if f["compiler_dirty"] else ""))
    print(f"  python {f['python']}, numpy {f['numpy']}, scipy {f['scipy']}, numba {f['numba']}, "
          f"torch {f['torch']}, jax {f['jax']}")
    print(f"  --threads {f['threads']}: BLAS {f['threads']}, numba pool (not launched) "
          f"{f['numba_threads']}, torch {f['torch_threads']}, "
          f"jax devices {f['jax_devices']}, XLA_FLAGS={f['XLA_FLAGS']!r} (without flags XLA "
          f"uses the machine's cores)")
    if f.get("torch_blas"):
        print(f"  torch: BLAS {f['torch_blas']}, CPU capability {f['torch_cpu_capability']}")
    print(f"  OPENBLAS_CORETYPE={f['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={f['OPENBLAS_L2_SIZE']} "
          f"MKL_ENABLE_INSTRUCTIONS={f['MKL_ENABLE_INSTRUCTIONS']}")
    for b in f["blas"]:
        print(f"  threadpoolctl: {b['internal_api']} {b['version']} kernel "
              f"{b['architecture']}, {b['num_threads']} threads ({Path(b['filepath']).name})")


# ---------------------------------------------------------------------------------------------


def bench_workload(w, args, torch, jax_ok, out_dir):
    k = w["quick_steps"] if args.quick else w["steps"]
    module, note = build_symnet(w, out_dir)
    X = w["X"].astype(DTYPE)
    T = w["T"].astype(DTYPE)
    init = module.init_params()
    fresh = lambda: {n: a.copy() for n, a in init.items()}  # noqa: E731

    ref = NumpyStep(w, {n: a.astype(np.float64) for n, a in init.items()},
                    w["X"], w["T"], dtype=np.float64).step()

    contenders = [SymnetFit(module, fresh(), X, T), SymnetStep(module, fresh(), X, T)]
    if args.threads != 1 and getattr(module, "_team", lambda n: 1)(X.shape[0]) > 1:
        contenders.append(SymnetFit(module, fresh(), X, T, threads=1))  # a diagnostic
    notes = [note] if note else []
    if torch is not None:
        contenders.append(TorchEager(torch, w, fresh(), X, T))
        if args.threads != 1:  # a diagnostic: PyTorch's OpenMP on a busy machine
            contenders.append(TorchEager(torch, w, fresh(), X, T, threads=1))
        if not args.no_torch_compile:
            contenders.append(TorchEager(torch, w, fresh(), X, T, compiled=True))
    if jax_ok:
        contenders += [Jax(w, fresh(), X, T, fori=False), Jax(w, fresh(), X, T, fori=True)]
    contenders.append(NumpyStep(w, fresh(), X, T))

    # warm-up block (compiles everything) and the checks
    kf = kernel_facts(module)
    print(f"\n{w['title']}: {k} steps a block, {args.repeats} blocks each")
    print(f"  symnet: {kf['mode']} form, {kf['decorator']}, libm calls {kf['libm_calls']}, "
          f"float32 helpers {kf['float32_helpers']}, call sites of matrix products "
          f"{kf['products']}")
    ok = []
    after = {}
    for c in contenders:
        t0 = time.perf_counter()
        try:
            first, last = c.run(k)
        except Exception as exc:  # torch.compile, mostly: report and drop the contender
            notes.append(f"{c.name} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            print(f"  {c.name:18s} FAILED ({notes[-1]})")
            continue
        warm = time.perf_counter() - t0
        rel = abs(first - ref) / abs(ref)
        status = "ok" if rel <= CHECK_RTOL else "MISMATCH"
        print(f"  {c.name:18s} first-step loss {first:.7f} (float64 reference {ref:.7f}, "
              f"rel {rel:.1e} {status}); warm-up block {warm:.2f} s")
        if status != "ok":
            notes.append(f"{c.name}: first-step loss {first} differs from the reference {ref}")
            continue
        after[c.name] = last
        ok.append(c)
    mid = statistics.median(after.values())
    for name, last in after.items():
        if abs(last - mid) > AFTER_RTOL * abs(mid):
            notes.append(f"{name}: loss before step {k} is {last:.7f}, the others' median "
                         f"{mid:.7f}")
            print(f"  WARNING {notes[-1]}")
    print(f"  loss before step {k}: " + ", ".join(f"{n} {v:.6f}" for n, v in after.items()))

    times = {c.name: [] for c in ok}
    cpu = {c.name: [] for c in ok}  # process CPU time / wall time: the cores kept busy
    for r in range(args.repeats):
        order = ok[r % len(ok):] + ok[:r % len(ok)]
        for c in order:
            time.sleep(0.05)  # let the previous contender's spinning threads go to sleep
            gc.collect()
            gc.disable()
            t0, c0 = time.perf_counter(), time.process_time()
            c.run(k)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            gc.enable()
            times[c.name].append(dt / k * 1e6)
            cpu[c.name].append(dc / dt)

    med = {n: statistics.median(v) for n, v in times.items()}
    base = med.get("torch eager")
    rows = []
    print(f"  {'contender':18s} {'us/step':>10s} {'min':>10s} {'max':>10s} {'cpu/wall':>8s} "
          f"{'vs torch eager':>15s}")
    for n, v in times.items():
        ratio = base / med[n] if base else None
        busy = statistics.median(cpu[n])
        rows.append({"contender": n, "us_per_step": med[n], "min": min(v), "max": max(v),
                     "cpu_per_wall": busy, "ratio_vs_torch_eager": ratio, "samples": v})
        rtxt = f"{ratio:14.2f}x" if ratio else ""
        print(f"  {n:18s} {med[n]:10.1f} {min(v):10.1f} {max(v):10.1f} {busy:8.2f} {rtxt:>15s}")
    if base:
        r = base / med["symnet fit"]
        verdict = "meets" if r >= w["target"] else "BELOW"
        print(f"  symnet fit vs torch eager: {r:.2f}x ({verdict} the target of "
              f">= {w['target']:g}x); bound by {w['bound']}")
        if "torch eager, 1 thr" in med:
            print(f"  symnet fit vs torch eager on 1 thread: "
                  f"{med['torch eager, 1 thr'] / med['symnet fit']:.2f}x")
    for n in notes:
        print(f"  note: {n}")
    return {"workload": w["name"], "title": w["title"], "steps_per_block": k,
            "repeats": args.repeats, "first_step_loss_reference": ref, "target": w["target"],
            "rows": rows, "notes": notes, "symnet_kernels": kf, "loss": w["loss"],
            "activations": w["acts"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    p.add_argument("--repeats", type=int, default=None, help="blocks per contender (default 7, "
                   "3 with --quick)")
    p.add_argument("--workloads", default="moons,mnist,deep")
    p.add_argument("--threads", type=int, default=THREADS,
                   help="threads for every contender: torch, BLAS (threadpoolctl), XLA "
                        "(default 2)")
    p.add_argument("--no-torch-compile", action="store_true")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--avx2", action="store_true",
                   help="compile and run every contender's AVX2 code (benchmarks/machine.py)")
    args = p.parse_args()
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    warnings.filterwarnings("ignore")
    if args.threads == 1:  # before jax is imported: XLA's CPU client reads it once
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_"
                                   "eigen=false intra_op_parallelism_threads=1").strip()
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the generated np.dot calls)
    import threadpoolctl

    # Not numba.set_num_threads: it launches Numba's OpenMP thread pool, whose idle threads
    # made PyTorch's 2-thread OpenMP ops 15x slower here. symnet's fit runs its own team of
    # threads (SYMNET_THREADS, read when its kernel file is imported); its np.dot runs on
    # SciPy's OpenBLAS, limited below.
    os.environ["SYMNET_THREADS"] = str(args.threads)
    limits = threadpoolctl.threadpool_limits(args.threads, user_api="blas")  # noqa: F841

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("torch not installed: no PyTorch rows (pip install torch)")
    try:
        import jax

        jax.config.update("jax_platforms", "cpu")
        jax_ok = True
    except ImportError:
        jax, jax_ok = None, False
        print("jax not installed: no JAX rows (pip install jax jaxlib)")

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as out_dir:
        for name in args.workloads.split(","):
            try:
                results.append(bench_workload(WORKLOADS[name](), args, torch, jax_ok, out_dir))
            except Exception as exc:  # symnet cannot build it (yet): report, go on
                print(f"\n{name}: FAILED: {type(exc).__name__}: {exc}")
                results.append({"workload": name, "error": f"{type(exc).__name__}: {exc}"})
        facts = machine_facts(torch, jax)  # now that every BLAS library is loaded
        facts["threads"] = args.threads
    print()
    print_facts(facts)
    print(f"  date {time.strftime('%Y-%m-%d %H:%M')}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": facts, "results": results,
                                               "date": time.strftime("%Y-%m-%d %H:%M")},
                                              indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
