"""Activations and vanishing gradients (seed 001's exercise): deep, narrow networks with
sigmoid, tanh, relu, leaky_relu and elu, their gradient norms layer by layer, and accuracy.

    python examples/activations.py [--out docs/images] [--build examples/build]

Each network has `depth` hidden layers of 16 units (depth 10 and 20), one sigmoid output and
the binary cross-entropy, all initialised the same way (he_normal, seed 0) and trained the
same way (full-batch SGD with momentum 0.9, learning rate 0.01) on the two moons. The
compiled fit(..., trace=True) records, every epoch, the norm of each layer's weight
gradient; its first row is the gradient at initialisation. Writes activations.png and prints
the held-out accuracy of each network. The first run is mostly Numba compiling the ten
modules (3.3 minutes on a quiet two-core machine, 12 on a busy one; `--depths 10` compiles
five); a second run takes seconds per network.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import symnet
except ImportError:  # a source checkout without `pip install .`
    sys.path.insert(0, str(HERE.parent))
    import symnet

from toy_data import example_parser, moons, save_figure, split  # noqa: E402

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")
DEPTHS = (10, 20)


def deep_spec(activation: str, depth: int, width: int = 16, lr: float = 0.01) -> dict:
    hidden = [{"units": width, "activation": activation}] * depth
    return {
        "name": f"deep_{activation}_{depth}x{width}",
        "network": {"inputs": 2, "layers": hidden + [{"units": 1, "activation": "sigmoid"}]},
        "loss": {"kind": "bce", "reduction": "mean"},
        "training": {"optimizer": "sgd", "learning_rate": lr, "momentum": 0.9},
        "init": {"scheme": "he_normal", "seed": 0},
    }


def run(build: Path, activations=ACTIVATIONS, depths=DEPTHS, epochs: int = 1500,
        width: int = 16, n: int = 400, log=print) -> dict:
    """{(activation, depth): {"trace": ..., "test": accuracy, "train": accuracy}}."""
    X, y = moons(n, seed=0)
    Xtr, ytr, Xte, yte = split(X, y, seed=1)
    T = ytr[:, None].astype(float)
    results = {}
    for depth in depths:
        for act in activations:
            t0 = time.perf_counter()
            m = symnet.compile(deep_spec(act, depth, width), build)
            params = m.init_params()
            trace = m.fit(params, Xtr, T, epochs, trace=True)  # full batch: row 0 is at init
            acc = {name: float(np.mean((m.forward(params, Xs)[:, 0] > 0.5) == ys))
                   for name, Xs, ys in (("train", Xtr, ytr), ("test", Xte, yte))}
            results[(act, depth)] = {"trace": trace, **acc}
            g0 = trace["grad_norm"][0]
            log(f"  depth {depth:>2} {act:<10} at init ||dE/dW1|| = {g0[0]:.2e}, "
                f"||dE/dW{len(g0)}|| = {g0[-1]:.2e}; loss {trace['loss'][0]:.3f} -> "
                f"{trace['loss'][-1]:.3f}; test accuracy {acc['test']:.1%} "
                f"({time.perf_counter() - t0:.0f} s)")
    return results


def epochs_to(loss, level: float) -> str:
    """The first epoch whose loss is below `level`, or "never"."""
    below = np.flatnonzero(np.asarray(loss) < level)
    return str(int(below[0])) if below.size else "never"


def plot(results: dict, path: Path, activations=ACTIVATIONS, depths=DEPTHS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(12, 8.5))
    for col, depth in enumerate(depths[:2]):
        a = ax[0, col]
        for act in activations:
            g = results[(act, depth)]["trace"]["grad_norm"][0]
            a.semilogy(np.arange(1, len(g) + 1), np.maximum(g, 1e-30), "o-", ms=3, label=act)
        a.set(xlabel="layer (1 = next to the inputs)", ylabel="||dE/dW|| at initialisation",
              title=f"gradient per layer at initialisation, {depth} hidden layers")
        a.legend(fontsize=8)
    deepest = depths[-1]
    for act in activations:
        tr = results[(act, deepest)]["trace"]
        ax[1, 0].semilogy(np.maximum(tr["grad_norm"][:, 0], 1e-30), label=act)
        ax[1, 1].plot(tr["loss"], label=act)
    ax[1, 0].set(xlabel="epoch", ylabel="||dE/dW1||",
                 title=f"first layer's gradient during training, {deepest} hidden layers")
    ax[1, 1].set(xlabel="epoch", ylabel="binary cross-entropy",
                 title=f"training loss, {deepest} hidden layers")
    ax[1, 0].legend(fontsize=8)
    ax[1, 1].legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None) -> int:
    p = example_parser(__doc__, "activations.png")
    p.add_argument("--epochs", type=int, default=1500)
    p.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS),
                   help="numbers of hidden layers (default 10 20; one compile each)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    depths = tuple(args.depths)
    results = run(args.build, depths=depths, epochs=args.epochs)
    print()
    print("held-out test accuracy (30% of the samples), and the first epoch at which the "
          "training loss falls below 0.1:")
    print(f"  {'activation':<11}" + "".join(f"{f'depth {d}':>22}" for d in depths))
    for act in ACTIVATIONS:
        cells = []
        for d in depths:
            r = results[(act, d)]
            cells.append(f"{r['test']:10.1%} {epochs_to(r['trace']['loss'], 0.1):>11}")
        print(f"  {act:<11}" + "".join(cells))
    plot(results, args.out / "activations.png", depths=depths)
    print(f"wrote {args.out / 'activations.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
