"""grad against central finite differences of an independent NumPy loss, on random specs."""

import numpy as np
import pytest
from _reference import (
    finite_difference_grad,
    kinds_covered,
    random_data,
    random_params,
    random_spec,
)
from _reference import forward as ref_forward
from _reference import loss as ref_loss

import symnet

N_SPECS = 30


@pytest.mark.parametrize("index", range(N_SPECS))
def test_grad_matches_finite_differences(index, tmp_path):
    rng = np.random.default_rng(1000 + index)
    spec = random_spec(rng, index)
    m = symnet.compile(spec, tmp_path)
    params = random_params(rng, m.PARAM_SHAPES)
    X, T = random_data(rng, spec)

    E, grads = m.grad(params, X, T)
    assert pytest.approx(ref_loss(spec, params, X, T), rel=1e-12, abs=1e-14) == E
    fd = finite_difference_grad(spec, params, X, T)
    assert grads.keys() == params.keys()
    for name in params:
        assert grads[name].shape == params[name].shape
        err = np.linalg.norm(grads[name] - fd[name])
        scale = max(np.linalg.norm(fd[name]), 1e-3)
        assert err / scale < 1e-6, (name, grads[name], fd[name])


def test_random_specs_cover_every_kind():
    """The parametrised specs above exercise every activation, loss, bias kind and reduction."""
    rng = np.random.default_rng(0)
    seen = kinds_covered(random_spec(rng, index) for index in range(N_SPECS))
    assert seen["act"] == {"sigmoid", "tanh", "relu", "leaky_relu", "linear"}
    assert seen["loss"] == {"sse", "mse", "bce"}
    assert seen["bias"] == {"per_unit", "shared", "none"}
    assert seen["red"] == {"mean", "sum"}
    assert seen["depth"] == {1, 2, 3}


@pytest.mark.parametrize("index", [0, 4, 8])
def test_forward_and_loss_match_reference(index, tmp_path):
    rng = np.random.default_rng(50 + index)
    spec = random_spec(rng, index)
    m = symnet.compile(spec, tmp_path)
    params = random_params(rng, m.PARAM_SHAPES)
    X, T = random_data(rng, spec, batch=7)
    np.testing.assert_allclose(m.forward(params, X), ref_forward(spec, params, X), rtol=1e-12,
                               atol=1e-14)
    assert m.loss(params, X, T) == pytest.approx(ref_loss(spec, params, X, T), rel=1e-12)
