"""The generated module's predict, save and load: predictions by the kind of output, a saved
file read back exactly (parameters and optimizer state, both forms), and every file that is
not this module's refused with a one-line ValueError that names it."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import forward as ref_forward

import symnet


def _spec(name, out_units, out_act, loss, mode="scalar", optimizer="adam"):
    return {
        "name": name,
        "network": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"},
                                            {"units": out_units, "activation": out_act}]},
        "loss": {"kind": loss},
        "training": {"optimizer": optimizer, "learning_rate": 0.1},
        "codegen": {"mode": mode},
    }


SPECS = {
    "softmax": _spec("persist_softmax", 3, "softmax", "cross_entropy"),
    "softmax_loop": _spec("persist_softmax_loop", 3, "softmax", "cross_entropy", mode="loop"),
    "sigmoid": _spec("persist_sigmoid", 1, "sigmoid", "bce", optimizer="sgd"),
    "linear": _spec("persist_linear", 2, "linear", "mse", optimizer="sgd"),
}


@pytest.fixture(scope="module")
def modules(run_folder):
    out = run_folder("persist")
    return {k: symnet.compile(spec, out) for k, spec in SPECS.items()}


def _data(m, n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m.N_INPUTS)) * 2
    T = np.eye(m.N_OUTPUTS)[rng.integers(0, m.N_OUTPUTS, n)] if m.N_OUTPUTS > 1 \
        else rng.integers(0, 2, (n, 1)).astype(float)
    return X, T


@pytest.mark.parametrize("kind", ["softmax", "softmax_loop"])
def test_predict_softmax_is_the_class_of_the_largest_output(modules, kind):
    m = modules[kind]
    p = m.init_params(seed=3)
    X, _ = _data(m)
    got = m.predict(p, X)
    want = np.argmax(ref_forward(SPECS[kind], p, X), axis=1)
    assert got.dtype == np.int64 and got.shape == (12,)
    np.testing.assert_array_equal(got, want)
    assert len(set(got.tolist())) > 1  # the data reaches more than one class


def test_predict_one_sigmoid_output_is_zero_or_one(modules):
    m = modules["sigmoid"]
    p = m.init_params(seed=1)
    X, _ = _data(m, n=40)
    got = m.predict(p, X)
    y = ref_forward(SPECS["sigmoid"], p, X)[:, 0]
    assert got.dtype == np.int64 and got.shape == (40,)
    np.testing.assert_array_equal(got, (y >= 0.5).astype(int))
    assert 0 < got.sum() < 40


def test_predict_other_outputs_are_the_outputs(modules):
    m = modules["linear"]
    p = m.init_params()
    X, _ = _data(m)
    np.testing.assert_allclose(m.predict(p, X), ref_forward(SPECS["linear"], p, X),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["softmax", "softmax_loop"])
def test_a_saved_run_continues_exactly(modules, kind, tmp_path):
    """Train, save params and Adam's state, load them back: training on from the loaded copy
    gives the same numbers as training on without saving."""
    m = modules[kind]
    X, T = _data(m)
    p, s = m.init_params(), m.init_state()
    m.fit(p, X, T, 3, state=s)
    m.save(tmp_path / "run.npz", p, s)
    q, r = m.load(tmp_path / "run.npz", state=True)
    assert set(q) == set(p) and set(r) == set(s) and s  # Adam has a state
    for k in p:
        np.testing.assert_array_equal(q[k], p[k])
        assert q[k].dtype == m.DTYPE
    for k in s:
        np.testing.assert_array_equal(r[k], s[k])
    want = m.fit(p, X, T, 4, state=s)
    got = m.fit(q, X, T, 4, state=r)
    np.testing.assert_array_equal(got, want)
    only = m.load(tmp_path / "run.npz")  # the parameters alone
    np.testing.assert_array_equal(only["W1"], m.load(tmp_path / "run.npz", state=True)[0]["W1"])


def _refusal(m, path, *, state=False) -> str:
    with pytest.raises(ValueError) as info:
        m.load(path, state=state)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_files_that_are_not_this_modules_are_refused(modules, tmp_path):
    m, other = modules["linear"], modules["sigmoid"]
    p = m.init_params()
    good = tmp_path / "good.npz"
    m.save(good, p)
    arrays = dict(np.load(good))

    other.save(tmp_path / "other.npz", other.init_params())
    assert "saved for another spec" in _refusal(m, tmp_path / "other.npz")

    def variant(name, **change):
        path = tmp_path / f"{name}.npz"
        np.savez(path, **{k: v for k, v in {**arrays, **change}.items() if v is not None})
        return path

    assert "missing W2" in _refusal(m, variant("missing", W2=None))
    assert "unexpected arrays W9" in _refusal(m, variant("extra", W9=np.zeros(2)))
    assert "W1: expected shape (3, 2), got (2, 3)" in _refusal(
        m, variant("shape", W1=np.zeros((2, 3))))
    assert "W1: expected real numbers" in _refusal(
        m, variant("text", W1=np.full((3, 2), "x")))
    assert "without unpickling" in _refusal(
        m, variant("pickled", W1=np.array([{"a": 1}], dtype=object)))
    np.savez(tmp_path / "plain.npz", **{k: v for k, v in arrays.items() if not
                                         k.startswith("__")})
    assert "not a file written by save()" in _refusal(m, tmp_path / "plain.npz")
    assert "not a readable .npz file" in _refusal(m, tmp_path / "absent.npz")
    assert "no optimizer state" in _refusal(modules["softmax"], _saved(modules["softmax"],
                                                                        tmp_path), state=True)


def _saved(m, tmp_path):
    path = tmp_path / "params_only.npz"
    m.save(path, m.init_params())
    return path


def test_save_checks_what_it_writes(modules, tmp_path):
    m = modules["softmax"]
    p = m.init_params()
    with pytest.raises(ValueError, match=r"params: expected a dict with keys"):
        m.save(tmp_path / "x.npz", {k: v for k, v in p.items() if k != "W2"})
    with pytest.raises(ValueError, match=r"params\['W1'\]: expected a real array of shape"):
        m.save(tmp_path / "x.npz", {**p, "W1": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"state: expected a dict with keys"):
        m.save(tmp_path / "x.npz", p, {"m1": 0})
    assert not (tmp_path / "x.npz").exists()
    m.save(tmp_path / "lists.npz", {k: v.tolist() for k, v in p.items()})  # any real arrays
    np.testing.assert_array_equal(m.load(tmp_path / "lists.npz")["W1"], p["W1"])
