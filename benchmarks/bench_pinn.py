"""A physics-informed training step: symnet against JAX and torch.func (issue 16).

The 2D Poisson problem of examples/poisson2d.toml on a larger network: 2 inputs, 3 tanh
layers of 64, 1 linear output; 4,096 interior points (the residual u_xx + u_yy + f, f = 2 pi^2
sin(pi x) sin(pi y)) and 512 boundary points (u), weight 10 on the boundary; Adam (lr 1e-3).
One step = the loss, its gradient with respect to every parameter, and the Adam update.

- symnet: the generated module's `fit(params, points, K)` (K steps in one compiled call),
  divided by K;
- JAX: one jitted step (value_and_grad of the loss + a hand-written Adam update), with the
  Laplacian two ways, and the faster counted: `hessian` (jax.hessian of u per point,
  vmapped, its trace) and `jvp-of-grad` (per input direction, jax.jvp of jax.grad(u));
  called K times from Python, and K steps in one jit (lax.fori_loop);
- torch.func: vmap(hessian(u)) per point, its trace, loss.backward(), torch.optim.Adam.

All start from the same parameters; the first loss of each is checked against symnet's.
Medians of --repeats blocks of K steps, µs per step, float32 and float64.

    python benchmarks/bench_pinn.py [--repeats N] [--steps K] [--dtypes float32,float64]
                                    [--no-torch] [--avx2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_description, emulate_avx2  # noqa: E402

if "--avx2" in sys.argv:
    emulate_avx2()

import numpy as np  # noqa: E402

WIDTH, DEPTH, N_INTERIOR, N_BOUNDARY, LR, WEIGHT = 64, 3, 4096, 512, 1e-3, 10.0


def spec(dtype: str) -> dict:
    return {
        "name": f"bench_pinn_{dtype}",
        "network": {"inputs": 2, "layers": [{"units": WIDTH, "activation": "tanh"}] * DEPTH
                    + [{"units": 1, "activation": "linear"}]},
        "loss": {"kind": "residuals", "terms": [
            {"name": "pde", "points": "interior",
             "residual": "u_xx + u_yy + 2 * pi**2 * sin(pi * x) * sin(pi * y)"},
            {"name": "boundary", "points": "boundary", "residual": "u", "weight": WEIGHT}]},
        "training": {"optimizer": "adam", "learning_rate": LR},
        "init": {"scheme": "xavier_uniform", "seed": 0},
        "codegen": {"dtype": dtype},
    }


def points(dtype):
    rng = np.random.default_rng(0)
    interior = rng.uniform(0, 1, (N_INTERIOR, 2))
    s = rng.uniform(0, 1, N_BOUNDARY // 4)
    z, o = np.zeros_like(s), np.ones_like(s)
    boundary = np.vstack([np.column_stack(p) for p in ((s, z), (s, o), (z, s), (o, s))])
    return {"interior": interior.astype(dtype), "boundary": boundary.astype(dtype)}


def median_block(run, k, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(k)
        times.append((time.perf_counter() - t) / k * 1e6)
    return statistics.median(times)


def bench_symnet(dtype, pts, k, repeats, out):
    import symnet

    m = symnet.compile(spec(dtype), out)
    params, state = m.init_params(), m.init_state()
    first = m.loss(params, pts)
    m.fit(params, pts, 2, state=state)
    return first, median_block(lambda n: m.fit(params, pts, n, state=state), k, repeats), \
        {k_: v.copy() for k_, v in m.init_params().items()}


def bench_jax(dtype, pts, params0, k, repeats):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", dtype == "float64")
    names = [f"{p}{i}" for i in range(1, DEPTH + 2) for p in ("W", "b")]
    params = {n: jnp.asarray(params0[n]) for n in names}

    def u(p, x):  # one point x (2,) -> scalar
        a = x
        for i in range(1, DEPTH + 1):
            a = jnp.tanh(p[f"W{i}"] @ a + p[f"b{i}"])
        return (p[f"W{DEPTH + 1}"] @ a + p[f"b{DEPTH + 1}"])[0]

    def lap_hessian(p, x):
        return jnp.trace(jax.hessian(u, argnums=1)(p, x))

    def lap_jvp(p, x):
        g = jax.grad(u, argnums=1)
        return sum(jax.jvp(lambda y: g(p, y), (x,), (jnp.eye(2, dtype=x.dtype)[d],))[1][d]
                   for d in range(2))

    X, B = jnp.asarray(pts["interior"]), jnp.asarray(pts["boundary"])
    f = 2 * jnp.pi ** 2 * jnp.sin(jnp.pi * X[:, 0]) * jnp.sin(jnp.pi * X[:, 1])

    def make(lap):
        def loss(p):
            r = jax.vmap(lambda x: lap(p, x))(X) + f
            ub = jax.vmap(lambda x: u(p, x))(B)
            return jnp.mean(r ** 2) + WEIGHT * jnp.mean(ub ** 2)

        def step(p, m1, m2, t):
            E, g = jax.value_and_grad(loss)(p)
            t = t + 1
            m1 = jax.tree_util.tree_map(lambda a, b: 0.9 * a + 0.1 * b, m1, g)
            m2 = jax.tree_util.tree_map(lambda a, b: 0.999 * a + 0.001 * b * b, m2, g)
            c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t  # t: the step count (a float)
            p = jax.tree_util.tree_map(
                lambda w, a, b: w - LR * (a / c1) / (jnp.sqrt(b / c2) + 1e-8), p, m1, m2)
            return p, m1, m2, t, E

        return loss, jax.jit(step), step

    rows = {}
    first = None
    for label, lap in (("hessian", lap_hessian), ("jvp-of-grad", lap_jvp)):
        loss, jstep, step = make(lap)
        first = float(jax.jit(loss)(params)) if first is None else first
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        state = [params, zeros, zeros, 0.0]

        def run(n):
            for _ in range(n):
                state[0], state[1], state[2], state[3], E = jstep(*state)
            E.block_until_ready()

        run(2)
        rows[f"jax jit ({label})"] = median_block(run, k, repeats)

        @jax.jit
        def many(p, m1, m2, n_steps):  # noqa: B023 (step: this iteration's, traced now)
            def body(i, s):
                return step(s[0], s[1], s[2], s[3])

            start = (p, m1, m2, jnp.zeros((), X.dtype), jnp.zeros((), X.dtype))
            return jax.lax.fori_loop(0, n_steps, body, start)

        def run_fori(n):
            out = many(params, zeros, zeros, n)
            out[0]["W1"].block_until_ready()

        run_fori(k)
        rows[f"jax fori ({label})"] = median_block(run_fori, k, repeats)
    return first, rows


def bench_torch(dtype, pts, params0, k, repeats):
    import torch
    from torch.func import functional_call, hessian, vmap

    tdt = getattr(torch, dtype)
    layers = []
    for _ in range(DEPTH):
        layers += [torch.nn.Linear(2 if not layers else WIDTH, WIDTH), torch.nn.Tanh()]
    layers.append(torch.nn.Linear(WIDTH, 1))
    net = torch.nn.Sequential(*layers).to(tdt)
    with torch.no_grad():
        for i, lin in enumerate(m for m in net if isinstance(m, torch.nn.Linear)):
            lin.weight.copy_(torch.from_numpy(np.asarray(params0[f"W{i + 1}"])))
            lin.bias.copy_(torch.from_numpy(np.asarray(params0[f"b{i + 1}"])))
    X, B = (torch.from_numpy(pts[n]) for n in ("interior", "boundary"))
    f = 2 * np.pi ** 2 * torch.sin(np.pi * X[:, 0]) * torch.sin(np.pi * X[:, 1])
    opt = torch.optim.Adam(net.parameters(), lr=LR)

    def loss():
        p = dict(net.named_parameters())

        def u(x):
            return functional_call(net, p, (x,))[0]

        lap = vmap(lambda x: torch.trace(hessian(u)(x)))(X)
        return ((lap + f) ** 2).mean() + WEIGHT * (net(B)[:, 0] ** 2).mean()

    first = float(loss())

    def run(n):
        for _ in range(n):
            opt.zero_grad()
            E = loss()
            E.backward()
            opt.step()

    run(2)
    return first, median_block(run, k, repeats)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--avx2", action="store_true")
    args = p.parse_args()
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        args.no_torch = True
    print(cpu_description())
    print(f"2D Poisson: 2-{'-'.join([str(WIDTH)] * DEPTH)}-1 tanh, {N_INTERIOR} interior and "
          f"{N_BOUNDARY} boundary points, Adam; µs per step, median of {args.repeats} blocks "
          f"of {args.steps} steps")
    with tempfile.TemporaryDirectory() as out:
        for dtype in args.dtypes.split(","):
            pts = points(dtype)
            first, t_symnet, params0 = bench_symnet(dtype, pts, args.steps, args.repeats, out)
            rows = {"symnet fit": t_symnet}
            jfirst, jrows = bench_jax(dtype, pts, params0, args.steps, args.repeats)
            rows.update(jrows)
            checks = [f"jax {jfirst:.6g}"]
            if not args.no_torch:
                tfirst, rows["torch.func (hessian)"] = bench_torch(dtype, pts, params0,
                                                                   args.steps, args.repeats)
                checks.append(f"torch {tfirst:.6g}")
            print(f"\n{dtype}: first loss symnet {first:.6g}, " + ", ".join(checks)
                  + f" (load {os.getloadavg()[0]:.2f})")
            best_jax = min(v for n, v in rows.items() if n.startswith("jax"))
            for name, t in rows.items():
                print(f"  {name:26s} {t:12.1f}  ({t / t_symnet:5.2f}x symnet's time)")
            print(f"  symnet against JAX's best: {best_jax / t_symnet:.2f}x faster (target 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
