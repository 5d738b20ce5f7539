"""fit with validation data: the validation loss and accuracy per epoch from the same compiled
loop, early stopping with patience and min_delta, the best epoch's parameters restored; the
same training steps as fit without validation, in both forms."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import forward as ref_forward
from _reference import loss as ref_loss

import symnet


def _spec(name, mode, out_units=3, out_act="softmax", loss="cross_entropy", lr=0.05):
    return {
        "name": name,
        "network": {"inputs": 2, "layers": [{"units": 4, "activation": "tanh"},
                                            {"units": out_units, "activation": out_act}]},
        "loss": {"kind": loss},
        "training": {"optimizer": "adam", "learning_rate": lr},
        "codegen": {"mode": mode},
    }


FORMS = ["scalar", "loop"]


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    nets = {mode: symnet.compile(_spec(f"val_{mode}", mode), out) for mode in FORMS}
    nets["sigmoid"] = symnet.compile(_spec("val_sigmoid", "scalar", 1, "sigmoid", "bce"), out)
    for mode in FORMS:
        nets[f"linear_{mode}"] = symnet.compile(_spec(f"val_linear_{mode}", mode, 2, "linear",
                                                      "mse"), out)
    return nets


def _classes(rng, n):
    X = rng.normal(size=(n, 2))
    label = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return X, np.eye(3)[label]


RNG = np.random.default_rng(5)
X, T = _classes(RNG, 48)
XV, TV = _classes(RNG, 20)


@pytest.mark.parametrize("mode", FORMS)
@pytest.mark.parametrize("batch_size", [None, 10])
def test_the_same_steps_as_fit_without_validation(nets, mode, batch_size):
    m = nets[mode]
    p, s = m.init_params(), m.init_state()
    plain = m.fit(p, X, T, 12, batch_size=batch_size, seed=4, state=s)
    q, r = m.init_params(), m.init_state()
    h = m.fit(q, X, T, 12, batch_size=batch_size, seed=4, state=r, validation=(XV, TV),
              restore_best=False)
    np.testing.assert_array_equal(h["loss"], plain)
    for k in p:
        np.testing.assert_array_equal(q[k], p[k])
    for k in s:
        np.testing.assert_array_equal(r[k], s[k])
    assert h["epochs"] == 12 and h["stopped_epoch"] is None
    assert h["val_loss"].shape == h["val_accuracy"].shape == (12,)
    # the last epoch's figures, from an independent reference
    spec = _spec(f"val_{mode}", mode)
    assert h["val_loss"][-1] == pytest.approx(ref_loss(spec, q, XV, TV), rel=1e-10)
    right = np.argmax(ref_forward(spec, q, XV), axis=1) == np.argmax(TV, axis=1)
    assert h["val_accuracy"][-1] == pytest.approx(right.mean(), abs=1e-12)
    assert h["best_epoch"] == int(np.argmin(h["val_loss"]))


@pytest.mark.parametrize("mode", FORMS)
def test_the_validation_loss_of_each_epoch(nets, mode):
    """val_loss[k] is the loss on the validation data after epoch k: the same as training
    one epoch at a time (full batch) and evaluating after each."""
    m = nets[mode]
    q = m.init_params()
    h = m.fit(q, X, T, 6, validation=(XV, TV), restore_best=False)
    p, s = m.init_params(), m.init_state()
    want = []
    for _ in range(6):
        m.fit(p, X, T, 1, state=s)
        want.append(m.loss(p, XV, TV))
    np.testing.assert_allclose(h["val_loss"], want, rtol=1e-12)


@pytest.mark.parametrize("mode", FORMS)
def test_early_stopping_restores_the_best_epoch(nets, mode):
    m = nets[mode]
    Xn, Tn = X[:12], T[:12]  # few samples, many epochs: the validation loss turns up
    p = m.init_params()
    h = m.fit(p, Xn, Tn, 500, batch_size=4, validation=(XV, TV), patience=5)
    best, stop = h["best_epoch"], h["stopped_epoch"]
    assert stop is not None and stop == best + 5 and h["epochs"] == stop + 1 < 500
    assert len(h["loss"]) == len(h["val_loss"]) == h["epochs"]
    assert np.all(h["val_loss"][best + 1:] >= h["val_loss"][best])
    assert m.loss(p, XV, TV) == pytest.approx(h["val_loss"][best], rel=1e-12)  # restored

    q = m.init_params()
    kept = m.fit(q, Xn, Tn, 500, batch_size=4, validation=(XV, TV), patience=5,
                 restore_best=False)
    assert kept["epochs"] == h["epochs"]
    assert m.loss(q, XV, TV) == pytest.approx(kept["val_loss"][-1], rel=1e-12)


@pytest.mark.parametrize("mode", FORMS)
def test_min_delta_counts_only_larger_improvements(nets, mode):
    m = nets[mode]
    h = m.fit(m.init_params(), X, T, 400, validation=(XV, TV), patience=3, min_delta=0.05)
    v, best = h["val_loss"], h["best_epoch"]
    assert h["stopped_epoch"] == best + 3
    # no epoch after the best improved on it by more than min_delta
    assert np.all(v[best + 1:] > v[best] - 0.05)
    # and the best was more than min_delta below every earlier improvement's reference
    assert v[best] < v[0] - 0.05 or best == 0


def test_accuracy_of_a_sigmoid_output_and_none_for_a_linear_one(nets):
    m = nets["sigmoid"]
    Xb = RNG.normal(size=(30, 2))
    Tb = (Xb[:, :1] > 0).astype(float)
    p = m.init_params()
    h = m.fit(p, Xb, Tb, 5, validation=(Xb, Tb), restore_best=False)
    y = ref_forward(_spec("val_sigmoid", "scalar", 1, "sigmoid", "bce"), p, Xb)
    assert h["val_accuracy"][-1] == pytest.approx(((y >= 0.5) == (Tb >= 0.5)).mean())
    assert m.METRIC == "accuracy"
    lin = nets["linear_loop"]
    h = lin.fit(lin.init_params(), X, T[:, :2], 3, validation=(XV, TV[:, :2]))
    assert lin.METRIC is None and "val_accuracy" not in h and h["val_loss"].shape == (3,)


@pytest.mark.parametrize("call, message", [
    (lambda m: m.fit(m.init_params(), X, T, 2, patience=3), "patience: early stopping needs "
                                                            "validation data"),
    (lambda m: m.fit(m.init_params(), X, T, 2, restore_best=False), "restore_best: early "
                                                                    "stopping needs"),
    (lambda m: m.fit(m.init_params(), X, T, 2, validation=XV), "validation: expected a pair"),
    (lambda m: m.fit(m.init_params(), X, T, 2, validation=(XV, TV[:3])),
     "validation: T: expected shape (20, 3)"),
    (lambda m: m.fit(m.init_params(), X, T, 2, validation=(XV, TV), patience=0),
     "patience: expected None or a positive integer"),
    (lambda m: m.fit(m.init_params(), X, T, 2, validation=(XV, TV), min_delta=-1.0),
     "min_delta: expected a non-negative number"),
    (lambda m: m.fit(m.init_params(), X, T, 2, validation=(XV, TV), trace=True),
     "does not take validation data"),
])
def test_bad_arguments_are_refused(nets, call, message):
    with pytest.raises(ValueError) as info:
        call(nets["loop"])
    assert message in str(info.value)


@pytest.mark.parametrize("mode", FORMS)
@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_diverging_run_raises_as_without_validation(nets, mode, batch_size):
    m = nets[f"linear_{mode}"]
    args = (X, T[:, :2] * 1e10, 50)
    kw = {"lr": 1e200, "batch_size": batch_size, "seed": 1}
    with pytest.raises(FloatingPointError) as want:
        m.fit(m.init_params(), *args, **kw)
    with pytest.raises(FloatingPointError) as got:
        m.fit(m.init_params(), *args, **kw, validation=(XV, TV[:, :2]))
    assert str(got.value) == str(want.value) and got.value.step == want.value.step >= 1
    np.testing.assert_array_equal(got.value.losses, want.value.losses)
