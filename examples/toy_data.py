"""The lecture's toy data sets, made with NumPy alone (seeded), and a train/test split.

- `moons`: two interleaving half circles (as scikit-learn's make_moons draws them).
- `circles`: a small circle inside a large one (as make_circles).
- `spiral`: three interleaved spiral arms, one class each (the usual three-class toy problem
  on which a linear softmax classifier gets about half right).

Each returns X (samples, 2) and integer labels y (samples,). Also the examples' shared
command line (`example_parser`: --out and --build) and `save_figure`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def example_parser(doc: str, image: str) -> argparse.ArgumentParser:
    """An example's command line: --out (where `image` goes) and --build (its modules)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "images",
                   help=f"where {image} goes (default docs/images)")
    p.add_argument("--build", type=Path, default=HERE / "build",
                   help="where the compiled modules go (default examples/build)")
    return p


def save_figure(fig, path) -> None:
    """Lay out, write as PNG and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def moons(n: int = 400, noise: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    a = np.linspace(0, np.pi, n_out)
    b = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.column_stack([np.cos(a), np.sin(a)]),
                   np.column_stack([1 - np.cos(b), 0.5 - np.sin(b)])])
    y = np.concatenate([np.zeros(n_out, int), np.ones(n_in, int)])
    return X + rng.normal(scale=noise, size=X.shape), y


def circles(n: int = 400, noise: float = 0.05, factor: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    a = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    b = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack([np.column_stack([np.cos(a), np.sin(a)]),
                   factor * np.column_stack([np.cos(b), np.sin(b)])])
    y = np.concatenate([np.zeros(n_out, int), np.ones(n_in, int)])
    return X + rng.normal(scale=noise, size=X.shape), y


def spiral(n_per_class: int = 200, classes: int = 3, noise: float = 0.15, seed: int = 0):
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        theta = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class)
        theta = theta + rng.normal(scale=noise, size=n_per_class)
        X.append(np.column_stack([r * np.sin(theta), r * np.cos(theta)]))
        y.append(np.full(n_per_class, k))
    return np.vstack(X), np.concatenate(y)


def split(X, y, test_fraction: float = 0.3, seed: int = 0):
    """A seeded shuffle, then the last `test_fraction` of the samples held out."""
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    train, test = order[n_test:], order[:n_test]
    return X[train], y[train], X[test], y[test]


def targets(y, classes: int):
    """Integer labels as the network's targets: one column of 0/1 for two classes, one-hot
    columns for more."""
    if classes == 2:
        return y[:, None].astype(float)
    return np.eye(classes)[y]


def main(argv=None) -> int:
    """python examples/toy_data.py moons|circles|spiral FILE.npz: write X and T for
    `symnet train` (T one column of 0/1 for two classes, one-hot for three)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("data", choices=("moons", "circles", "spiral"))
    p.add_argument("path")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    X, y = {"moons": moons, "circles": circles, "spiral": spiral}[args.data](seed=args.seed)
    np.savez(args.path, X=X, T=targets(y, 3 if args.data == "spiral" else 2))
    print(f"{args.path}: X {X.shape}, T {targets(y, 3 if args.data == 'spiral' else 2).shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
