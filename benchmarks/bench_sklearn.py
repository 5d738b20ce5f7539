"""symnet.sklearn against scikit-learn's own MLP estimators on the data sets scikit-learn ships.

    python benchmarks/bench_sklearn.py [--repeats 3]

Per data set: the same architecture, activation, solver (Adam), learning rate, batch size and
number of epochs for both (n_iter_no_change above max_iter: no early stop, every epoch run);
features standardised, a fixed 75/25 split. Figures: test accuracy (R² for diabetes), and the
whole `fit` in seconds, each in a fresh process: scikit-learn; symnet cold (empty Numba and
symnet caches: import, compile, train); symnet warm (the kernels compiled on this machine
before: a new process that loads them); and in each process the next fit, of twice the width
and another alpha (a search's next point: for symnet a new module of the same kinds). The
workers import symnet as an installed copy is imported (machine.as_installed: this checkout's
bytecode compiled beforehand, as pip compiled scikit-learn's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_peers  # noqa: E402  (numpy and the standard library only)
from machine import as_installed  # noqa: E402

DATASETS = {  # name: (loader, task, hidden layers, epochs, batch size, learning rate)
    "digits": ("load_digits", "classifier", (64,), 60, 64, 0.001),
    "breast_cancer": ("load_breast_cancer", "classifier", (32,), 60, 32, 0.001),
    "wine": ("load_wine", "classifier", (32,), 100, 16, 0.001),
    "diabetes": ("load_diabetes", "regressor", (16,), 100, 32, 0.001),
}


def worker(args: dict) -> dict:
    t0 = time.perf_counter()
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    loader, task, hidden, epochs, batch, lr = DATASETS[args["dataset"]]
    X, y = getattr(datasets, loader)(return_X_y=True)
    if task == "regressor":
        y = (y - y.mean()) / y.std()
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    if args["impl"] == "sklearn":
        from sklearn import neural_network as nn
    else:
        sys.path.insert(0, str(ROOT))
        import symnet.sklearn as nn
    cls = nn.MLPClassifier if task == "classifier" else nn.MLPRegressor
    est = cls(hidden_layer_sizes=hidden, solver="adam", learning_rate_init=lr, batch_size=batch,
              max_iter=epochs, n_iter_no_change=epochs + 1, random_state=0)
    import warnings

    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_train, y_train)
    t2 = time.perf_counter()
    # the next fit in the same process, of another width and alpha (a search's next point)
    nxt = cls(hidden_layer_sizes=tuple(2 * h for h in hidden), alpha=1e-3, solver="adam",
              learning_rate_init=lr, batch_size=batch, max_iter=epochs,
              n_iter_no_change=epochs + 1, random_state=1)
    t3 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nxt.fit(X_train, y_train)
    t4 = time.perf_counter()
    return {"score": float(est.score(X_test, y_test)), "fit": t2 - t1, "epochs": est.n_iter_,
            "imports": t1 - t0, "next": t4 - t3}


def run(impl: str, dataset: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker",
                          json.dumps({"impl": impl, "dataset": dataset})],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker")
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return 0
    import sklearn

    print(f"# symnet.sklearn vs scikit-learn {sklearn.__version__}: "
          f"{bench_peers.cpu_description()}; {time.strftime('%Y-%m-%d')}; medians of {a.repeats}")
    print("| data set | scikit-learn score | symnet score | scikit-learn fit (s) | symnet cold "
          "(s) | symnet warm (s) | warm speed-up | cold speed-up | next fit: scikit-learn | "
          "next fit: symnet | next-fit speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = as_installed(os.environ)
    for name in DATASETS:
        rows = {"sklearn": [], "cold": [], "warm": []}
        for _ in range(a.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**base, "NUMBA_CACHE_DIR": f"{tmp}/numba",
                       "SYMNET_CACHE_DIR": f"{tmp}/symnet", "SYMNET_KERNEL_DIR": f"{tmp}/k"}
                rows["sklearn"].append(run("sklearn", name, env))
                rows["cold"].append(run("symnet", name, env))
                rows["warm"].append(run("symnet", name, env))

        def med(kind, key):
            values = sorted(r[key] for r in rows[kind])
            return values[len(values) // 2]

        sk, cold, warm = med("sklearn", "fit"), med("cold", "fit"), med("warm", "fit")
        sk_next, sy_next = med("sklearn", "next"), med("warm", "next")
        print(f"| {name} | {med('sklearn', 'score'):.4f} | {med('warm', 'score'):.4f} | "
              f"{sk:.3f} | {cold:.2f} | {warm:.3f} | {sk / warm:.1f}x | {sk / cold:.2f}x | "
              f"{sk_next:.3f} | {sy_next:.4f} | {sk_next / sy_next:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
