"""Momentum, Nesterov and Adam updates and learning-rate decay against NumPy re-statements
of their textbook (PyTorch-convention) rules, driven by the module's own grad."""

import numpy as np
import pytest

import symnet


def _spec(mode="scalar", **training):
    return {
        "name": "opt",
        "network": {"inputs": 3, "layers": [
            {"units": 4, "activation": "tanh"},
            {"units": 2, "activation": "sigmoid", "bias": "shared"}]},
        "loss": {"kind": "bce"},
        "training": {"learning_rate": 0.05, "update": ["weights", "biases"], **training},
        "init": {"seed": 4},
        "codegen": {"mode": mode},
    }


def _data():
    rng = np.random.default_rng(12)
    return rng.normal(size=(10, 3)), rng.uniform(size=(10, 2))


def _reference_run(m, params, X, T, steps, rule):
    """Apply `rule(name, p, g, mem, step)` with grads from m.grad."""
    p = {k: v.copy() for k, v in params.items()}
    mem: dict = {}
    losses = []
    for step in range(1, steps + 1):
        E, g = m.grad(p, X, T)
        losses.append(E)
        for name in p:
            p[name] = rule(name, p[name], g[name], mem, step)
    return np.array(losses), p


@pytest.mark.parametrize("mode", ["scalar", "loop"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum(mode, nesterov, tmp_path):
    m = symnet.compile(_spec(mode, momentum=0.8, nesterov=nesterov), tmp_path)
    assert set(m.STATE_SHAPES) == {"W1.v", "b1.v", "W2.v", "b2.v"}
    X, T = _data()
    lr, mu = 0.05, 0.8

    def rule(name, p, g, mem, step):
        v = mem[name] = mu * mem.get(name, 0.0) + g
        return p - lr * (g + mu * v if nesterov else v)

    want_losses, want = _reference_run(m, m.init_params(), X, T, 6, rule)
    p = m.init_params()
    state = m.init_state()
    got = [m.train_step(p, X, T, state=state) for _ in range(6)]
    np.testing.assert_allclose(got, want_losses, rtol=1e-12)
    for name in p:
        np.testing.assert_allclose(p[name], want[name], rtol=1e-11, atol=1e-14)
    assert np.any(state["W1.v"] != 0)


@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_adam(mode, tmp_path):
    m = symnet.compile(_spec(mode, optimizer="adam", beta1=0.85, beta2=0.99, eps=1e-7), tmp_path)
    assert "step" in m.STATE_SHAPES and m.OPTIMIZER == "Adam"
    X, T = _data()
    lr, b1, b2, eps = 0.05, 0.85, 0.99, 1e-7

    def rule(name, p, g, mem, step):
        mo, ve = mem.get(name, (0.0, 0.0))
        mo = b1 * mo + (1 - b1) * g
        ve = b2 * ve + (1 - b2) * g * g
        mem[name] = (mo, ve)
        return p - lr * (mo / (1 - b1 ** step)) / (np.sqrt(ve / (1 - b2 ** step)) + eps)

    want_losses, want = _reference_run(m, m.init_params(), X, T, 7, rule)
    p = m.init_params()
    got = m.fit(p, X, T, 7)  # fit keeps its own state for the whole run
    np.testing.assert_allclose(got, want_losses, rtol=1e-12)
    for name in p:
        np.testing.assert_allclose(p[name], want[name], rtol=1e-10, atol=1e-13)


def test_fit_continues_a_state(tmp_path):
    m = symnet.compile(_spec(optimizer="adam"), tmp_path)
    X, T = _data()
    a, b = m.init_params(), m.init_params()
    whole = m.fit(a, X, T, 10)
    state = m.init_state()
    halves = np.concatenate([m.fit(b, X, T, 5, state=state), m.fit(b, X, T, 5, state=state)])
    np.testing.assert_allclose(halves, whole, rtol=1e-13)
    assert state["step"] == 10
    # without a state, a second fit starts Adam afresh: a different trajectory
    c = m.init_params()
    m.fit(c, X, T, 5)
    assert not np.allclose(m.fit(c, X, T, 5), whole[5:], rtol=1e-9)


@pytest.mark.parametrize("decay, factor_at", [
    ({"kind": "step", "every": 3, "factor": 0.5}, lambda k: 0.5 ** (k // 3)),
    ({"kind": "exponential", "rate": 0.9}, lambda k: 0.9 ** k),
])
def test_learning_rate_decay(decay, factor_at, tmp_path):
    m = symnet.compile(_spec(lr_decay=decay), tmp_path)
    X, T = _data()
    a, b = m.init_params(), m.init_params()
    losses = m.fit(a, X, T, 8, lr=0.4)
    stepped = [m.train_step(b, X, T, lr=0.4 * factor_at(k)) for k in range(8)]
    np.testing.assert_allclose(losses, stepped, rtol=1e-12)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12)


def test_state_is_checked(tmp_path):
    m = symnet.compile(_spec(momentum=0.5), tmp_path)
    X, T = _data()
    p = m.init_params()
    with pytest.raises(ValueError, match="state: expected a dict with keys"):
        m.train_step(p, X, T, state={})
    bad = m.init_state()
    bad["W1.v"] = bad["W1.v"].astype(np.float32)
    with pytest.raises(ValueError, match=r"state\['W1.v'\]"):
        m.train_step(p, X, T, state=bad)
    plain = symnet.compile({**_spec(), "name": "plain"}, tmp_path)
    assert plain.STATE_SHAPES == {} and plain.init_state() == {}


def _nesterov(lr, mu=0.8):
    def rule(name, p, g, mem, step, lr_k):
        v = mem[name] = mu * mem.get(name, 0.0) + g
        return p - lr_k * (g + mu * v)
    return rule


def _adam(b1=0.9, b2=0.999, eps=1e-8):
    def rule(name, p, g, mem, step, lr_k):
        mo, ve = mem.get(name, (0.0, 0.0))
        mo, ve = b1 * mo + (1 - b1) * g, b2 * ve + (1 - b2) * g * g
        mem[name] = (mo, ve)
        return p - lr_k * (mo / (1 - b1 ** step)) / (np.sqrt(ve / (1 - b2 ** step)) + eps)
    return rule


@pytest.mark.parametrize("mode", ["scalar", "loop"])
@pytest.mark.parametrize("training, rule", [
    ({"momentum": 0.8, "nesterov": True}, _nesterov(0.05)),
    ({"optimizer": "adam"}, _adam()),
], ids=["nesterov", "adam"])
def test_apply_gradients_takes_the_step_from_given_gradients(mode, training, rule, tmp_path):
    """apply_gradients (the step symnet.dask.fit takes after summing the workers' gradients):
    the textbook rule with the learning rate of the epoch it is told, decayed by the spec."""
    decay = {"kind": "step", "every": 2, "factor": 0.5}
    m = symnet.compile({**_spec(mode, lr_decay=decay, **training), "name": f"apply_{mode}"},
                       tmp_path)
    assert [m.learning_rate(k) for k in range(5)] == [0.05, 0.05, 0.025, 0.025, 0.0125]
    assert m.learning_rate(3, lr=1.0) == 0.5
    X, T = _data()
    p, want, state, mem = m.init_params(), m.init_params(), m.init_state(), {}
    scaled = {}  # gradients that are not those of (X, T): any dict of the right shapes
    for k in range(5):
        _, g = m.grad(p, X, T)
        scaled = {n: (1.0 + 0.1 * k) * v for n, v in g.items()}
        m.apply_gradients(p, scaled, state=state, epoch=k)
        for name in want:
            want[name] = rule(name, want[name], scaled[name], mem, k + 1,
                              0.05 * 0.5 ** (k // 2))
        for name in p:
            np.testing.assert_allclose(p[name], want[name], rtol=1e-12, atol=1e-15)
    assert m.REDUCTION == "mean" and m.WEIGHT_DECAY == 0.0
    # train_step is grad, then apply_gradients: the same numbers, bit for bit
    a, b, sa, sb = m.init_params(), m.init_params(), m.init_state(), m.init_state()
    for _ in range(3):
        m.train_step(a, X, T, state=sa)
        m.apply_gradients(b, m.grad(b, X, T)[1], state=sb)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    with pytest.raises(ValueError, match="grads: missing 'b2'"):
        m.apply_gradients(p, {n: v for n, v in scaled.items() if n != "b2"})
    with pytest.raises(ValueError, match=r"grads\['W1'\]: expected shape \(4, 3\)"):
        m.apply_gradients(p, {**scaled, "W1": np.zeros((3, 4))})
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="epoch: expected a non-negative integer"):
            m.apply_gradients(p, scaled, epoch=bad)
        with pytest.raises(ValueError, match="epoch: expected a non-negative integer"):
            m.learning_rate(bad)
