"""`symnet sweep`: a hyperparameter search on Dask from the command line (symnet.dask.search).

    symnet sweep SPEC --data FILE.npz --grid KEY=V1,V2 ... [--random N] [--scheduler ADDRESS]

Without --scheduler it starts a LocalCluster of worker processes on this machine. It writes
DIR/sweep.csv (one row per point), DIR/best.toml (the best point's spec) and, with
matplotlib installed, DIR/sweep.png; DIR is --out-dir (default: <spec name>-sweep).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import SymnetError

_DISTRIBUTIONS = ("loguniform", "uniform", "randint")


def add_parser(sub) -> None:
    s = sub.add_parser("sweep", help="search hyperparameters on Dask (grid or random)",
                       description="Train every point of a grid (or --random N of them) as one "
                       "Dask task each, with validation data and early stopping; write the "
                       "table, the best spec and a plot. Keys: "
                       "learning_rate, optimizer, momentum, weight_decay, depth, width, "
                       "activation, dtype, epochs, batch_size, seed, or TABLE.KEY.")
    s.add_argument("spec", help="path to the spec TOML file")
    s.add_argument("--data", required=True, help=".npz file with arrays X and T")
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a key and its values (repeat for more keys); with --random also "
                   "KEY=loguniform:LOW:HIGH, uniform:LOW:HIGH or randint:LOW:HIGH")
    s.add_argument("--random", type=int, metavar="N",
                   help="train N random points instead of the whole grid")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="a Dask scheduler's address (default: a LocalCluster here)")
    s.add_argument("--workers", type=int, help="LocalCluster's worker processes (default: "
                   "the number of cores)")
    s.add_argument("--epochs", type=int, default=100, help="epochs per point (default 100)")
    s.add_argument("--batch-size", type=int, help="minibatch size (default: full batch)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--validation", metavar="FILE.npz", help="validation data (X and T)")
    g.add_argument("--validation-fraction", type=float, default=0.2,
                   help="hold out this fraction of --data (default 0.2)")
    s.add_argument("--patience", type=int, help="early stopping: epochs without improvement")
    s.add_argument("--min-delta", type=float, default=0.0)
    s.add_argument("--seed", type=int, default=0, help="seed of the split, the random "
                   "points, init_params and the minibatch order (default 0)")
    s.add_argument("-o", "--out-dir", help="where the results go (default: <name>-sweep)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def _value(text: str):
    low = text.strip().lower()
    if low in ("none", "full"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def _distribution(key: str, text: str):
    import scipy.stats

    kind, _, rest = text.partition(":")
    parts = rest.split(":")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise SymnetError(f"--grid {key}: expected {kind}:LOW:HIGH, got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high) \
            or (kind == "loguniform" and low <= 0):
        raise SymnetError(f"--grid {key}: expected LOW < HIGH" + (" and LOW > 0" if kind ==
                          "loguniform" else "") + f", got {text!r}")
    if kind == "loguniform":
        return scipy.stats.loguniform(low, high)
    if kind == "uniform":
        return scipy.stats.uniform(low, high - low)
    if low != int(low) or high != int(high):
        raise SymnetError(f"--grid {key}: randint takes integers, got {text!r}")
    return scipy.stats.randint(int(low), int(high) + 1)


def parse_space(items: list[str], random: bool) -> dict:
    """--grid KEY=V1,V2 items as a search space."""
    if not items:
        raise SymnetError("--grid: expected at least one KEY=V1,V2")
    space = {}
    for item in items:
        key, eq, values = item.partition("=")
        key = key.strip()
        if not eq or not key or not values.strip():
            raise SymnetError(f"--grid: expected KEY=V1,V2, got {item!r}")
        if key in space:
            raise SymnetError(f"--grid: {key} given twice")
        if values.partition(":")[0] in _DISTRIBUTIONS:
            if not random:
                raise SymnetError(f"--grid {key}: a distribution needs --random N")
            space[key] = _distribution(key, values)
        else:
            space[key] = [_value(v) for v in values.split(",")]
    return space


def run(args) -> int:
    from . import dask as sd
    from .spec import load_spec
    from .train import load_data

    spec = load_spec(args.spec)
    if args.random is not None and args.random < 1:
        raise SymnetError(f"--random: expected a positive integer, got {args.random}")
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--workers", args.workers), ("--patience", args.patience)):
        if value is not None and value < 1:
            raise SymnetError(f"{flag}: expected a positive integer, got {value}")
    if not (math.isfinite(args.min_delta) and args.min_delta >= 0):
        raise SymnetError(f"--min-delta: expected a non-negative number, got {args.min_delta}")
    if not 0 <= args.seed < 2**32:
        raise SymnetError(f"--seed: expected an integer in [0, 2**32), got {args.seed}")
    space = parse_space(args.grid, args.random is not None)
    kind = "random" if args.random is not None else "grid"
    # every point checked before a worker starts
    jobs = sd.search_points(args.spec, space, kind=kind, n_iter=args.random or 1,
                            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    X, T = load_data(args.data, spec.network.inputs, spec.network.outputs)
    if args.validation:
        validation = load_data(args.validation, spec.network.inputs, spec.network.outputs)
    else:
        validation = args.validation_fraction
        if not 0 < validation < 1:
            raise SymnetError(f"--validation-fraction: expected a number in (0, 1), got "
                              f"{validation}")
    out = Path(args.out_dir or f"{spec.name}-sweep")
    if out.exists() and not out.is_dir():
        raise SymnetError(f"{out}: expected a directory for -o/--out-dir")
    try:
        import tomli_w  # noqa: F401  (best.toml)
    except ImportError:
        raise SymnetError("symnet sweep needs the extra 'scale': pip install "
                          "'symnet[scale]'") from None
    distributed = sd._distributed()
    print(f"{spec.name}: {len(jobs)} points ({kind}) on {X.shape[0]} samples")
    cluster = None
    try:
        if args.scheduler:
            try:
                client = distributed.Client(args.scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise SymnetError(f"--scheduler: cannot reach {args.scheduler} ({exc})") \
                    from None
        else:
            workers = args.workers or os.cpu_count() or 1
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
            client = distributed.Client(cluster)
        with client:
            result = sd.search(args.spec, space, X, T, validation, kind=kind,
                               n_iter=args.random or 1, epochs=args.epochs,
                               batch_size=args.batch_size, patience=args.patience,
                               min_delta=args.min_delta, seed=args.seed, client=client,
                               progress=not args.no_progress)
    finally:
        if cluster is not None:
            cluster.close()
    out.mkdir(parents=True, exist_ok=True)
    print(result)
    result.to_csv(out / "sweep.csv")
    print(f"  table -> {out / 'sweep.csv'}")
    if result.best is not None:
        result.write_best(out / "best.toml")
        best = result.best
        print(f"  best: point {best['point']} ("
              + ", ".join(f"{k}={best[k]}" for k in result.keys)
              + f"), validation loss {best['val_loss']:.6g}; spec -> {out / 'best.toml'}")
        try:
            result.plot(out / "sweep.png")
            print(f"  plot -> {out / 'sweep.png'}")
        except SymnetError:
            print("  (no plot: matplotlib is not installed)")
    failed = [r for r in result.rows if r["status"] != "ok"]
    if failed:
        print(f"  {len(failed)} of {len(result.rows)} points did not finish: "
              + "; ".join(f"point {r['point']} {r['status']}" for r in failed[:5]))
    return 0


__all__ = ["add_parser", "parse_space", "run"]
