"""train_step and fit against grad; store against recompute; float32 against float64."""

import numpy as np
import pytest
from _reference import random_data, random_params, random_spec

import symnet


def _spec(update=("weights", "biases"), strategy="store", dtype="float64", reduction="mean"):
    return {
        "name": "net",
        "network": {"inputs": 3, "layers": [
            {"units": 4, "activation": "tanh"},
            {"units": 2, "activation": "sigmoid", "bias": "shared"},
        ]},
        "loss": {"kind": "bce", "reduction": reduction},
        "training": {"learning_rate": 0.3, "update": list(update)},
        "init": {"scheme": "uniform_fan_in", "seed": 3},
        "codegen": {"strategy": strategy, "dtype": dtype},
    }


def _data(rng, n=6):
    return rng.normal(size=(n, 3)), rng.uniform(size=(n, 2))


@pytest.mark.parametrize("update", [("weights",), ("biases",), ("weights", "biases"), ()])
def test_train_step_is_sgd_on_updated_names(update, tmp_path):
    m = symnet.compile(_spec(update), tmp_path)
    rng = np.random.default_rng(1)
    X, T = _data(rng)
    p = random_params(rng, m.PARAM_SHAPES)
    before = {k: v.copy() for k, v in p.items()}
    E, g = m.grad(p, X, T)
    assert m.train_step(p, X, T, lr=0.25) == E
    for name in p:
        kind = "weights" if name.startswith("W") else "biases"
        want = before[name] - 0.25 * g[name] if kind in update else before[name]
        np.testing.assert_allclose(p[name], want, rtol=0, atol=1e-15)


def test_train_step_default_learning_rate(run_folder):
    m = symnet.compile(_spec(), run_folder("training"))
    rng = np.random.default_rng(2)
    X, T = _data(rng)
    p = m.init_params()
    w = p["W1"].copy()
    _, g = m.grad(p, X, T)
    m.train_step(p, X, T)
    np.testing.assert_allclose(p["W1"], w - 0.3 * g["W1"], atol=1e-15)


def test_fit_equals_repeated_train_step(run_folder):
    m = symnet.compile(_spec(), run_folder("training"))
    rng = np.random.default_rng(3)
    X, T = _data(rng)
    a, b = m.init_params(), m.init_params()
    losses = m.fit(a, X, T, 25, lr=0.2)
    stepped = [m.train_step(b, X, T, lr=0.2) for _ in range(25)]
    np.testing.assert_allclose(losses, stepped, rtol=1e-13)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-13, atol=1e-15)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("index", [1, 3, 7])
def test_store_and_recompute_agree(index, tmp_path):
    rng = np.random.default_rng(200 + index)
    spec = random_spec(rng, index)
    store = symnet.compile(spec, tmp_path / "store", strategy="store")
    recompute = symnet.compile(spec, tmp_path / "recompute", strategy="recompute")
    assert recompute.STRATEGY == "recompute"
    params = random_params(rng, store.PARAM_SHAPES)
    X, T = random_data(rng, spec)
    E1, g1 = store.grad(params, X, T)
    E2, g2 = recompute.grad(params, X, T)
    assert pytest.approx(E2, rel=1e-12) == E1
    for name in g1:
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(store.forward(params, X), recompute.forward(params, X), rtol=1e-12)


def test_float32_module_computes_in_float32(tmp_path):
    m64 = symnet.compile(_spec(), tmp_path / "f64")
    m32 = symnet.compile(_spec(dtype="float32"), tmp_path / "f32")
    assert m32.DTYPE is np.float32
    rng = np.random.default_rng(4)
    X, T = _data(rng)
    p64 = m64.init_params()
    p32 = m32.init_params()
    assert all(v.dtype == np.float32 for v in p32.values())
    E32, g32 = m32.grad(p32, X, T)
    E64, g64 = m64.grad(p64, X, T)
    assert all(v.dtype == np.float32 for v in g32.values())
    assert m32.forward(p32, X).dtype == np.float32
    assert pytest.approx(E64, rel=1e-5) == E32
    for name in g64:
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-4, atol=1e-6)
    losses32 = m32.fit(p32, X, T, 5)
    assert losses32.dtype == np.float32
    np.testing.assert_allclose(losses32, m64.fit(p64, X, T, 5), rtol=1e-5)
    for name in p64:
        np.testing.assert_allclose(p32[name], p64[name], rtol=1e-4, atol=1e-6)


def test_init_schemes(tmp_path):
    spec = _spec()
    spec["init"] = {"scheme": "normal_0.01", "seed": 7}
    m = symnet.compile(spec, tmp_path / "a")
    p = m.init_params()
    assert set(p) == {"W1", "b1", "W2", "b2"}
    assert p["b1"].shape == (4,) and p["b2"].shape == ()
    assert np.all(p["b1"] == 0) and p["b2"] == 0
    assert 0.001 < np.std(np.concatenate([p["W1"].ravel(), p["W2"].ravel()])) < 0.03
    np.testing.assert_array_equal(m.init_params()["W1"], p["W1"])  # seeded by the spec
    assert not np.array_equal(m.init_params(seed=8)["W1"], p["W1"])

    spec["init"] = {"scheme": "uniform_fan_in", "seed": 7}
    m = symnet.compile(spec, tmp_path / "b")
    p = m.init_params()
    assert np.all(np.abs(p["W1"]) <= 1 / np.sqrt(3)) and np.all(np.abs(p["W2"]) <= 1 / 2)
    assert np.abs(p["W1"]).max() > 0.3  # spread over the range, not near zero


def test_wrong_arguments_raise_value_error(run_folder):
    m = symnet.compile(_spec(), run_folder("training"))
    p = m.init_params()
    X, T = _data(np.random.default_rng(5))
    with pytest.raises(ValueError, match="X: expected shape"):
        m.forward(p, X[:, :2])
    with pytest.raises(ValueError, match="T: expected shape"):
        m.loss(p, X, T[:3])
    with pytest.raises(ValueError, match="missing 'b1'"):
        m.grad({"W1": p["W1"]}, X, T)
    with pytest.raises(ValueError, match=r"params\['W1'\]: expected shape"):
        m.grad({**p, "W1": p["W1"].T}, X, T)
    with pytest.raises(ValueError, match="float64 array"):
        m.train_step({**p, "W1": p["W1"].astype(np.float32)}, X, T)
    with pytest.raises(ValueError, match="C-contiguous, writeable"):
        ro = p["W1"].copy()
        ro.setflags(write=False)
        m.train_step({**p, "W1": ro}, X, T)
    with pytest.raises(ValueError, match="epochs"):
        m.fit(p, X, T, -1)


@pytest.mark.parametrize("lr", [-0.1, 0.0, float("nan"), "0.1"])
def test_bad_learning_rate_is_refused(lr, run_folder):
    m = symnet.compile(_spec(), run_folder("training"))
    p = m.init_params()
    X, T = _data(np.random.default_rng(6))
    with pytest.raises(ValueError, match="lr: expected a positive finite number"):
        m.train_step(p, X, T, lr=lr)


@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_minibatch_fit_visits_every_sample_once_an_epoch(mode, tmp_path):
    # With nothing updated the parameters stay put, so an epoch's mean of minibatch losses
    # (reduction sum) is the full-batch loss * batch_size / n whatever the order.
    spec = _spec(update=(), reduction="sum")
    m = symnet.compile(spec, tmp_path, mode=mode)
    rng = np.random.default_rng(9)
    X, T = _data(rng, n=12)
    p = m.init_params()
    full = m.loss(p, X, T)
    losses = m.fit(p, X, T, 3, batch_size=4, seed=5)
    np.testing.assert_allclose(losses, [full * 4 / 12] * 3, rtol=1e-12)
    # a batch that does not divide n: minibatches of 5, 5 and 2, whose sums still add up to
    # the full batch's, so the epoch's mean of them is the full-batch loss / 3
    losses = m.fit(p, X, T, 2, batch_size=5)
    np.testing.assert_allclose(losses, [full / 3] * 2, rtol=1e-12)


@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_uneven_last_minibatch_is_a_step_on_its_own_samples(mode, tmp_path):
    """n = 12 in minibatches of 5: steps on 5, 5 and then 2 samples (the mean over those 2,
    not their sum over 5), in the order of the seeded shuffle, and the epoch's figure the
    mean of the three minibatch losses: fit equals train_step on exactly those minibatches.
    The order is NumPy's legacy stream for the seed (Numba's np.random follows it), drawn
    from a local RandomState: one permutation an epoch."""
    m = symnet.compile(_spec(), tmp_path, mode=mode)
    rng = np.random.default_rng(12)
    X, T = _data(rng, n=12)
    p = m.init_params()
    losses = m.fit(p, X, T, 3, lr=0.4, batch_size=5, seed=4)
    q = m.init_params()
    order = np.random.RandomState(4)
    for epoch in range(3):
        take = np.split(order.permutation(12), [5, 10])
        assert [len(t) for t in take] == [5, 5, 2]
        stepped = [m.train_step(q, X[t], T[t], lr=0.4) for t in take]
        assert losses[epoch] == pytest.approx(np.mean(stepped), rel=1e-12)
    for name in p:
        np.testing.assert_allclose(p[name], q[name], rtol=1e-12, atol=1e-15)


def test_minibatch_fit_is_seeded_and_trains(run_folder):
    m = symnet.compile(_spec(), run_folder("training"))
    rng = np.random.default_rng(10)
    X = rng.normal(size=(64, 3))
    T = np.stack([(X[:, 0] > 0), (X[:, 1] + X[:, 2] > 0)], axis=1).astype(float)
    runs = []
    for seed in (1, 1, 2):
        p = m.init_params()
        runs.append((m.fit(p, X, T, 30, lr=0.5, batch_size=8, seed=seed), p))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1]["W1"], runs[1][1]["W1"])
    assert not np.array_equal(runs[0][0], runs[2][0])
    losses = runs[0][0]
    assert losses[-1] < 0.5 * losses[0]
    # batch_size >= n is full batch: one step an epoch, the loss before each step
    a, b = m.init_params(), m.init_params()
    np.testing.assert_array_equal(m.fit(a, X, T, 3, batch_size=64), m.fit(b, X, T, 3))


def test_fit_argument_checks(run_folder):
    m = symnet.compile(_spec(), run_folder("training"))
    p = m.init_params()
    X, T = _data(np.random.default_rng(11))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            m.fit(p, X, T, 1, batch_size=bad)
    with pytest.raises(ValueError, match="seed"):
        m.fit(p, X, T, 1, batch_size=2, seed=-1)
