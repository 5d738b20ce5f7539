"""The lecture's chain x = f(w), y = f(x), z = f(y) (Fig. 6.9), stretched to n layers: how
many evaluations of f the gradient takes under store, recompute and checkpoints.

Store evaluates f once per layer (Eq. 6.52); recompute evaluates layer k's input again from
w before each backward step (Eq. 6.53), 1 + n(n-1)/2 evaluations in all; checkpoints and
budgets sit in between. The counts come from the schedules symnet emits (each forward row
of the generated `_PLAN`, plus the output layer's one evaluation). Then examples/chain.toml
(n = 8) is compiled under three strategies, and each gradient is checked against the
product of the f' along the chain.

    python examples/chain.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import symnet  # noqa: E402
from symnet.checkpoint import plan  # noqa: E402

STRATEGIES = ("store", "checkpoint:sqrt", "budget:2", "budget:1", "recompute")


def f_evaluations(n: int, strategy: str) -> int:
    p = plan(strategy, (1,) * (n + 1))
    return p.forward_steps + 1


def main() -> int:
    print("evaluations of f for the gradient of an n-layer chain")
    print(f"{'n':>4} " + " ".join(f"{s:>16}" for s in STRATEGIES))
    for n in (3, 4, 8, 16, 32, 64):
        print(f"{n:>4} " + " ".join(f"{f_evaluations(n, s):>16}" for s in STRATEGIES))

    w, t = 0.5, 0.25
    out = Path(tempfile.mkdtemp(prefix="symnet-chain-"))
    ok = True
    for strategy in ("store", "checkpoint:sqrt", "recompute"):
        net = symnet.compile(ROOT / "examples" / "chain.toml", out / strategy.replace(":", "_"),
                             strategy=strategy)
        params = net.init_params()
        E, grads = net.grad(params, [[w]], [[t]])
        # the chain rule by hand: a_k = f(a_{k-1}), dz/dw = prod f'(a_{k-1}) = prod a_k(1-a_k)
        a, dz = w, 1.0
        for _ in range(len(params)):
            a = 1.0 / (1.0 + np.exp(-a))
            dz *= a * (1.0 - a)
        expected = (a - t) * dz  # dE/dw, and dE/dW1 = dE/dw * w since W1 multiplies w
        got = grads["W1"][0, 0] / w
        ok &= abs(got - expected) <= 1e-12 * abs(expected)
        print(f"{strategy:<16} E = {E:.12f}  dE/dw = {got:.12e}  (by hand {expected:.12e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
