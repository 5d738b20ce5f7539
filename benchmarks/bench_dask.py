"""symnet.dask on this machine: data-parallel full-batch training on 1 and 2 workers against
the module's own fit in one process, the cost of a synchronised step, and a search's wall time
against running its points one after another.

    python benchmarks/bench_dask.py [--samples 2000000] [--epochs 20] [--points 8]

Needs the extra `scale` (dask[distributed]). Each worker is a process with one thread; the
figures are the best of --repeats runs. The header names the CPU (the flags that decide the
kernels' vector width). Results go to docs/benchmarks.md by hand, with the machine and date.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from machine import cpu_description  # benchmarks/machine.py, beside this script


def spec(name="dp_bench", width=32, depth=2, dtype="float32"):
    return {"name": name, "codegen": {"mode": "loop", "dtype": dtype},
            "network": {"inputs": 8, "layers": [{"units": width, "activation": "tanh"}] * depth
                        + [{"units": 1, "activation": "linear"}]},
            "loss": {"kind": "mse"}, "training": {"learning_rate": 0.01, "optimizer": "adam"}}


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2_000_000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import warnings

    import dask.array as da
    from distributed import Client, LocalCluster

    # da.from_array embeds the data in the graph once, when it is persisted: fine here
    warnings.filterwarnings("ignore", message=".*large graph.*")

    import symnet
    import symnet.dask as sd

    print(f"# bench_dask: {cpu_description()}; {time.strftime('%Y-%m-%d')}")
    out = tempfile.mkdtemp(prefix="bench_dask_")
    module = symnet.compile(spec(), out)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.samples, 8)).astype(np.float32)
    T = np.tanh(X[:, :1] * X[:, 1:2]).astype(np.float32)

    def single():
        module.fit(module.init_params(), X, T, args.epochs)

    module.fit(module.init_params(), X[:10], T[:10], 1)
    t_single = best_of(args.repeats, single)
    rate = args.samples * args.epochs / t_single
    print(f"\n## data-parallel full batch: {args.samples:,} samples, 8-32-32-1 tanh, float32, "
          f"Adam, {args.epochs} epochs\n")
    print("| run | seconds | samples/s | vs one process | parallel efficiency |")
    print("|---|---|---|---|---|")
    print(f"| module.fit, one process | {t_single:.2f} | {rate:,.0f} | 1.00x | |")
    rates = {}
    for workers in (1, 2):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        with Client(cluster) as client:
            chunk = -(-args.samples // workers)
            Xd = da.from_array(X, chunks=(chunk, 8)).persist()
            Td = da.from_array(T, chunks=(chunk, 1)).persist()
            sd.fit(module, module.init_params(), Xd, Td, 1, client=client)  # warm: compile

            def spread(client=client, Xd=Xd, Td=Td):
                sd.fit(module, module.init_params(), Xd, Td, args.epochs, client=client)

            t = best_of(args.repeats, spread)
            rates[workers] = args.samples * args.epochs / t
            eff = "" if workers == 1 else f"{rates[2] / (2 * rates[1]):.2f}"
            print(f"| symnet.dask.fit, {workers} worker{'s' if workers > 1 else ''} | {t:.2f} | "
                  f"{rates[workers]:,.0f} | {t_single / t:.2f}x | {eff} |")
            if workers == 2:
                # the synchronised step's own cost: a step on 2 x 8 samples, where the kernel
                # takes microseconds
                small = da.from_array(X[:16], chunks=(8, 8)).persist()
                small_t = da.from_array(T[:16], chunks=(8, 1)).persist()
                sd.fit(module, module.init_params(), small, small_t, 5, client=client)
                steps = 50
                t_step = best_of(args.repeats, lambda: sd.fit(
                    module, module.init_params(), small, small_t, steps, client=client)) / steps
                t_kernel = best_of(args.repeats, lambda: module.fit(
                    module.init_params(), X[:16], T[:16], steps)) / steps
                full_step = t_single / args.epochs
                print(f"\nA synchronised step on 2 workers (16 samples): {t_step * 1e3:.2f} ms, "
                      f"against {t_kernel * 1e6:.1f} us for the same step in one process: the "
                      f"overhead is {(t_step - t_kernel) * 1e3:.2f} ms a step. One full-batch "
                      f"step on {args.samples:,} samples takes {full_step * 1e3:.1f} ms in one "
                      f"process: data-parallel pays when a step's kernel time is well above "
                      f"the overhead.")
        cluster.close()

    # a search: its points in one process, one after another, against symnet.dask.search
    widths = [4, 8, 16, 32][: max(1, args.points // 2)]
    space = {"width": widths, "learning_rate": [0.01, 0.05]}
    Xs, Ts = X[:20_000].astype(float), T[:20_000].astype(float)
    base = spec("search_bench", dtype="float64")
    jobs = sd.search_points(base, space, epochs=30, batch_size=64)
    Xt, Tt, Xv, Tv = sd._split(Xs, Ts, 0.2, 0)
    symnet.compile(jobs[0][1], out, mode="loop").fit(  # the kernel compiled once, for both
        symnet.compile(jobs[0][1], out, mode="loop").init_params(), Xt[:10], Tt[:10], 1,
        validation=(Xv[:5], Tv[:5]))

    def sequential():
        for _, spec_dict, fit_kw, _ in jobs:
            m = symnet.compile(spec_dict, out, mode="loop")
            m.fit(m.init_params(), Xt, Tt, 30, batch_size=64, validation=(Xv, Tv))

    t_seq = best_of(1, sequential)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    with Client(cluster) as client:
        sd.search(base, {"width": widths[:1], "learning_rate": [0.01]}, Xs, Ts, epochs=1,
                  client=client)  # the workers load the kernel once
        result = sd.search(base, space, Xs, Ts, epochs=30, batch_size=64, client=client)
    cluster.close()
    failed = [r for r in result.rows if r["status"] != "ok"]
    if failed:
        raise SystemExit(f"search: {len(failed)} points did not finish: {failed[0]}")
    print(f"\n## search: {len(jobs)} points (width x learning rate), 16,000 + 4,000 samples, "
          f"30 epochs of minibatches of 64\n")
    print("| run | seconds |")
    print("|---|---|")
    print(f"| one after another, one process | {t_seq:.2f} |")
    print(f"| symnet.dask.search, 2 workers | {result.wall_s:.2f} ({t_seq / result.wall_s:.2f}x)"
          f" |")


if __name__ == "__main__":
    main()
