"""The role of depth (seed 001's exercise, seed 002's "advantage of depth"): held-out accuracy
and loss against the number of hidden layers, plotted.

    python examples/depth.py [--out docs/images] [--build examples/build]

The three spiral arms (examples/toy_data.py), networks of 0 to 8 hidden layers of 6 or of 16
relu units with a softmax output (0 hidden layers is softmax regression), he_normal
initialisation, each trained the same way: full-batch Adam, learning rate 0.01, 1,000
epochs. Writes depth.png (test accuracy, and training and test loss, against depth) and
prints the table. A few minutes on two cores, most of it Numba compiling the 13 networks.
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

from toy_data import example_parser, save_figure, spiral, split, targets  # noqa: E402

DEPTHS = (0, 1, 2, 3, 4, 6, 8)
WIDTHS = (6, 16)


def depth_spec(depth: int, width: int = 16) -> dict:
    hidden = [{"units": width, "activation": "relu"}] * depth
    return {
        "name": f"spiral_depth{depth}x{width}",
        "network": {"inputs": 2, "layers": hidden + [{"units": 3, "activation": "softmax"}]},
        "loss": {"kind": "cross_entropy", "reduction": "mean"},
        "training": {"optimizer": "adam", "learning_rate": 0.01},
        "init": {"scheme": "he_normal", "seed": 0},
    }


def run(build: Path, depths=DEPTHS, widths=WIDTHS, epochs: int = 1000,
        n_per_class: int = 200, log=print) -> list[dict]:
    """One row per (width, depth); depth 0 (no hidden layer) is trained once."""
    X, y = spiral(n_per_class, seed=0)
    Xtr, ytr, Xte, yte = split(X, y, seed=1)
    Ttr, Tte = targets(ytr, 3), targets(yte, 3)
    rows, linear = [], None
    for width in widths:
        for depth in depths:
            if depth == 0 and linear is not None:
                rows.append({**linear, "width": width})
                continue
            t0 = time.perf_counter()
            m = symnet.compile(depth_spec(depth, width), build)
            params = m.init_params()
            m.fit(params, Xtr, Ttr, epochs)
            row = {"depth": depth, "width": width,
                   "params": sum(a.size for a in params.values()),
                   "train_loss": m.loss(params, Xtr, Ttr),
                   "test_loss": m.loss(params, Xte, Tte),
                   "train": float(np.mean(np.argmax(m.forward(params, Xtr), 1) == ytr)),
                   "test": float(np.mean(np.argmax(m.forward(params, Xte), 1) == yte))}
            rows.append(row)
            if depth == 0:
                linear = row
            log(f"  {depth} hidden layers of {width:>2} ({row['params']:>5} parameters): "
                f"train loss {row['train_loss']:.3f}, test loss {row['test_loss']:.3f}, "
                f"test accuracy {row['test']:.1%} ({time.perf_counter() - t0:.0f} s)")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for width in dict.fromkeys(r["width"] for r in rows):
        sel = [r for r in rows if r["width"] == width]
        d = [r["depth"] for r in sel]
        line, = ax[0].plot(d, [r["test"] for r in sel], "o-", label=f"{width} units: test")
        ax[0].plot(d, [r["train"] for r in sel], "s--", color=line.get_color(), alpha=0.6,
                   label=f"{width} units: train")
        ax[1].semilogy(d, [r["test_loss"] for r in sel], "o-", color=line.get_color(),
                       label=f"{width} units: test")
        ax[1].semilogy(d, [r["train_loss"] for r in sel], "s--", color=line.get_color(),
                       alpha=0.6, label=f"{width} units: train")
    ax[0].set(xlabel="hidden layers (relu)", ylabel="accuracy",
              title="accuracy against depth (three spiral arms)", ylim=(0, 1.02))
    ax[1].set(xlabel="hidden layers (relu)", ylabel="cross-entropy",
              title="loss against depth")
    ax[0].legend(fontsize=8)
    ax[1].legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None) -> int:
    p = example_parser(__doc__, "depth.png")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run(args.build)
    plot(rows, args.out / "depth.png")
    print(f"wrote {args.out / 'depth.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
