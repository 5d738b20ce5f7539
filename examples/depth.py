"""The role of depth (seed 001's exercise, seed 002's "advantage of depth"): held-out accuracy
and loss against the number of hidden layers, plotted.

    python examples/depth.py [--out docs/images] [--build examples/build]

The three spiral arms (examples/datasets.py), networks of 0 to 8 hidden layers of 16 relu
units with a softmax output (0 hidden layers is softmax regression), he_normal
initialisation, each trained the same way: full-batch Adam, learning rate 0.01, 1,000
epochs. Writes depth.png (test accuracy, and training and test loss, against depth) and
prints the table. A few minutes on two cores, most of it Numba compiling each depth once.
"""

from __future__ import annotations

import argparse
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

from datasets import spiral, split, targets  # noqa: E402

DEPTHS = (0, 1, 2, 3, 4, 6, 8)


def depth_spec(depth: int, width: int = 16) -> dict:
    hidden = [{"units": width, "activation": "relu"}] * depth
    return {
        "name": f"spiral_depth{depth}x{width}",
        "network": {"inputs": 2, "layers": hidden + [{"units": 3, "activation": "softmax"}]},
        "loss": {"kind": "cross_entropy", "reduction": "mean"},
        "training": {"optimizer": "adam", "learning_rate": 0.01},
        "init": {"scheme": "he_normal", "seed": 0},
    }


def run(build: Path, depths=DEPTHS, epochs: int = 1000, width: int = 16,
        n_per_class: int = 200, log=print) -> list[dict]:
    X, y = spiral(n_per_class, seed=0)
    Xtr, ytr, Xte, yte = split(X, y, seed=1)
    Ttr, Tte = targets(ytr, 3), targets(yte, 3)
    rows = []
    for depth in depths:
        t0 = time.perf_counter()
        m = symnet.compile(depth_spec(depth, width), build)
        params = m.init_params()
        m.fit(params, Xtr, Ttr, epochs)
        row = {"depth": depth, "params": sum(a.size for a in params.values()),
               "train_loss": m.loss(params, Xtr, Ttr), "test_loss": m.loss(params, Xte, Tte),
               "train": float(np.mean(np.argmax(m.forward(params, Xtr), 1) == ytr)),
               "test": float(np.mean(np.argmax(m.forward(params, Xte), 1) == yte))}
        rows.append(row)
        log(f"  {depth} hidden layers ({row['params']:>5} parameters): train loss "
            f"{row['train_loss']:.3f}, test loss {row['test_loss']:.3f}, test accuracy "
            f"{row['test']:.1%} ({time.perf_counter() - t0:.0f} s)")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = [r["depth"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(d, [r["test"] for r in rows], "o-", label="test")
    ax[0].plot(d, [r["train"] for r in rows], "s--", label="train")
    ax[0].set(xlabel="hidden layers (16 relu units each)", ylabel="accuracy",
              title="accuracy against depth (three spiral arms)", ylim=(0, 1.02))
    ax[0].legend()
    ax[1].semilogy(d, [r["test_loss"] for r in rows], "o-", label="test")
    ax[1].semilogy(d, [r["train_loss"] for r in rows], "s--", label="train")
    ax[1].set(xlabel="hidden layers", ylabel="cross-entropy", title="loss against depth")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "images",
                   help="where depth.png goes (default docs/images)")
    p.add_argument("--build", type=Path, default=HERE / "build",
                   help="where the compiled modules go (default examples/build)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run(args.build)
    plot(rows, args.out / "depth.png")
    print(f"wrote {args.out / 'depth.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
