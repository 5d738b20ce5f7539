"""symnet's input derivatives and Hessian-vector product against JAX and torch.func on the CPU.

For each workload and dtype, from the same parameters and data, after checking that every
contender's result agrees with symnet's (rtol 1e-6 in float64, 1e-3 in float32):

- jacobian: d outputs / d inputs per sample, shape (batch, outputs, inputs). symnet
  `jacobian(params, X)`; JAX `jit(vmap(jacrev(f)))`; torch `vmap(jacrev(f))`.
- input_grad: dE/dX of the batch loss. symnet `input_grad(params, X, T)`; JAX
  `jit(grad(loss, argnums=X))`; torch `torch.autograd.grad`.
- hvp: the Hessian of the batch loss in the parameters times V. symnet `hvp(params, X, T, V)`;
  JAX `jit(jvp(grad(loss), (params,), (V,)))`; torch `torch.func.jvp(grad(...))`.

Workloads (tanh hidden layers, as a physics-informed net has them):

- small: 2-12-12-1 tanh, mse, batch 1,024, the scalar form;
- poisson: 2-64-64-64-1 tanh, mse, batch 4,096 (issue 16's 2D Poisson net), the loop form.

Each contender is called once before timing (JAX traces and compiles, Numba compiles), then
timed as the median of --repeats blocks of --calls calls. The table gives microseconds per
call and symnet's speed-up over each peer (> 1: symnet is faster). Threads: whatever the
libraries choose on this machine (say which in the notes).

    python benchmarks/bench_derivatives.py [--repeats 5] [--calls 20] [--dtypes float64,float32]
                                           [--workloads small,poisson] [--no-torch] [--no-jax]
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_description  # noqa: E402

WORKLOADS = {
    "small": {"layers": [12, 12], "inputs": 2, "batch": 1024, "mode": "scalar"},
    "poisson": {"layers": [64, 64, 64], "inputs": 2, "batch": 4096, "mode": "loop"},
}


def _spec(name, w, dtype):
    layers = [{"units": u, "activation": "tanh"} for u in w["layers"]]
    return {"name": f"bench_der_{name}_{dtype}", "network": {
        "inputs": w["inputs"], "layers": layers + [{"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"},
        "codegen": {"mode": w["mode"], "dtype": dtype, "derivatives": True}}


def _timed(f, repeats, calls):
    f()
    blocks = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        blocks.append((time.perf_counter() - t) / calls)
    return statistics.median(blocks) * 1e6


def _mlp_jax(jnp, names):
    def net(p, x):
        a = x
        depth = len(names) // 2
        for layer in range(1, depth + 1):
            z = a @ p[f"W{layer}"].T + p[f"b{layer}"]
            a = jnp.tanh(z) if layer < depth else z
        return a
    return net


def _mlp_torch(torch, depth):
    def net(p, x):
        a = x
        for layer in range(1, depth + 1):
            z = a @ p[f"W{layer}"].T + p[f"b{layer}"]
            a = torch.tanh(z) if layer < depth else z
        return a
    return net


def run(args):
    import symnet

    out = Path(tempfile.mkdtemp(prefix="symnet-bench-der-"))
    rows = []
    for wname in args.workloads.split(","):
        w = WORKLOADS[wname]
        for dtype in args.dtypes.split(","):
            spec = _spec(wname, w, dtype)
            m = symnet.compile(spec, out)
            rng = np.random.default_rng(0)
            params = m.init_params()
            X = rng.uniform(size=(w["batch"], w["inputs"])).astype(m.DTYPE)
            T = np.sin(X[:, :1] * 3).astype(m.DTYPE)
            V = {k: rng.normal(size=v.shape).astype(m.DTYPE) for k, v in params.items()}
            ours = {"jacobian": lambda: m.jacobian(params, X),
                    "input_grad": lambda: m.input_grad(params, X, T)[1],
                    "hvp": lambda: m.hvp(params, X, T, V)[1]}
            ref = {k: f() for k, f in ours.items()}
            peers = {}
            if not args.no_jax:
                peers["JAX jit"] = _jax(params, X, T, V, dtype)
            if not args.no_torch:
                peers["torch.func"] = _torch(params, X, T, V, dtype)
            tol = 1e-6 if dtype == "float64" else 1e-3
            for what, f in ours.items():
                row = {"workload": wname, "dtype": dtype, "what": what,
                       "symnet": _timed(f, args.repeats, args.calls)}
                for peer, fs in peers.items():
                    got = fs[what]()
                    want = ref[what]
                    if isinstance(want, dict):
                        for k in want:
                            np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=tol,
                                                       atol=tol * 1e-2)
                    else:
                        np.testing.assert_allclose(np.asarray(got), want, rtol=tol,
                                                   atol=tol * 1e-2)
                    row[peer] = _timed(fs[what], args.repeats, args.calls)
                rows.append(row)
                print("# " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in row.items()), flush=True)
    peers = [k for k in rows[0] if k not in ("workload", "dtype", "what", "symnet")]
    print(f"\nCPU: {cpu_description()}; {time.strftime('%Y-%m-%d')}; median of "
          f"{args.repeats} blocks of {args.calls} calls; µs per call\n")
    head = "| workload | dtype | function | symnet | " + " | ".join(peers) + " | " + \
        " | ".join(f"vs {p}" for p in peers) + " |"
    print(head)
    print("|" + "---|" * (4 + 2 * len(peers)))
    for r in rows:
        print(f"| {r['workload']} | {r['dtype']} | {r['what']} | {r['symnet']:.1f} | " +
              " | ".join(f"{r[p]:.1f}" for p in peers) + " | " +
              " | ".join(f"{r[p] / r['symnet']:.2f}x" for p in peers) + " |")


def _jax(params, X, T, V, dtype):
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp

    net = _mlp_jax(jnp, list(params))
    p = {k: jnp.asarray(v) for k, v in params.items()}
    v = {k: jnp.asarray(a) for k, a in V.items()}
    Xj, Tj = jnp.asarray(X), jnp.asarray(T)

    def loss(p, x):
        return jnp.mean(jnp.sum((Tj - net(p, x)) ** 2, axis=1) / Tj.shape[1])

    jac = jax.jit(jax.vmap(jax.jacrev(lambda x: net(p, x[None])[0])))
    ig = jax.jit(jax.grad(loss, argnums=1))
    hvp = jax.jit(lambda p, v: jax.jvp(jax.grad(lambda q: loss(q, Xj)), (p,), (v,))[1])
    return {"jacobian": lambda: jac(Xj).block_until_ready(),
            "input_grad": lambda: ig(p, Xj).block_until_ready(),
            "hvp": lambda: {k: a.block_until_ready() for k, a in hvp(p, v).items()}}


def _torch(params, X, T, V, dtype):
    import torch
    from torch.func import grad, jacrev, jvp, vmap

    tdt = torch.float64 if dtype == "float64" else torch.float32
    net = _mlp_torch(torch, len(params) // 2)
    p = {k: torch.tensor(v, dtype=tdt) for k, v in params.items()}
    v = {k: torch.tensor(a, dtype=tdt) for k, a in V.items()}
    Xt, Tt = torch.tensor(X, dtype=tdt), torch.tensor(T, dtype=tdt)

    def loss(p, x):
        return torch.mean(torch.sum((Tt - net(p, x)) ** 2, dim=1) / Tt.shape[1])

    def input_grad():
        x = Xt.clone().requires_grad_(True)
        return torch.autograd.grad(loss(p, x), x)[0].numpy()

    return {"jacobian": lambda: vmap(jacrev(lambda x: net(p, x[None])[0]))(Xt).detach().numpy(),
            "input_grad": input_grad,
            "hvp": lambda: {k: a.detach().numpy() for k, a in
                            jvp(grad(lambda q: loss(q, Xt)), (p,), (v,))[1].items()}}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--workloads", default="small,poisson")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-jax", action="store_true")
    run(p.parse_args())


if __name__ == "__main__":
    main()
