"""Physics-informed training with symnet: three problems whose exact solutions are known.

Each problem is a spec in this folder (a loss of `kind = "residuals"`: the differential
equation's residual on interior points, the boundary or initial conditions on their own
points) and the points below. symnet derives the derivatives the residuals name (u_xx, u_t)
through the layers, and their gradients, and fits the network with Adam; the script then
compares the network with the exact solution on a fine grid (relative L2 error) and draws
both (docs/examples/pinn.md).

    python examples/pinn.py [poisson1d|poisson2d|oscillator|all] [--out DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import symnet  # noqa: E402

ZETA, OMEGA, T_END = 0.2, 2.0, 2.0  # the oscillator's (as in oscillator.toml)


def _poisson1d():
    x = np.linspace(0.0, 1.0, 66)[1:-1, None]
    points = {"interior": x, "boundary": np.array([[0.0], [1.0]])}
    grid = np.linspace(0.0, 1.0, 1001)[:, None]
    return points, grid, np.sin(np.pi * grid[:, 0])


def _poisson2d():
    g = np.linspace(0.0, 1.0, 26)[1:-1]
    xx, yy = np.meshgrid(g, g)
    interior = np.column_stack([xx.ravel(), yy.ravel()])
    s = np.linspace(0.0, 1.0, 33)
    zero, one = np.zeros_like(s), np.ones_like(s)
    boundary = np.vstack([np.column_stack(p) for p in ((s, zero), (s, one), (zero, s), (one, s))])
    f = np.linspace(0.0, 1.0, 101)
    fx, fy = np.meshgrid(f, f)
    grid = np.column_stack([fx.ravel(), fy.ravel()])
    exact = np.sin(np.pi * grid[:, 0]) * np.sin(np.pi * grid[:, 1])
    return {"interior": interior, "boundary": boundary}, grid, exact


def oscillator_exact(t):
    wd = OMEGA * np.sqrt(1.0 - ZETA ** 2)
    return np.exp(-ZETA * OMEGA * t) * (np.cos(wd * t) + ZETA * OMEGA / wd * np.sin(wd * t))


def _oscillator():
    t = np.linspace(0.0, T_END, 101)[1:, None]
    grid = np.linspace(0.0, T_END, 1001)[:, None]
    return {"interior": t, "start": np.array([[0.0]])}, grid, oscillator_exact(grid[:, 0])


PROBLEMS = {"poisson1d": (_poisson1d, 6000), "poisson2d": (_poisson2d, 20000),
            "oscillator": (_oscillator, 8000)}


def run(problem: str, out_dir, epochs: int | None = None, plot: bool = True, log=print):
    """Fit the problem's network; returns (relative L2 error on the fine grid, losses)."""
    make, default_epochs = PROBLEMS[problem]
    epochs = default_epochs if epochs is None else epochs
    out_dir = Path(out_dir)
    start = time.perf_counter()
    m = symnet.compile(HERE / f"{problem}.toml", out_dir)
    points, grid, exact = make()
    params, state = m.init_params(), m.init_state()
    m.fit(params, points, 1, state=state)  # compiles (once per machine)
    compiled = time.perf_counter()
    losses = m.fit(params, points, epochs, state=state)
    trained = time.perf_counter()
    u = m.forward(params, grid)[:, 0]
    error = float(np.linalg.norm(u - exact) / np.linalg.norm(exact))
    log(f"{problem}: {epochs} Adam steps on {sum(len(p) for p in points.values())} points "
        f"in {trained - compiled:.2f} s (compile and first step {compiled - start:.1f} s); "
        f"loss {losses[-1]:.3e}, relative L2 error {error:.2e}")
    if plot:
        _plot(problem, grid, u, exact, losses, out_dir / f"{problem}.png")
    return error, losses


def _plot(problem, grid, u, exact, losses, path):
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if problem == "poisson2d" else 2, figsize=(11, 3.4))
    axes[-1].semilogy(losses)
    axes[-1].set(title="loss", xlabel="Adam step")
    if problem == "poisson2d":
        n = int(round(np.sqrt(len(u))))
        for ax, values, title in ((axes[0], u, "network"), (axes[1], u - exact, "error")):
            im = ax.imshow(values.reshape(n, n), origin="lower", extent=(0, 1, 0, 1))
            ax.set(title=title, xlabel="x", ylabel="y")
            fig.colorbar(im, ax=ax)
    else:
        name = "t" if problem == "oscillator" else "x"
        axes[0].plot(grid[:, 0], exact, label="exact", lw=3, alpha=0.4)
        axes[0].plot(grid[:, 0], u, label="network", lw=1)
        axes[0].set(title=problem, xlabel=name, ylabel="u")
        axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("problem", nargs="?", default="all", choices=[*PROBLEMS, "all"])
    p.add_argument("--out", default="pinn_out", help="where the modules and figures go")
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args()
    for name in PROBLEMS if args.problem == "all" else [args.problem]:
        run(name, args.out, args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
