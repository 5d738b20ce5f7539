"""What the argument checks of a generated module's wrappers cost per call.

On the lecture's 2-2-2 example (examples/mazur.toml, one sample), times the public
`train_step(params, X, T)` and the compiled kernel `_train_step` it calls, given the arrays
the wrapper would pass, and prints both in microseconds per call and their difference: the
wrapper's overhead (argument checks, the data layout, the zeroed gradient arrays). Numba's
compile time is excluded. Each figure is the median of several timed runs.

    python benchmarks/wrapper_overhead.py [--calls N] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import symnet  # noqa: E402

X = np.array([[0.05, 0.10]])
T = np.array([[0.01, 0.99]])


def per_call(fn, calls: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls)
    return statistics.median(runs) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        m = symnet.compile(ROOT / "examples" / "mazur.toml", Path(out))
        params = m.init_params()
        Xk, Tk = m._data(X, T)
        arrays = (*m._params(params, True), *m._grad_arrays(), *m._state(None))
        lr = m.DTYPE(1e-12)  # tiny: the parameters barely move over the timed calls

        def wrapper():
            m.train_step(params, X, T, lr=1e-12)

        def kernel():
            m._train_step(*arrays, Xk, Tk, lr)

        wrapper(), kernel()  # compile
        w = per_call(wrapper, args.calls, args.repeats)
        k = per_call(kernel, args.calls, args.repeats)
    print(f"train_step (wrapper)   {w:8.2f} us/call")
    print(f"_train_step (kernel)   {k:8.2f} us/call")
    print(f"wrapper overhead       {w - k:8.2f} us/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
