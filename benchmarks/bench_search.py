"""A grid search over scikit-learn's `alpha` (the L2 penalty): symnet.sklearn's MLPClassifier
against scikit-learn's own, in one process, symnet's caches empty at the start.

    python benchmarks/bench_search.py [--alphas 1e-4,1e-3,1e-2,1e-1] [--cv 3] [--max-iter 20]

digits, standardised; one hidden layer of 64 relu units, Adam, batch 64, `max_iter` epochs
(`n_iter_no_change` above it: every epoch runs), `GridSearchCV(..., cv=3, n_jobs=1)`: 12 fits
and the refit. symnet runs first, with fresh temporary folders as its kernel and cache folders
(so every kernel it needs is compiled in the measured time), then the same search again in
the same process (what a search's next points cost once the kernels are loaded), then
scikit-learn. Printed: each
search's wall time, its best alpha and score, and how many kernel files symnet compiled (the
weight decay's lambda, alpha / (2 * batch), is a number the kernels read, so one kernel file
serves every alpha).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alphas", default="1e-4,1e-3,1e-2,1e-1")
    p.add_argument("--cv", type=int, default=3)
    p.add_argument("--max-iter", type=int, default=20)
    args = p.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]

    folder = tempfile.mkdtemp(prefix="symnet_search_")
    os.environ["SYMNET_CACHE_DIR"] = folder
    os.environ["SYMNET_KERNEL_DIR"] = folder
    try:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import GridSearchCV
        from sklearn.neural_network import MLPClassifier as SkMLP
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        print("bench_search.py needs scikit-learn (pip install '.[sklearn]')", file=sys.stderr)
        return 2
    from machine import cpu_description

    from symnet.sklearn import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    common = dict(hidden_layer_sizes=(64,), max_iter=args.max_iter, batch_size=64,
                  random_state=0, n_iter_no_change=args.max_iter + 1)
    print(f"# a grid search over alpha ({len(alphas)} values, cv={args.cv}): symnet.sklearn "
          f"against scikit-learn\n{cpu_description()}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    rows = []
    for name, make in (("symnet (empty caches)", MLPClassifier),
                       ("symnet again (kernels loaded)", MLPClassifier),
                       ("scikit-learn", SkMLP)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            search = GridSearchCV(make(**common), {"alpha": alphas}, cv=args.cv,
                                  n_jobs=1).fit(X, y)
            seconds = time.perf_counter() - start
        rows.append((name, seconds, search.best_params_["alpha"], search.best_score_))
    kernels = sorted(Path(folder).rglob("symnet_kernels_*.py"))
    print("| search | seconds | best alpha | best score |\n|---|---:|---:|---:|")
    for name, seconds, alpha, score in rows:
        print(f"| {name} | {seconds:.2f} | {alpha:g} | {score:.4f} |")
    print(f"\nsymnet compiled {len(kernels)} kernel file(s) for {len(alphas)} alphas "
          f"x {args.cv} folds + the refit; time over scikit-learn's: "
          f"{rows[0][1] / rows[2][1]:.2f}x with empty caches, "
          f"{rows[1][1] / rows[2][1]:.2f}x once loaded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
