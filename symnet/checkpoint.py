"""Store versus recompute in the loop form: checkpoint schedules for the backward pass.

The network is a chain. State x_0 is the input X (the caller's array, never counted as
stored); state x_i is the output `out<i>` of hidden layer i, for 1 <= i < L; layer i maps
x_{i-1} to x_i. The backward step of layer i needs x_{i-1} only (for dE/dW_i = delta_i^T
x_{i-1} and, through f' of layer i-1, for delta_{i-1}) and the delta that the step of layer
i + 1 left behind. The output layer's backward step (the *turn*) runs its forward part too:
net_L, the loss and delta_L come from x_{L-1}.

A schedule is a list of two kinds of action over named buffers:

- ``forward i: src -> dst`` evaluates layer i from the buffer holding x_{i-1} into dst;
- ``backward i: src`` runs the backward step of layer i from the buffer holding x_{i-1}.

Buffers are *slots* (checkpoints, kept across backward steps) and at most two *work* buffers
(the state being advanced between checkpoints). A buffer holds one layer's state: its out
vector, plus its net vector where the derivative of that layer's activation reads net.

Strategies (`[codegen] strategy`, parsed by symnet.strategy):

- ``store``: every state in a slot (L - 1 slots, no recomputation);
- ``recompute``: no slot; before each backward step the state is recomputed from X;
- ``checkpoint:K``: keep every K-th state; recompute one segment of K - 1 states at a time
  into slots (Chen et al. 2016); ``checkpoint:sqrt`` takes K = round(sqrt(L));
- ``budget:N``: N slots, and the schedule with the fewest layer evaluations for them:
  binomial checkpointing (Griewank's revolve), here by dynamic programming over (n, s), with
  its closed form in `revolve_forward_steps`;
- ``budget:<size>`` (e.g. ``budget:96KB``): the most slots whose stored bytes per sample
  (slots and work buffers) fit in <size>, then as ``budget:N``.

Everything here is pure Python over integers (`widths`, `with_net` and `make_plan` read a
network's off its spec and LoopProgram): the templates unroll nothing, the kernel reads the
plan as a table of actions (symnet.codegen.cpu.checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from .strategy import Strategy, parse_strategy

if TYPE_CHECKING:
    from .loop import LoopProgram
    from .spec import Spec

# ----------------------------------------------------------------------------------------
# binomial checkpointing: the optimum for a chain


def sweep_steps(n: int) -> int:
    """Layer evaluations to reverse n steps with no slot: x_{m} recomputed from x_0 for
    every m = n-1, ..., 1 (the lecture's Eq. 6.53 applied layer by layer)."""
    return n * (n - 1) // 2


@cache
def _best(n: int, s: int) -> tuple[int, int, int]:
    """(layer evaluations, slots at peak, split) of the best reversal of n steps whose first
    state is available (not in a slot of the s), with s free slots. split j > 0: advance j
    steps, keep x_j in a slot, reverse the right part with s - 1 slots, then the left part
    with s; split 0: the sweep without slots. Ties go to fewer slots, then the larger j."""
    if n <= 1:
        return (0, 0, 0)
    best = (sweep_steps(n), 0, 0)
    if s == 0:
        return best
    if s >= n - 2:  # enough to keep every state: advance one step at a time
        right = _best(n - 1, s - 1)
        return (n - 1, 1 + right[1], 1)
    for j in range(n - 1, 0, -1):
        right, left = _best(n - j, s - 1), _best(j, s)
        cand = (j + right[0] + left[0], max(1 + right[1], left[1]), j)
        if cand[:2] < best[:2]:
            best = cand
    return best


def optimal_forward_steps(n: int, s: int) -> int:
    """The fewest layer evaluations (the first forward sweep included, the output layer's
    own forward part not) that reverse a chain of n layers with s slots, by dynamic
    programming."""
    return _best(n, s)[0]


def revolve_forward_steps(n: int, s: int) -> int:
    """The same minimum in closed form (Griewank 1992; Griewank and Walther 2000).

    With c = s + 1 checkpoints (the s slots and the input, which the caller keeps) and r the
    smallest integer with C(c + r, c) >= n, reversing n steps takes
        r*n - C(c + r, c + 1)
    forward steps. Here the last state before each backward step is held in a work buffer,
    as revolve holds it in the state it advances, so slots count checkpoints only."""
    if n <= 1:
        return 0
    c = s + 1
    r = 0
    while math.comb(c + r, c) < n:
        r += 1
    return r * n - math.comb(c + r, c + 1)


def recomputations(n: int, forward_steps: int) -> int:
    """Layer evaluations beyond the single forward sweep of `store` (n - 1 for n layers)."""
    return forward_steps - max(n - 1, 0)


# ----------------------------------------------------------------------------------------
# plans


@dataclass(frozen=True)
class Action:
    op: str  # "forward" or "backward"
    layer: int
    src: str  # the buffer holding x_{layer-1}: "X", "slot<k>" or "work<k>"
    dst: str = ""  # forward: the buffer that receives x_layer


@dataclass(frozen=True)
class Buffer:
    name: str
    offset: int  # in values per sample, within the kernel's one arena
    size: int  # values per sample


@dataclass(frozen=True)
class Plan:
    strategy: Strategy
    resolved: str  # what it came to for this network, e.g. "checkpoint:8", "budget:3"
    widths: tuple[int, ...]  # w_0 (inputs), w_1, ..., w_L
    state_sizes: tuple[int, ...]  # values per sample of x_0 .. x_{L-1} (x_0: unused)
    actions: tuple[Action, ...]
    buffers: tuple[Buffer, ...]  # activation buffers (slots and work buffers)
    deltas: tuple[Buffer, Buffer]  # delta_i lives in deltas[(L - i) % 2], at the arena's start
    itemsize: int  # bytes per value

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def forward_steps(self) -> int:
        """Layer evaluations of hidden layers, the first forward sweep included."""
        return sum(1 for a in self.actions if a.op == "forward")

    @property
    def recomputations(self) -> int:
        return recomputations(self.depth, self.forward_steps)

    @property
    def f_evaluations(self) -> int:
        """Evaluations of activation functions per unit of a chain of width 1: every hidden
        layer's forward plus the output layer's one."""
        return self.forward_steps + 1

    @property
    def slots(self) -> int:
        return sum(1 for b in self.buffers if b.name.startswith("slot"))

    @property
    def stored_values(self) -> int:
        """Values per sample that the activation buffers hold (slots and work buffers)."""
        return sum(b.size for b in self.buffers)

    @property
    def stored_bytes(self) -> int:
        return self.stored_values * self.itemsize

    @property
    def delta_values(self) -> int:
        return sum(b.size for b in self.deltas)

    @property
    def peak_bytes(self) -> int:
        """Bytes per sample of the kernel's whole arena: activation and delta buffers. The
        kernel allocates nothing else per sample (the gradients are parameter-sized)."""
        return (self.stored_values + self.delta_values) * self.itemsize

    @property
    def arena_values(self) -> int:
        return self.stored_values + self.delta_values

    def flops(self) -> int:
        """Floating-point operations per sample of forward plus backward: 2*in*out for each
        matrix product (every layer evaluation, the output layer's, each dE/dW and each
        delta passed back). Elementwise work (activations, derivatives, the loss, biases,
        the update) is not counted: it is O(width) against O(width^2)."""
        w = self.widths
        total = 0
        for a in self.actions:
            mac = w[a.layer - 1] * w[a.layer]
            if a.op == "forward":
                total += 2 * mac
            else:
                total += 2 * mac  # dE/dW
                if a.layer == self.depth:
                    total += 2 * mac  # the output layer's net, in the turn
                if a.layer > 1:
                    total += 2 * mac  # delta_{i-1} = delta_i @ W_i
        return total

    @property
    def steps(self) -> int:
        """Layer evaluations plus backward steps: a cost model in which evaluating a layer
        costs as much as its backward step (its activation's elementwise work weighs like a
        matrix product, see docs/checkpointing.md)."""
        return len(self.actions)

    def describe(self) -> list[str]:
        """One line per action (the comments of the generated table)."""
        out = []
        for a in self.actions:
            if a.op == "forward":
                out.append(f"forward {a.layer}: out{a.layer - 1} in {a.src} -> "
                           f"out{a.layer} in {a.dst}")
            else:
                out.append(f"backward {a.layer}: out{a.layer - 1} in {a.src}"
                           + (" (output layer: loss and its delta first)"
                              if a.layer == self.depth else ""))
        return out


class _Builder:
    def __init__(self, sizes: tuple[int, ...]):
        self.sizes = sizes
        self.actions: list[Action] = []
        self.use: dict[str, int] = {}
        self.free: list[int] = []
        self.count = 0

    def slot(self) -> str:
        if self.free:
            self.free.sort()
            return f"slot{self.free.pop(0)}"
        self.count += 1
        return f"slot{self.count - 1}"

    def release(self, name: str) -> None:
        if name.startswith("slot"):
            self.free.append(int(name[4:]))

    def forward(self, i: int, src: str, dst: str) -> None:
        self.actions.append(Action("forward", i, src, dst))
        self.use[dst] = max(self.use.get(dst, 0), self.sizes[i])

    def backward(self, i: int, src: str) -> None:
        self.actions.append(Action("backward", i, src))

    def advance(self, src: str, lo: int, hi: int, dst: str, tmp: str) -> None:
        """x_{lo+1} .. x_hi from x_lo in src; x_hi lands in dst, the ones before alternate
        between tmp and dst."""
        prev = src
        for i in range(lo + 1, hi + 1):
            here = dst if (hi - i) % 2 == 0 else tmp
            self.forward(i, prev, here)
            prev = here


def _revolve(b: _Builder, lo: int, hi: int, s: int, src: str) -> None:
    n = hi - lo
    if n == 1:
        b.backward(hi, src)
        return
    _, _, j = _best(n, s)
    if j == 0:
        for m in range(hi - 1, lo, -1):
            b.advance(src, lo, m, "work0", "work1")
            b.backward(m + 1, "work0")
        b.backward(lo + 1, src)
        return
    slot = b.slot()
    b.advance(src, lo, lo + j, slot, "work0")
    _revolve(b, lo + j, hi, s - 1, slot)
    b.release(slot)
    _revolve(b, lo, lo + j, s, src)


def _checkpoint(b: _Builder, depth: int, k: int) -> None:
    last = (depth - 1) // k * k  # the last checkpoint; the states after it are kept
    holder = {0: "X"}
    work = 0
    for i in range(1, depth):
        if i % k == 0 or i > last:
            dst = b.slot()
        else:
            dst = f"work{work}"
            work = 1 - work
        b.forward(i, holder[i - 1], dst)
        holder[i] = dst

    def back(i: int) -> None:
        b.backward(i, holder[i - 1])
        b.release(holder[i - 1])

    for i in range(depth, last, -1):
        back(i)
    for end in range(last, 0, -k):
        start = end - k
        for i in range(start + 1, end):
            holder[i] = b.slot()
            b.forward(i, holder[i - 1], holder[i])
        for i in range(end, start, -1):
            back(i)


def sqrt_every(depth: int) -> int:
    return max(1, round(math.sqrt(depth)))


def plan(strategy: Strategy | str, widths, with_net=None, itemsize: int = 8) -> Plan:
    """The schedule of `strategy` for a network of layer widths w_0 (inputs), ..., w_L.
    with_net[i] (i = 1..L): whether layer i's state keeps its net as well as its out
    (its activation's derivative reads net). ValueError for a byte budget that nothing
    fits."""
    if isinstance(strategy, str):
        strategy = parse_strategy(strategy)
    widths = tuple(int(w) for w in widths)
    depth = len(widths) - 1
    if depth < 1:
        raise ValueError("a network of at least one layer")
    with_net = tuple(with_net) if with_net is not None else (False,) * (depth + 1)
    if len(with_net) == depth:
        with_net = (False, *with_net)
    sizes = tuple(w * (2 if with_net[i] and i > 0 else 1) for i, w in enumerate(widths))
    sizes = (0,) + sizes[1:depth]  # states x_1 .. x_{L-1}
    if strategy.kind == "budget" and strategy.nbytes is not None:
        return _fit_bytes(strategy, widths, sizes, itemsize)
    b = _Builder(sizes)
    if strategy.kind == "store":
        _checkpoint(b, depth, 1)
        resolved = "store"
    elif strategy.kind == "checkpoint":
        k = strategy.every or sqrt_every(depth)
        _checkpoint(b, depth, k)
        resolved = f"checkpoint:{k}"
    else:
        s = 0 if strategy.kind == "recompute" else min(strategy.slots, max(depth - 2, 0))
        _revolve(b, 0, depth, s, "X")
        resolved = "recompute" if strategy.kind == "recompute" else f"budget:{s}"
    return _finish(strategy, resolved, widths, sizes, b, itemsize)


def _fit_bytes(strategy: Strategy, widths, sizes, itemsize: int) -> Plan:
    """Of budget:0 .. budget:L-2, the fewest layer evaluations (then the fewest bytes)
    among those whose stored bytes per sample fit."""
    depth = len(widths) - 1
    fits = []
    smallest = None
    for s in range(max(depth - 2, 0) + 1):
        b = _Builder(sizes)
        _revolve(b, 0, depth, s, "X")
        p = _finish(strategy, f"budget:{s}", widths, sizes, b, itemsize)
        if p.stored_bytes <= strategy.nbytes:
            fits.append(p)
        if smallest is None or p.stored_bytes < smallest:
            smallest = p.stored_bytes
    if not fits:
        raise ValueError(f"a budget of at least {smallest} bytes per sample for this "
                         f"network (the least any schedule stores)")
    return min(fits, key=lambda p: (p.forward_steps, p.stored_bytes))


def _finish(strategy, resolved, widths, sizes, b: _Builder, itemsize) -> Plan:
    depth = len(widths) - 1
    # the two delta buffers first: their offsets depend on the widths only, not the plan
    parity = [max((widths[i] for i in range(1, depth + 1) if (depth - i) % 2 == p),
                  default=0) for p in (0, 1)]
    deltas = (Buffer("delta0", 0, parity[0]), Buffer("delta1", parity[0], parity[1]))
    names = sorted((n for n in b.use if n.startswith("slot")), key=lambda n: int(n[4:]))
    names += [n for n in ("work0", "work1") if n in b.use]
    buffers, offset = [], parity[0] + parity[1]
    for n in names:
        buffers.append(Buffer(n, offset, b.use[n]))
        offset += b.use[n]
    return Plan(strategy=strategy, resolved=resolved, widths=widths, state_sizes=sizes,
                actions=tuple(b.actions), buffers=tuple(buffers), deltas=deltas,
                itemsize=itemsize)


# ----------------------------------------------------------------------------------------
# one network's shape


def widths(spec: Spec) -> tuple[int, ...]:
    """The layer widths w_0 (inputs), w_1, ..., w_L."""
    return (spec.network.inputs, *(layer.units for layer in spec.network.layers))


def with_net(program: LoopProgram) -> tuple[bool, ...]:
    """Per layer 1..L: whether its state keeps net (its derivative reads z)."""
    from .loop import Z

    return tuple(L is not program.layers[-1] and Z in L.derivative.free_symbols
                 for L in program.layers)


def make_plan(spec: Spec, program: LoopProgram) -> Plan:
    """The plan of the spec's strategy for the network of a LoopProgram (symnet.loop)."""
    import numpy as np

    itemsize = np.dtype(spec.codegen.dtype).itemsize
    return plan(spec.codegen.strategy, widths(spec), with_net(program), itemsize)


def check(p: Plan) -> None:
    """Run the plan on symbolic states and assert that every action finds what it needs:
    a forward step reads x_{i-1}, a backward step reads x_{i-1} and runs in order L, ..., 1,
    and nothing overwrites a state still in use by the step reading it."""
    held = {"X": 0}
    expect = p.depth
    for a in p.actions:
        assert held.get(a.src) == a.layer - 1, (a, held)
        if a.op == "forward":
            assert a.dst != a.src and a.dst != "X", a
            held[a.dst] = a.layer
        else:
            assert a.layer == expect, (a, expect)
            expect -= 1
    assert expect == 0


TRADEOFF_STRATEGIES = ("store", "checkpoint:sqrt", "budget:4", "budget:2", "budget:1",
                       "recompute")


def tradeoff(widths, with_net=None, itemsize: int = 8,
             strategies=None) -> list[Plan]:
    """The plans the trade-off table and plot show: store, sqrt checkpoints, revolve with a
    few slots, and recompute (and whatever else is asked for)."""
    texts = list(strategies or TRADEOFF_STRATEGIES)
    plans, seen = [], set()
    for text in texts:
        p = plan(text, widths, with_net, itemsize)
        key = (p.forward_steps, p.stored_bytes, p.peak_bytes)
        if key not in seen:
            seen.add(key)
            plans.append(p)
    return plans


def frontier(widths, with_net=None, itemsize: int = 8) -> list[Plan]:
    """budget:N for every N from 0 (recompute) to L - 2 (store): the least recomputation
    for each memory, the curve of the plot."""
    depth = len(widths) - 1
    return [plan(f"budget:{s}", widths, with_net, itemsize)
            for s in range(0, max(depth - 2, 0) + 1)]


def table(plans: list[Plan]) -> list[str]:
    """The trade-off as text: one line per plan."""
    base = next((p for p in plans if p.strategy.kind == "store"), plans[0])
    head = (f"{'strategy':<18} {'schedule':<14} {'slots':>5} {'layer evals':>11} "
            f"{'recomputed':>10} {'stored B/sample':>15} {'peak B/sample':>13} "
            f"{'FLOPs/sample':>13} {'rel. FLOPs':>10} {'rel. steps':>10}")
    lines = [head]
    for p in plans:
        lines.append(f"{p.strategy.text:<18} {p.resolved:<14} {p.slots:>5} "
                     f"{p.forward_steps:>11} {p.recomputations:>10} {p.stored_bytes:>15} "
                     f"{p.peak_bytes:>13} {p.flops():>13} {p.flops() / base.flops():>10.2f} "
                     f"{p.steps / base.steps:>10.2f}")
    return lines


def plot(plans: list[Plan], curve: list[Plan], path, title: str = "") -> None:
    """Memory (stored bytes per sample) against compute (FLOPs per sample): the budget:N
    curve and every plan of the table on it. Needs matplotlib (the `plot` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([p.stored_bytes for p in curve], [p.flops() for p in curve], "-", color="0.6",
            marker=".", label="budget:N, N = 0 .. L-2 (fewest recomputations)")
    for p in plans:
        ax.plot(p.stored_bytes, p.flops(), "o")
        ax.annotate(p.strategy.text, (p.stored_bytes, p.flops()), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    ax.set_xlabel("stored activations, bytes per sample")
    ax.set_ylabel("FLOPs per sample, forward + backward")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title or "store versus recompute")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
