"""symnet's CUDA module against PyTorch on the same GPU: time per training step, float32.

Three workloads, full-batch SGD (forward, backward, update of every W and b):

- moons: 2-4-2-1, tanh, tanh, sigmoid + bce (mean), batch 2^20 (two-moons data); the scalar
  form (one thread per sample, everything in registers). Target: >= 10x PyTorch eager.
- wide: 64-64-64-64-1, relu x3, linear + mse (mean), batch 2^20; the loop form.
  Target: >= 3x PyTorch eager.
- mnist: 784-256-256-10, relu, relu, softmax + cross_entropy (mean), batch 4,096 (random
  inputs in [0, 1) and random labels: only the shapes matter); the loop form. Reported.

Contenders, all from the same parameters (symnet's init_params) and the same data, resident on
the GPU before timing:

- symnet fit: `fit(params, X, T, K)` of the generated `<name>_cuda` module with X and T as
  device arrays: K steps, two kernel launches each, no host round trip; divided by K;
- torch eager: zero_grad, forward, loss, backward, torch.optim.SGD step, K times;
- torch.compile: the same step with forward + loss + backward compiled (skipped, with the
  reason, if it fails here or with --no-torch-compile).

Before timing, each contender's loss before the first step is compared with symnet's (to 1e-3
relative), and after the warm-up block of K steps (to 1e-2: float32 over K steps). Every
contender then runs a block of K steps per repeat, interleaved, synchronised with the device
at both ends; the table gives the median microseconds per step and the speed-up of symnet
over each peer (> 1: symnet is faster). It prints the GPU's name, a markdown table, and with
--json writes the figures.

    python benchmarks/bench_gpu.py [--quick] [--steps K] [--repeats N] [--batch N]
                                   [--workloads moons,wide,mnist] [--no-torch-compile]
                                   [--json PATH]

Needs an NVIDIA GPU, numba with CUDA, and PyTorch built with CUDA (the `bench` extra); without
a GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKLOADS = {
    "moons": {
        "spec": {
            "name": "bench_moons",
            "network": {"inputs": 2, "layers": [
                {"units": 4, "activation": "tanh"}, {"units": 2, "activation": "tanh"},
                {"units": 1, "activation": "sigmoid"}]},
            "loss": {"kind": "bce", "reduction": "mean"},
            "training": {"optimizer": "sgd", "learning_rate": 0.5,
                         "update": ["weights", "biases"]},
            "codegen": {"dtype": "float32"},
        },
        "batch": 2**20, "data": "moons", "target": ">= 10x torch eager",
    },
    "wide": {
        "spec": {
            "name": "bench_wide",
            "network": {"inputs": 64, "layers": [
                {"units": 64, "activation": "relu"}, {"units": 64, "activation": "relu"},
                {"units": 64, "activation": "relu"}, {"units": 1, "activation": "linear"}]},
            "loss": {"kind": "mse", "reduction": "mean"},
            "training": {"optimizer": "sgd", "learning_rate": 0.01,
                         "update": ["weights", "biases"]},
            "codegen": {"dtype": "float32"},
        },
        "batch": 2**20, "data": "regression", "target": ">= 3x torch eager",
    },
    "mnist": {
        "spec": {
            "name": "bench_mnist",
            "network": {"inputs": 784, "layers": [
                {"units": 256, "activation": "relu"}, {"units": 256, "activation": "relu"},
                {"units": 10, "activation": "softmax"}]},
            "loss": {"kind": "cross_entropy", "reduction": "mean"},
            "training": {"optimizer": "sgd", "learning_rate": 0.1,
                         "update": ["weights", "biases"]},
            "codegen": {"dtype": "float32"},
        },
        "batch": 4096, "data": "classes", "target": "report the ratio",
    },
}


def _data(kind, n, n_in, n_out, rng):
    if kind == "moons":
        t = rng.uniform(0, np.pi, n)
        label = rng.integers(0, 2, n)
        x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
        y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
        X = np.stack([x, y], 1) + rng.normal(scale=0.1, size=(n, 2))
        return X.astype(np.float32), label[:, None].astype(np.float32), None
    if kind == "regression":
        X = rng.normal(size=(n, n_in)).astype(np.float32)
        T = np.tanh(X[:, :1] * X[:, 1:2] + X[:, 2:3]).astype(np.float32)
        return X, T, None
    X = rng.uniform(size=(n, n_in)).astype(np.float32)
    labels = rng.integers(0, n_out, n)
    return X, np.eye(n_out, dtype=np.float32)[labels], labels


def _no_gpu(message):
    print(f"bench_gpu: {message}", file=sys.stderr)
    print("bench_gpu: nothing to benchmark here. Run it on a machine with an NVIDIA GPU, its "
          "driver, numba (with CUDA) and PyTorch built with CUDA: "
          "python benchmarks/bench_gpu.py", file=sys.stderr)
    sys.exit(2)


class Symnet:
    name = "symnet fit"

    def __init__(self, spec, out_dir, X, T, cuda):
        import symnet

        t0 = time.perf_counter()
        self.m = symnet.compile(spec, out_dir, target="cuda")
        self.params = self.m.init_params()
        self.cuda = cuda
        self.X, self.T = cuda.to_device(X), cuda.to_device(T)
        self.first_loss = self.m.loss(self.params, self.X, self.T)
        self.m.fit(self.params, self.X, self.T, 1)  # compiles the kernels
        self.m.loss(self.params, self.X, self.T)
        self.params = self.m.init_params()
        self.compile_s = time.perf_counter() - t0
        self.form = self.m.MODE

    def reset(self, params):
        self.params = {name: a.copy() for name, a in params.items()}

    def block(self, k):
        losses = self.m.fit(self.params, self.X, self.T, k)  # synchronises (copies back)
        return float(losses[-1])

    def loss(self):
        return self.m.loss(self.params, self.X, self.T)


class Torch:
    def __init__(self, spec, params, X, T, labels, compiled, device="cuda"):
        import torch

        self.torch = torch
        dev = torch.device(device)
        layers = spec["network"]["layers"]
        mods = []
        for ln, layer in enumerate(layers, start=1):
            lin = torch.nn.Linear(params[f"W{ln}"].shape[1], layer["units"])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(params[f"W{ln}"]))
                lin.bias.copy_(torch.from_numpy(params[f"b{ln}"]))
            mods.append(lin)
            act = layer["activation"]
            if ln < len(layers):
                mods.append({"tanh": torch.nn.Tanh(), "relu": torch.nn.ReLU()}[act])
        self.model = torch.nn.Sequential(*mods).to(dev)
        kind = spec["loss"]["kind"]
        # the output activation is fused into the loss, as symnet does
        self.loss_fn = {"bce": torch.nn.BCEWithLogitsLoss(), "mse": torch.nn.MSELoss(),
                        "cross_entropy": torch.nn.CrossEntropyLoss()}[kind]
        self.X = torch.from_numpy(X).to(dev)
        self.T = torch.from_numpy(labels).to(dev) if kind == "cross_entropy" else \
            torch.from_numpy(T).to(dev)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=spec["training"]["learning_rate"])
        self.name = "torch.compile" if compiled else "torch eager"
        step = self._step
        if compiled:
            step = torch.compile(self._step)
        self.step = step
        with torch.no_grad():
            self.first_loss = float(self.loss_fn(self.model(self.X), self.T))
        self.step()  # warm-up (compiles with torch.compile)
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.sync()

    def _step(self):
        self.opt.zero_grad(set_to_none=True)
        E = self.loss_fn(self.model(self.X), self.T)
        E.backward()
        self.opt.step()
        return E

    def reset(self, params):
        with self.torch.no_grad():
            lins = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
            for ln, lin in enumerate(lins, start=1):
                lin.weight.copy_(self.torch.from_numpy(params[f"W{ln}"]))
                lin.bias.copy_(self.torch.from_numpy(params[f"b{ln}"]))

    def block(self, k):
        for _ in range(k):
            E = self.step()
        self.sync()
        return float(E.detach())

    def loss(self):
        with self.torch.no_grad():
            return float(self.loss_fn(self.model(self.X), self.T))


def _timed(contender, k, torch_sync):
    torch_sync()
    t0 = time.perf_counter()
    contender.block(k)
    torch_sync()
    return (time.perf_counter() - t0) / k


def run(args):
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover
        _no_gpu(f"numba.cuda cannot be imported ({exc})")
    if not cuda.is_available():
        _no_gpu("no CUDA GPU (numba.cuda.is_available() is False)")
    if hasattr(cuda, "get_current_device"):
        gpu = cuda.get_current_device().name
        gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
    else:
        gpu = "Numba's CUDA simulator (not a GPU: the times mean nothing)"
    try:
        import torch

        have_torch = torch.cuda.is_available()
        why_no_torch = "" if have_torch else "torch.cuda.is_available() is False"
    except ImportError as exc:
        have_torch, why_no_torch = False, f"torch is not installed ({exc})"
    sync = (lambda: torch.cuda.synchronize()) if have_torch else (lambda: cuda.synchronize())

    names = args.workloads.split(",")
    rows, notes = [], []
    out_dir = Path(tempfile.mkdtemp(prefix="symnet-bench-gpu-"))
    for wname in names:
        w = WORKLOADS[wname]
        n = args.batch or (w["batch"] if not args.quick else min(w["batch"], 2**16))
        k = args.steps
        spec = w["spec"]
        rng = np.random.default_rng(0)
        n_in = spec["network"]["inputs"]
        n_out = spec["network"]["layers"][-1]["units"]
        X, T, labels = _data(w["data"], n, n_in, n_out, rng)
        sym = Symnet(spec, out_dir, X, T, cuda)
        params0 = sym.m.init_params()
        contenders = [sym]
        if have_torch:
            contenders.append(Torch(spec, params0, X, T, labels, compiled=False))
            if not args.no_torch_compile:
                try:
                    contenders.append(Torch(spec, params0, X, T, labels, compiled=True))
                except Exception as exc:  # noqa: BLE001 - any failure: report and go on
                    notes.append(f"{wname}: torch.compile failed: "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        elif f"PyTorch on CUDA unavailable ({why_no_torch}): symnet only" not in notes:
            notes.append(f"PyTorch on CUDA unavailable ({why_no_torch}): symnet only")
        for c in contenders[1:]:
            if abs(c.first_loss - sym.first_loss) > 1e-3 * max(1.0, abs(sym.first_loss)):
                sys.exit(f"bench_gpu: {wname}: first losses differ: symnet {sym.first_loss}, "
                         f"{c.name} {c.first_loss}")
        # the warm-up block: the same K steps from the same parameters must agree
        after = {}
        for c in contenders:
            c.reset(params0)
            c.block(k)
            after[c.name] = c.loss()
        for c in contenders[1:]:
            if abs(after[c.name] - after[sym.name]) > 1e-2 * max(1.0, abs(after[sym.name])):
                sys.exit(f"bench_gpu: {wname}: losses after {k} steps differ: symnet "
                         f"{after[sym.name]}, {c.name} {after[c.name]}")
        times = {c.name: [] for c in contenders}
        for r in range(args.repeats):
            order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
            for c in order:
                times[c.name].append(_timed(c, k, sync))
        med = {name: statistics.median(v) * 1e6 for name, v in times.items()}
        row = {"workload": wname, "batch": n, "form": sym.form, "target": w["target"],
               "steps_per_block": k, "repeats": args.repeats,
               "symnet_compile_s": round(sym.compile_s, 2),
               "us_per_step": {name: round(v, 1) for name, v in med.items()}}
        rows.append(row)
        print(f"# {wname}: batch {n}, form {sym.form}: "
              + ", ".join(f"{name} {v:.1f} us" for name, v in med.items()), flush=True)

    peers = [p for p in ("torch eager", "torch.compile")
             if any(p in r["us_per_step"] for r in rows)]
    print()
    print(f"GPU: {gpu}; {datetime.now(UTC):%Y-%m-%d}; float32, full-batch SGD; "
          f"median of {args.repeats} blocks of {args.steps} steps")
    print()
    head = ["workload", "batch", "symnet fit (us/step)"] + [f"{p} (us/step)" for p in peers] \
        + [f"speed-up vs {p}" for p in peers] + ["target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        us = r["us_per_step"]
        s = us["symnet fit"]
        cells = [r["workload"], f"{r['batch']:,}", f"{s:.1f}"]
        cells += [f"{us[p]:.1f}" if p in us else "n/a" for p in peers]
        cells += [f"{us[p] / s:.2f}x" if p in us else "n/a" for p in peers]
        cells.append(r["target"])
        print("| " + " | ".join(cells) + " |")
    for note in notes:
        print(f"\nnote: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "gpu": gpu, "date": f"{datetime.now(UTC):%Y-%m-%d}",
            "python": platform.python_version(), "rows": rows, "notes": notes}, indent=2))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="batches of at most 2^16 (a smoke run)")
    p.add_argument("--steps", type=int, default=50, help="steps per timed block (default 50)")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per contender")
    p.add_argument("--workloads", default="moons,wide,mnist")
    p.add_argument("--batch", type=int, help="one batch size for every workload (smoke runs)")
    p.add_argument("--no-torch-compile", action="store_true")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    for name in args.workloads.split(","):
        if name not in WORKLOADS:
            p.error(f"--workloads: unknown {name!r} (known: {', '.join(WORKLOADS)})")
    run(args)


if __name__ == "__main__":
    main()
