"""fit(..., trace=True): per epoch the loss, the parameters and each layer's gradient norm,
checked against an independent path: repeated grad and train_step calls from Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symnet

ROOT = Path(__file__).resolve().parent.parent
X1 = np.array([[0.05, 0.10]])
T1 = np.array([[0.01, 0.99]])


@pytest.fixture(scope="module")
def mazur(tmp_path_factory):
    return symnet.compile(ROOT / "examples" / "mazur.toml", tmp_path_factory.mktemp("trace"))


def test_full_batch_trace_against_grad_and_train_step(mazur):
    p = mazur.init_params()
    tr = mazur.fit(p, X1, T1, 6, trace=True)
    assert set(tr) == {"loss", "grad_norm", "W1", "b1", "W2", "b2"}
    assert tr["grad_norm"].shape == (6, 2) and tr["W2"].shape == (6, 2, 2)
    assert tr["b1"].shape == (6,)
    q = mazur.init_params()
    for k in range(6):
        E, g = mazur.grad(q, X1, T1)
        assert tr["loss"][k] == pytest.approx(E, rel=1e-14)
        for name in q:
            np.testing.assert_array_equal(tr[name][k], q[name])
        for layer in (1, 2):
            assert tr["grad_norm"][k, layer - 1] == pytest.approx(
                np.linalg.norm(g[f"W{layer}"]), rel=1e-12)
        mazur.train_step(q, X1, T1)
    for name in q:
        np.testing.assert_allclose(p[name], q[name], rtol=1e-14)
    # the lecture's numbers: the loss before the first and the second step, and w5 after one
    assert tr["loss"][:2] == pytest.approx([0.298371109, 0.2910277737], abs=5e-10)
    assert tr["W2"][1, 0, 0] == pytest.approx(0.35891648, abs=5e-9)


def test_trace_changes_nothing_in_the_training(mazur):
    p, q = mazur.init_params(), mazur.init_params()
    losses = mazur.fit(p, X1, T1, 50)
    tr = mazur.fit(q, X1, T1, 50, trace=True)
    np.testing.assert_array_equal(losses, tr["loss"])
    for name in p:
        np.testing.assert_array_equal(p[name], q[name])


XOR = {
    "name": "trace_xor",
    "network": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"},
                                        {"units": 1, "activation": "sigmoid"}]},
    "loss": {"kind": "bce", "reduction": "mean"},
    "training": {"optimizer": "sgd", "learning_rate": 0.3, "momentum": 0.9},
    "init": {"scheme": "xavier_uniform", "seed": 2},
}


@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_minibatch_trace_against_train_step(tmp_path, mode):
    m = symnet.compile(XOR, tmp_path, mode=mode)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 2))
    T = (X[:, :1] * X[:, 1:] > 0).astype(float)
    p, state = m.init_params(), m.init_state()
    tr = m.fit(p, X, T, 4, batch_size=3, seed=7, state=state, trace=True)
    # the same epochs by hand: NumPy's seeded permutation (Numba's np.random follows it)
    q, qstate = m.init_params(), m.init_state()
    legacy = np.random.RandomState(7)  # the stream np.random.seed(7) starts, without the global
    for k in range(4):
        for name in q:
            np.testing.assert_allclose(tr[name][k], q[name], rtol=1e-13, atol=1e-15)
        order = legacy.permutation(10)
        losses, norms = [], []
        for start in range(0, 10, 3):
            take = order[start:start + 3]
            _, g = m.grad(q, X[take], T[take])
            norms.append([np.linalg.norm(g["W1"]), np.linalg.norm(g["W2"])])
            losses.append(m.train_step(q, X[take], T[take], state=qstate))
        assert tr["loss"][k] == pytest.approx(np.mean(losses), rel=1e-12)
        np.testing.assert_allclose(tr["grad_norm"][k], np.mean(norms, axis=0), rtol=1e-12)
    for name in q:
        np.testing.assert_allclose(p[name], q[name], rtol=1e-12)
    np.testing.assert_allclose(state["W1.v"], qstate["W1.v"], rtol=1e-12)


def test_trace_stops_on_a_non_finite_loss_like_fit(mazur):
    """trace=True stops where fit stops: at the first non-finite loss, with the same error."""
    X = np.array([[0.05, 0.10], [np.nan, 0.2], [0.3, 0.4]])
    T = np.array([[0.01, 0.99], [0.5, 0.5], [0.2, 0.8]])
    for kwargs, where in (({}, "at step 0"), ({"batch_size": 1}, "at epoch 0, minibatch")):
        p = mazur.init_params()
        with pytest.raises(FloatingPointError, match=f"fit: the loss is nan {where}") as info:
            mazur.fit(p, X, T, 4, trace=True, **kwargs)
        q = mazur.init_params()
        with pytest.raises(FloatingPointError) as plain:
            mazur.fit(q, X, T, 4, **kwargs)
        assert (info.value.epoch, info.value.step) == (plain.value.epoch, plain.value.step)
        for name in p:
            np.testing.assert_array_equal(p[name], q[name])
