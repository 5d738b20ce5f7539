"""The loop form (per-layer np.dot) against the unrolled form and an independent reference."""

import numpy as np
import pytest
from _reference import loss as ref_loss
from _reference import random_data, random_params, random_spec

import symnet
from symnet.compiler import AUTO_SCALAR_MAX_PARAMS


@pytest.mark.parametrize("index", [0, 1, 2, 5, 8, 10, 13, 17])
def test_loop_and_scalar_forms_agree(index, tmp_path):
    rng = np.random.default_rng(300 + index)
    spec = random_spec(rng, index)
    scalar = symnet.compile(spec, tmp_path / "s", mode="scalar")
    loop = symnet.compile(spec, tmp_path / "l", mode="loop")
    assert (scalar.MODE, loop.MODE) == ("scalar", "loop")
    params = random_params(rng, scalar.PARAM_SHAPES)
    X, T = random_data(rng, spec, batch=5)
    np.testing.assert_allclose(loop.forward(params, X), scalar.forward(params, X), rtol=1e-12,
                               atol=1e-15)
    assert loop.loss(params, X, T) == pytest.approx(scalar.loss(params, X, T), rel=1e-12)
    E1, g1 = scalar.grad(params, X, T)
    E2, g2 = loop.grad(params, X, T)
    assert E2 == pytest.approx(E1, rel=1e-12)
    for name in g1:
        np.testing.assert_allclose(g2[name], g1[name], rtol=1e-10, atol=1e-14)


def _wide(dtype="float64", **codegen):
    return {
        "name": "wide",
        "network": {"inputs": 20, "layers": [
            {"units": 32, "activation": "tanh"},
            {"units": 24, "activation": {"name": "leaky_relu", "alpha": 0.1}, "bias": "shared"},
            {"units": 3, "activation": "sigmoid"}]},
        "loss": {"kind": "bce", "reduction": "mean"},
        "training": {"learning_rate": 0.2},
        "codegen": {"dtype": dtype, **codegen},
    }


def test_auto_mode_picks_the_loop_form_for_wide_networks(tmp_path):
    spec = symnet.spec_from_dict(_wide())
    assert spec.n_params() > AUTO_SCALAR_MAX_PARAMS
    assert symnet.build(spec).mode == "loop"
    small = symnet.spec_from_dict({"name": "s", "network": {"inputs": 2, "layers": [
        {"units": 2, "activation": "sigmoid"}]}, "loss": {"kind": "sse"}})
    assert symnet.build(small).mode == "scalar"


def test_loop_form_gradient_matches_finite_differences(tmp_path):
    spec = _wide()
    m = symnet.compile(spec, tmp_path)
    assert m.MODE == "loop"
    rng = np.random.default_rng(7)
    params = random_params(rng, m.PARAM_SHAPES)
    X, T = rng.normal(size=(9, 20)), rng.uniform(size=(9, 3))
    E, g = m.grad(params, X, T)
    # the reference computes bce from log(y), losing digits where y is near 0 or 1
    assert E == pytest.approx(ref_loss(spec, params, X, T), rel=1e-9)
    # finite differences of the module's own (stable) loss, which was just checked against
    # the reference: the reference's log(1 - y) is too noisy for differencing
    h = 1e-6
    for name in params:  # a few coordinates of every array
        flat = params[name].reshape(-1)
        for k in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            old = flat[k]
            flat[k] = old + h
            up = m.loss(params, X, T)
            flat[k] = old - h
            down = m.loss(params, X, T)
            flat[k] = old
            fd = (up - down) / (2 * h)
            assert g[name].reshape(-1)[k] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_loop_form_training_and_float32(tmp_path):
    m = symnet.compile(_wide(), tmp_path / "f64")
    m32 = symnet.compile(_wide("float32"), tmp_path / "f32")
    rng = np.random.default_rng(8)
    X, T = rng.normal(size=(16, 20)), (rng.uniform(size=(16, 3)) > 0.5).astype(float)
    a, b = m.init_params(), m.init_params()
    losses = m.fit(a, X, T, 10)
    stepped = [m.train_step(b, X, T) for _ in range(10)]
    np.testing.assert_allclose(losses, stepped, rtol=1e-13)
    assert losses[-1] < losses[0]
    p32 = m32.init_params()
    E32, g32 = m32.grad(p32, X, T)
    E64, g64 = m.grad(m.init_params(), X, T)
    assert all(v.dtype == np.float32 for v in g32.values())
    assert E32 == pytest.approx(E64, rel=1e-5)
    for name in g64:
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-3, atol=1e-5)


LIBRARY_SPECS = [
    # softmax + cross_entropy (fused, log-sum-exp), weight decay, mean
    {"layers": [{"units": 6, "activation": "elu"},
                {"units": 4, "activation": "softmax", "bias": "shared"}],
     "loss": {"kind": "cross_entropy", "weight_decay": 0.03}, "soft_targets": True},
    # custom hidden activation and custom loss, sum
    {"layers": [{"units": 5, "activation": {"expr": "x/(1 + abs(x))"}},
                {"units": 3, "activation": "gelu_tanh", "bias": "none"},
                {"units": 2, "activation": "linear"}],
     "loss": {"kind": "custom", "expr": "log(1 + (y - t)**2)", "reduction": "sum",
              "weight_decay": 0.1}},
    # nll after sigmoid, softplus/silu hidden layers
    {"layers": [{"units": 4, "activation": "softplus"}, {"units": 4, "activation": "silu"},
                {"units": 3, "activation": "gelu"},  # math.erf: the module imports math
                {"units": 2, "activation": "sigmoid"}],
     "loss": {"kind": "nll"}, "soft_targets": True},
    # mse after softmax (differentiated through the softmax Jacobian), selu, mae elsewhere
    {"layers": [{"units": 3, "activation": "selu"},
                {"units": 3, "activation": "softmax"}],
     "loss": {"kind": "mse", "reduction": "sum"}},
]


@pytest.mark.parametrize("index", range(len(LIBRARY_SPECS)))
def test_loop_form_covers_the_library(index, tmp_path):
    case = LIBRARY_SPECS[index]
    spec = {"name": f"lib{index}", "network": {"inputs": 3, "layers": case["layers"]},
            "loss": case["loss"]}
    scalar = symnet.compile(spec, tmp_path / "s", mode="scalar")
    loop = symnet.compile(spec, tmp_path / "l", mode="loop")
    rng = np.random.default_rng(400 + index)
    params = random_params(rng, scalar.PARAM_SHAPES)
    X = rng.normal(size=(7, 3))
    n_out = case["layers"][-1]["units"]
    T = rng.dirichlet(np.ones(n_out), size=7) if case.get("soft_targets") \
        else rng.normal(size=(7, n_out))
    np.testing.assert_allclose(loop.forward(params, X), scalar.forward(params, X), rtol=1e-12,
                               atol=1e-15)
    E1, g1 = scalar.grad(params, X, T)
    E2, g2 = loop.grad(params, X, T)
    assert E2 == pytest.approx(E1, rel=1e-12)
    assert loop.loss(params, X, T) == pytest.approx(E1, rel=1e-12)
    for name in g1:
        np.testing.assert_allclose(g2[name], g1[name], rtol=1e-10, atol=1e-13)


def test_inspect_shows_the_loop_form(tmp_path, capsys):
    from symnet.cli import main

    path = tmp_path / "wide.toml"
    path.write_text('name = "wide"\n[network]\ninputs = 40\n[[network.layers]]\nunits = 10\n'
                    'activation = "tanh"\n[[network.layers]]\nunits = 3\n'
                    'activation = "softmax"\n[loss]\nkind = "cross_entropy"\n')
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "loop form (443 parameters)" in out
    assert "dE_dnet_o3" in out and "exp_sum" in out


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loop_form_scales_and_decays_once_on_large_batches(reduction, tmp_path):
    """The loop form folds the reduction into the output layer's delta and adds the weight
    decay's gradient once per batch: checked against the unrolled form on batches of several
    sizes, and over a few training steps."""
    spec = {
        "name": f"scaled_{reduction}",
        "network": {"inputs": 3, "layers": [
            {"units": 5, "activation": "tanh"},
            {"units": 4, "activation": "relu", "bias": "shared"},
            {"units": 2, "activation": "sigmoid"}]},
        "loss": {"kind": "bce", "reduction": reduction, "weight_decay": 0.01},
        "training": {"learning_rate": 0.1},
    }
    loop = symnet.compile(spec, tmp_path / "l", mode="loop")
    scalar = symnet.compile(spec, tmp_path / "s", mode="scalar")
    rng = np.random.default_rng(11)
    params = random_params(rng, scalar.PARAM_SHAPES)
    for batch in (1, 127, 301):
        X = rng.normal(size=(batch, 3))
        T = (rng.uniform(size=(batch, 2)) > 0.5).astype(float)
        E1, g1 = scalar.grad(params, X, T)
        E2, g2 = loop.grad(params, X, T)
        assert E2 == pytest.approx(E1, rel=1e-12)
        for name in g1:
            np.testing.assert_allclose(g2[name], g1[name], rtol=1e-10, atol=1e-13)
    p1 = {k: v.copy() for k, v in params.items()}
    p2 = {k: v.copy() for k, v in params.items()}
    np.testing.assert_allclose(loop.fit(p2, X, T, 3), scalar.fit(p1, X, T, 3), rtol=1e-10)
    for name in p1:
        np.testing.assert_allclose(p2[name], p1[name], rtol=1e-10, atol=1e-12)


def test_deep_store_networks_use_the_table_driven_kernel(tmp_path):
    """A deep network's store schedule runs through the kernel file's table (one branch per
    kind of layer, whatever the depth: 25 layers here; straight-line code per layer once hit
    a RecursionError in Numba at 64); its gradient is checked against finite differences of
    the independent NumPy reference."""
    from _reference import finite_difference_grad

    depth = 25
    spec = {
        "name": "deep_store",
        "network": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"}] * depth
                    + [{"units": 1, "activation": "sigmoid"}]},
        "loss": {"kind": "bce", "reduction": "mean"},
        "init": {"scheme": "xavier_normal"},
        "codegen": {"mode": "loop"},
    }
    m = symnet.compile(spec, tmp_path)
    assert m.STRATEGY == "store" and m._PLAN.shape == (2 * (depth + 1) - 1, 4)
    rng = np.random.default_rng(5)
    params = m.init_params()
    X, T = rng.normal(size=(6, 2)), (rng.uniform(size=(6, 1)) > 0.5).astype(float)
    E, g = m.grad(params, X, T)
    assert E == pytest.approx(ref_loss(spec, params, X, T), rel=1e-10)
    fd = finite_difference_grad(spec, params, X, T)
    for name in params:
        np.testing.assert_allclose(g[name], fd[name], rtol=1e-5, atol=1e-9)
