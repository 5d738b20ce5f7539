"""Seed 002's classification results: a linear model against the lecture's small networks.

    python examples/classification.py [--out docs/images] [--build examples/build]

Three problems (data made with NumPy, seeded; see examples/toy_data.py): two moons, two
circles and three spiral arms. On each, symnet's zero-hidden-layer model (logistic
regression, 2-1 sigmoid; softmax regression, 2-3 softmax) against the lecture's network
(2-4-2-1 tanh/tanh/sigmoid for the two-class problems; 2-64-32-16-3 tanh with a softmax
output for three classes). Each model trains with Adam on 70% of the samples; the table
gives the accuracy on the held-out 30%, and classification.png draws the decision regions.
Takes about a minute on two cores (most of it Numba compiling the six modules once).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import symnet
except ImportError:  # a source checkout without `pip install .`
    sys.path.insert(0, str(HERE.parent))
    import symnet

from toy_data import circles, example_parser, moons, save_figure, spiral, split, targets  # noqa: E402

# the lecture's figures (seed 002): linear model, network
LECTURE = {"moons": (0.86, 1.00), "circles": (0.50, 1.00), "spiral": (0.50, 0.99)}


@dataclass
class Model:
    label: str
    spec: dict
    epochs: int
    batch_size: int | None = None


def spec(name, layers, classes, lr, seed=0) -> dict:
    loss = "bce" if classes == 2 else "cross_entropy"
    return {
        "name": name,
        "network": {"inputs": 2, "layers": [{"units": u, "activation": a} for u, a in layers]},
        "loss": {"kind": loss, "reduction": "mean"},
        "training": {"optimizer": "adam", "learning_rate": lr},
        "init": {"scheme": "xavier_uniform", "seed": seed},
    }


def models(problem: str, classes: int, scale: float = 1.0) -> list[Model]:
    e = lambda n: max(1, int(n * scale))  # noqa: E731
    if classes == 2:
        return [Model("logistic regression (2-1)",
                      spec(f"{problem}_linear", [(1, "sigmoid")], 2, 0.05), e(2000)),
                Model("2-4-2-1 tanh/tanh/sigmoid",
                      spec(f"{problem}_mlp", [(4, "tanh"), (2, "tanh"), (1, "sigmoid")], 2,
                           0.02), e(4000))]
    return [Model("softmax regression (2-3)",
                  spec(f"{problem}_linear", [(3, "softmax")], 3, 0.05), e(2000)),
            Model("2-64-32-16-3 tanh, softmax",
                  spec(f"{problem}_mlp", [(64, "tanh"), (32, "tanh"), (16, "tanh"),
                                          (3, "softmax")], 3, 0.005), e(400), 32)]


def problems(n_scale: float = 1.0):
    n = lambda k: max(12, int(k * n_scale))  # noqa: E731
    return {"moons": (moons(n(400), seed=0), 2),
            "circles": (circles(n(400), seed=0), 2),
            "spiral": (spiral(n(200), seed=0), 3)}


def predict(module, params, X):
    Y = module.forward(params, X)
    return (Y[:, 0] > 0.5).astype(int) if Y.shape[1] == 1 else np.argmax(Y, axis=1)


def run(build: Path, scale: float = 1.0, n_scale: float = 1.0, only=None, log=print) -> dict:
    """Train every model on every problem (or those in `only`); returns {problem: {"rows":
    [(label, module, params, train accuracy, test accuracy, seconds)], "data": the split}}.
    `scale` multiplies the epochs and `n_scale` the samples (for a quick check)."""
    results = {}
    for problem, ((X, y), classes) in problems(n_scale).items():
        if only is not None and problem not in only:
            continue
        Xtr, ytr, Xte, yte = split(X, y, seed=1)
        rows = []
        for m in models(problem, classes, scale):
            module = symnet.compile(m.spec, build)
            params = module.init_params()
            t0 = time.perf_counter()
            module.fit(params, Xtr, targets(ytr, classes), m.epochs, batch_size=m.batch_size)
            seconds = time.perf_counter() - t0
            acc_tr = float(np.mean(predict(module, params, Xtr) == ytr))
            acc_te = float(np.mean(predict(module, params, Xte) == yte))
            rows.append((m.label, module, params, acc_tr, acc_te, seconds))
            log(f"  {problem:<8} {m.label:<28} train {acc_tr:6.1%}  test {acc_te:6.1%}  "
                f"({m.epochs} epochs, {seconds:.1f} s)")
        results[problem] = {"rows": rows, "data": (Xtr, ytr, Xte, yte)}
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 8.2), squeeze=False)
    for col, (problem, res) in enumerate(results.items()):
        Xtr, ytr, Xte, yte = res["data"]
        X = np.vstack([Xtr, Xte])
        lo, hi = X.min(axis=0) - 0.3, X.max(axis=0) + 0.3
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 250), np.linspace(lo[1], hi[1], 250))
        grid = np.column_stack([gx.ravel(), gy.ravel()])
        for row, (label, module, params, _, acc_te, _) in enumerate(res["rows"]):
            ax = axes[row, col]
            z = predict(module, params, grid).reshape(gx.shape)
            ax.contourf(gx, gy, z, alpha=0.3, cmap="brg", levels=np.arange(-0.5, 3.5), vmin=0,
                        vmax=2)
            ax.scatter(Xtr[:, 0], Xtr[:, 1], c=ytr, cmap="brg", s=8, vmin=0, vmax=2)
            ax.scatter(Xte[:, 0], Xte[:, 1], c=yte, cmap="brg", s=18, marker="x", vmin=0,
                       vmax=2)
            ax.set_title(f"{problem}: {label}\ntest accuracy {acc_te:.1%}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("decision regions (dots: training samples, crosses: held-out test samples)")
    save_figure(fig, path)


def main(argv=None) -> int:
    p = example_parser(__doc__, "classification.png")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print("held-out test accuracy (30% of the samples), symnet against the lecture:")
    results = run(args.build)
    print()
    print(f"  {'problem':<8} {'linear':>8} {'lecture':>8} {'network':>8} {'lecture':>8}")
    for problem, res in results.items():
        (_, _, _, _, lin, _), (_, _, _, _, mlp, _) = res["rows"]
        lec = LECTURE[problem]
        print(f"  {problem:<8} {lin:8.1%} {lec[0]:8.0%} {mlp:8.1%} {lec[1]:8.0%}")
    plot(results, args.out / "classification.png")
    print(f"wrote {args.out / 'classification.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
