"""Store versus recompute in the loop form: checkpoint schedules, their counts against the
closed forms, their memory accounting, and the gradients of the kernels that run them."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _reference import finite_difference_grad

import symnet
from symnet.checkpoint import (
    check,
    make_plan,
    optimal_forward_steps,
    parse_strategy,
    plan,
    revolve_forward_steps,
)
from symnet.codegen.cpu.checkpoint import plan_table
from symnet.compiler import as_spec

ROOT = Path(__file__).resolve().parent.parent
CHAIN = ROOT / "examples" / "chain.toml"

STRATEGIES = ["store", "recompute", "checkpoint:1", "checkpoint:2", "checkpoint:3",
              "checkpoint:sqrt", "budget:0", "budget:1", "budget:2", "budget:3", "budget:50",
              "budget:200B"]


# ----------------------------------------------------------------------------------------
# parsing


@pytest.mark.parametrize("text, kind, every, slots, nbytes", [
    ("store", "store", 0, None, None),
    ("recompute", "recompute", 0, None, None),
    ("checkpoint:4", "checkpoint", 4, None, None),
    ("checkpoint:sqrt", "checkpoint", 0, None, None),
    ("budget:0", "budget", 0, 0, None),
    ("budget:12", "budget", 0, 12, None),
    ("budget:100B", "budget", 0, None, 100),
    ("budget:3KB", "budget", 0, None, 3 * 1024),
    ("budget:2MB", "budget", 0, None, 2 * 1024 ** 2),
])
def test_strategies_parse(text, kind, every, slots, nbytes):
    s = parse_strategy(text)
    assert (s.kind, s.every, s.slots, s.nbytes, s.text) == (kind, every, slots, nbytes, text)


@pytest.mark.parametrize("text", ["", "inline", "checkpoint", "checkpoint:", "checkpoint:0",
                                  "checkpoint:-1", "checkpoint:2.5", "budget:", "budget:-1",
                                  "budget:3kb", "budget:0KB", "budget:1TB", " store",
                                  "checkpoint:sqrt2", 3, None])
def test_bad_strategies_are_refused(text, tmp_path):
    with pytest.raises(ValueError):
        parse_strategy(text)
    spec = {"name": "s", "network": {"inputs": 2, "layers": [{"units": 2, "activation": "tanh"}]},
            "loss": {"kind": "sse"}, "codegen": {"strategy": text}}
    with pytest.raises(symnet.SpecError, match="codegen.strategy"):
        symnet.spec_from_dict(spec)


# ----------------------------------------------------------------------------------------
# counts


def test_dynamic_programming_equals_griewanks_closed_form():
    for n in range(1, 65):
        for s in range(0, 9):
            assert optimal_forward_steps(n, s) == revolve_forward_steps(n, s), (n, s)


def test_closed_form_at_its_ends():
    for n in range(1, 65):
        # no slot: x_m is recomputed from the input before each backward step
        assert revolve_forward_steps(n, 0) == n * (n - 1) // 2
        # a slot for every state but the last: each layer once
        assert revolve_forward_steps(n, max(n - 2, 0)) == max(n - 1, 0)


def test_one_slot_by_hand():
    """Five layers and one slot, counted by hand: x1 x2 x3 (x3 kept in the slot) and x4;
    backward 5 from x4 and 4 from x3; the slot is free again: x1 (kept) and x2 from the
    input; backward 3 from x2, 2 from x1, 1 from the input. 6 evaluations, Griewank's
    r*l - C(c + r, c + 1) with c = 2 checkpoints (the slot and the input), r = 2: 10 - 4."""
    assert revolve_forward_steps(5, 1) == optimal_forward_steps(5, 1) == 6
    p = plan("budget:1", (1,) * 6)
    check(p)
    assert [a.layer for a in p.actions if a.op == "forward"] == [1, 2, 3, 4, 1, 2]
    assert [a.layer for a in p.actions if a.op == "backward"] == [5, 4, 3, 2, 1]


def _checkpoint_steps(depth: int, k: int) -> int:
    """Chen et al.'s count, written independently: every state computed in the forward
    sweep; the ones before the last checkpoint that are not checkpoints once more."""
    last = (depth - 1) // k * k
    return (depth - 1) + sum(1 for i in range(1, last) if i % k)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 7, 9, 16, 33])
def test_every_plan_is_a_valid_reversal_with_the_predicted_count(depth):
    widths = [3] + [4 + i % 3 for i in range(depth)]
    for text in STRATEGIES[:-1]:
        p = plan(text, widths, [i % 2 == 0 for i in range(depth)])
        check(p)
        s = parse_strategy(text)
        if s.kind == "store":
            assert p.forward_steps == depth - 1 and p.recomputations == 0
        elif s.kind == "recompute":
            assert p.forward_steps == depth * (depth - 1) // 2
        elif s.kind == "checkpoint":
            k = s.every or max(1, round(math.sqrt(depth)))
            assert p.forward_steps == _checkpoint_steps(depth, k)
        else:
            assert p.forward_steps == revolve_forward_steps(depth, min(s.slots, max(depth - 2,
                                                                                     0)))
            assert p.slots <= s.slots


def test_accounting_of_store_and_recompute():
    widths = (5, 7, 3, 6, 2)  # inputs, three hidden layers, two outputs
    store = plan("store", widths, itemsize=8)
    # every hidden out kept; deltas: delta4 and delta2 alternate with delta3 and delta1
    assert store.stored_values == 7 + 3 + 6
    assert store.delta_values == max(2, 3) + max(6, 7)
    assert store.peak_bytes == 8 * (16 + 10)
    # 2*in*out per product: forward (hidden + output), dE/dW for each, delta for layers 2..4
    products = [5 * 7, 7 * 3, 3 * 6, 6 * 2]
    assert store.flops() == 2 * (sum(products) + sum(products) + sum(products[1:]))
    rec = plan("recompute", widths, with_net=(True, False, False, False), itemsize=4)
    # two work buffers of the widest state each; layer 1 keeps net too (twice its width)
    assert rec.stored_values == 14 + 14
    extra = 2 * (2 * 5 * 7 + 7 * 3)  # out1 twice more, out2 once more
    assert rec.flops() == store.flops() + extra


def test_byte_budgets_fit():
    widths = [8] * 17
    for nbytes in (200, 300, 500, 1000, 4000):
        p = plan(f"budget:{nbytes}B", widths)
        assert p.stored_bytes <= nbytes
        # no other budget:N that fits evaluates fewer layers
        for s in range(0, 15):
            q = plan(f"budget:{s}", widths)
            if q.stored_bytes <= nbytes:
                assert q.forward_steps >= p.forward_steps
    with pytest.raises(ValueError, match="at least 128 bytes"):
        plan("budget:100B", widths)


# ----------------------------------------------------------------------------------------
# kernels


def _deep(loss="cross_entropy", **codegen):
    acts = ["tanh", "gelu", "sigmoid", "relu", {"name": "elu", "alpha": 0.7}, "softplus",
            "silu"]
    biases = ["per_unit", "shared", "none"]
    layers = [{"units": 3 + i % 3, "activation": acts[i], "bias": biases[i % 3]}
              for i in range(len(acts))]
    if loss == "cross_entropy":
        layers.append({"units": 3, "activation": "softmax"})
    else:
        layers.append({"units": 2, "activation": "linear", "bias": "shared"})
    return {"name": f"deep_{loss}", "network": {"inputs": 4, "layers": layers},
            "loss": {"kind": loss, "weight_decay": 0.01 if loss == "mse" else 0.0,
                     "reduction": "mean" if loss == "mse" else "sum"},
            "training": {"learning_rate": 0.05},
            "codegen": {"mode": "loop", **codegen}}


def _data(spec, rng, batch=6):
    X = rng.standard_normal((batch, spec["network"]["inputs"]))
    k = spec["network"]["layers"][-1]["units"]
    if spec["loss"]["kind"] == "cross_entropy":
        return X, np.eye(k)[rng.integers(0, k, batch)]
    return X, rng.standard_normal((batch, k))


def _run(module, table, arena, params, X, T):
    """The module's gradient under another table of actions (and arena size)."""
    Xk, Tk = module._data(X, T)
    g = np.zeros(module._N_THETA, dtype=module.DTYPE)
    theta = module._pack(module._params(params, False))
    E = module._run(module.GRAD, theta, g, Xk, Tk, plan=(table, arena))[0]
    return E, {k: g[o:o + size].reshape(module.PARAM_SHAPES[k])
               for k, (o, size) in module._OFFSETS.items()}


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_every_strategy_gives_store_gradients(loss, tmp_path):
    spec = _deep(loss)
    store = symnet.compile(spec, tmp_path / "store")
    ck = symnet.compile(spec, tmp_path / "ck", strategy="budget:2")
    assert not hasattr(store, "CHECKPOINT_PLAN") and ck.CHECKPOINT_PLAN["schedule"] == "budget:2"
    rng = np.random.default_rng(3)
    params = ck.init_params(seed=4)
    X, T = _data(spec, rng)
    E0, g0 = store.grad(params, X, T)
    # store's gradient is right (an independent reference)
    fd = finite_difference_grad(spec, params, X, T)
    for k in g0:
        np.testing.assert_allclose(g0[k], fd[k], rtol=1e-5, atol=1e-7)
    E1, g1 = ck.grad(params, X, T)
    top = max(float(np.abs(v).max()) for v in g0.values())
    assert E1 == pytest.approx(E0, rel=1e-12)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=0, atol=1e-12 * top)
    program = symnet.build(spec, strategy="budget:2").program
    for text in STRATEGIES:
        p = make_plan(as_spec(spec).replace_codegen(strategy=text), program)
        E, g = _run(ck, plan_table(p), p.arena_values, params, X, T)
        assert E == pytest.approx(E0, rel=1e-12), text
        for k in g0:
            np.testing.assert_allclose(g[k], g0[k], rtol=0, atol=1e-12 * top, err_msg=text)


def test_a_schedule_that_reads_the_wrong_state_gives_another_gradient(tmp_path):
    """The comparison above can fail: point one backward step at the wrong buffer."""
    spec = _deep("mse")
    ck = symnet.compile(spec, tmp_path, strategy="checkpoint:1")
    params = ck.init_params(seed=4)
    X, T = _data(spec, np.random.default_rng(3))
    table = ck._PLAN.copy()
    E0, g0 = _run(ck, table, ck._ARENA, params, X, T)
    rows = np.flatnonzero((table[:, 0] == 1) & (table[:, 1] == 4))
    wrong = table[(table[:, 0] == 0) & (table[:, 1] == 6), 3][0]  # out6, as wide as out3
    table[rows[0], 2] = wrong
    _, g = _run(ck, table, ck._ARENA, params, X, T)
    assert not np.allclose(g["W4"], g0["W4"], rtol=1e-6)


def test_train_step_and_fit_under_checkpoints(tmp_path):
    spec = _deep("mse")
    store = symnet.compile(spec, tmp_path / "store")
    ck = symnet.compile(spec, tmp_path / "ck", strategy="checkpoint:sqrt")
    X, T = _data(spec, np.random.default_rng(5), batch=10)
    p0, p1 = store.init_params(seed=2), ck.init_params(seed=2)
    assert store.train_step(p0, X, T) == pytest.approx(ck.train_step(p1, X, T), rel=1e-12)
    l0 = store.fit(p0, X, T, 5, batch_size=4, seed=1)
    l1 = ck.fit(p1, X, T, 5, batch_size=4, seed=1)
    np.testing.assert_allclose(l1, l0, rtol=1e-11)
    for k in p0:
        np.testing.assert_allclose(p1[k], p0[k], rtol=1e-11, atol=1e-13)


def test_modes_and_strategies(tmp_path):
    small = {"name": "small", "network": {"inputs": 2, "layers": [
        {"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "loss": {"kind": "sse"}}
    assert symnet.build(small).mode == "scalar"
    assert symnet.build(small, strategy="recompute").mode == "scalar"  # CSE view
    built = symnet.build(small, strategy="checkpoint:2")
    assert built.mode == "loop" and "_PLAN = np.array" in built.source
    loop_recompute = symnet.build(small, strategy="recompute", mode="loop")
    assert "_PLAN = np.array" in loop_recompute.source
    with pytest.raises(symnet.SpecError, match='mode = "loop" or "auto"'):
        symnet.build(small, strategy="budget:1", mode="scalar")
    with pytest.raises(symnet.SpecError, match="codegen.strategy"):
        symnet.build(small, strategy="budget:1B")


# ----------------------------------------------------------------------------------------
# the lecture's chain: f evaluations counted by running the schedule


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _interpret_chain(table, weights, w, t):
    """Run a plan table on the chain of width 1 (f = sigmoid, no bias, E = 1/2 (z - t)^2)
    with Python floats, counting every evaluation of f. Returns (count, E, dE/dW)."""
    depth = len(weights)
    value = {-1: w}
    count = 0
    delta = E = None
    grads = [0.0] * depth
    for op, layer, src, dst in table:
        a = value[src]
        if op == 0:
            value[dst] = _sigmoid(weights[layer - 1] * a)
            count += 1
            continue
        if layer == depth:
            z = _sigmoid(weights[-1] * a)
            count += 1
            E = 0.5 * (z - t) ** 2
            delta = (z - t) * z * (1 - z)
        grads[layer - 1] = delta * a
        if layer > 1:
            delta = delta * weights[layer - 1] * a * (1 - a)
    return count, E, grads


@pytest.mark.parametrize("n", [3, 4, 8, 16, 33])
def test_chain_counts_f_evaluations(n):
    weights = [1.0] * n
    widths = (1,) * (n + 1)
    expected = {"store": n, "recompute": 1 + n * (n - 1) // 2,
                "budget:1": 1 + revolve_forward_steps(n, 1),
                "budget:2": 1 + revolve_forward_steps(n, 2)}
    reference = None
    for text, count in expected.items():
        p = plan(text, widths)
        got, E, grads = _interpret_chain(plan_table(p), weights, 0.5, 0.25)
        assert got == count == p.f_evaluations, text
        reference = reference or (E, grads)
        assert (E, grads) == reference


def test_chain_example_compiles_and_matches_its_schedule(tmp_path):
    net = symnet.compile(CHAIN, tmp_path)
    n = len(net.PARAM_SHAPES)
    assert net.STRATEGY == "checkpoint:sqrt" and n == 8
    count, E, grads = _interpret_chain(net._PLAN, [1.0] * n, 0.5, 0.25)
    assert count == net.CHECKPOINT_PLAN["forward_steps"] + 1 == 12
    E1, g = net.grad(net.init_params(), [[0.5]], [[0.25]])
    assert E1 == pytest.approx(E, rel=1e-14)
    for k in range(n):
        assert g[f"W{k + 1}"][0, 0] == pytest.approx(grads[k], rel=1e-12)


# ----------------------------------------------------------------------------------------
# command line


def _symnet(*args):
    return subprocess.run([sys.executable, "-m", "symnet", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_inspect_tradeoff_table():
    proc = _symnet("inspect", CHAIN, "--tradeoff")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[2:]}
    assert set(rows) >= {"store", "checkpoint:sqrt", "budget:2", "recompute"}
    # layer evaluations, the hidden layers' of the chain of 8 (store 7, recompute 28)
    assert rows["store"][3] == "7" and rows["recompute"][3] == "28"
    assert rows["budget:2"][3] == str(revolve_forward_steps(8, 2))
    # stored bytes: 7 outs of one float64 under store, the two work buffers under recompute
    assert rows["store"][5] == "56" and rows["recompute"][5] == "16"


@pytest.mark.extra
def test_inspect_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "tradeoff.png"
    proc = _symnet("inspect", CHAIN, "--plot", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compile_accepts_and_refuses_strategies(tmp_path):
    proc = _symnet("compile", CHAIN, "-o", tmp_path, "--strategy", "budget:3")
    assert proc.returncode == 0, proc.stderr
    assert 'STRATEGY = "budget:3"' in (tmp_path / "chain.py").read_text()
    bad = _symnet("compile", CHAIN, "-o", tmp_path / "bad", "--strategy", "checkpoint:0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "checkpoint:0" in bad.stderr and not (tmp_path / "bad").exists()


def test_float32_checkpoints(tmp_path):
    spec = _deep("mse")
    m64 = symnet.compile(spec, tmp_path / "f64", strategy="budget:1")
    m32 = symnet.compile(spec, tmp_path / "f32", strategy="budget:1", dtype="float32")
    assert m32.CHECKPOINT_PLAN["peak_bytes_per_sample"] * 2 == \
        m64.CHECKPOINT_PLAN["peak_bytes_per_sample"]
    X, T = _data(spec, np.random.default_rng(8))
    p64 = m64.init_params(seed=3)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    E64, g64 = m64.grad(p64, X, T)
    E32, g32 = m32.grad(p32, X, T)
    assert all(v.dtype == np.float32 for v in g32.values())
    assert E32 == pytest.approx(E64, rel=1e-5)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-5)
