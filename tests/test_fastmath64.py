"""float64 loop-form kernels call their own vectorizable exp and tanh: within 2 ulp of NumPy's,
with NumPy's inf, 0 and nan at the ends; the scalar form keeps NumPy's (the lecture's lines)."""

import numpy as np
import pytest
from _compiled import each

import symnet


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    spec = {
        "name": "fast64",
        "network": {"inputs": 2, "layers": [
            {"units": 3, "activation": "tanh"}, {"units": 3, "activation": "sigmoid"},
            {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"},
        "codegen": {"mode": "loop"},
    }
    return symnet.compile(spec, tmp_path_factory.mktemp("fast64"), tune=False)._kernels


def _ulps(got, want):
    return np.max(np.abs(got - want) / np.spacing(np.abs(want)))


@pytest.mark.parametrize("lo, hi", [(-0.7, 0.7), (-3.0, 3.0), (-25.0, 25.0)])
def test_tanh_within_two_ulp(kernels, lo, hi):
    x = np.random.default_rng(0).uniform(lo, hi, 4000)
    assert _ulps(each(kernels._tanh64, x), np.tanh(x)) <= 2.0


def test_tanh_at_the_ends(kernels):
    got = each(kernels._tanh64, [np.inf, -np.inf, 30.0, -30.0, 0.0, 1e-300, 0.625, -0.625])
    np.testing.assert_array_max_ulp(got, np.tanh([np.inf, -np.inf, 30.0, -30.0, 0.0, 1e-300,
                                                   0.625, -0.625]), maxulp=2)
    assert np.isnan(each(kernels._tanh64, [np.nan])[0])


def test_exp_within_two_ulp(kernels):
    x = np.random.default_rng(1).uniform(-708.0, 709.7, 4000)
    x[:1000] /= 700.0  # near 0 too
    assert _ulps(each(kernels._exp64, x), np.exp(x)) <= 2.0


def test_exp_at_the_ends(kernels):
    near, over, inf, sub, under, zero, nan, one = each(
        kernels._exp64, [709.78, 710.0, np.inf, -744.0, -746.0, -np.inf, np.nan, 0.0])
    assert near == pytest.approx(np.exp(709.78), rel=1e-15)
    assert over == np.inf and inf == np.inf
    assert 0.0 < sub < 1e-320  # subnormal
    assert under == 0.0 and zero == 0.0
    assert np.isnan(nan) and one == 1.0


def test_hidden_layers_call_them_and_the_scalar_form_keeps_numpys(kernels, tmp_path):
    with open(kernels.__file__) as fh:
        source = fh.read()
    assert "_tanh64(" in source and "_exp64(" in source
    assert "np.tanh(" not in source  # the output layer is linear: no other tanh
    scalar = symnet.compile({"name": "lecture64", "network": {"inputs": 2, "layers": [
        {"units": 2, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "loss": {"kind": "mse"}}, tmp_path)
    with open(scalar.__file__) as fh:
        source = fh.read()
    assert "np.tanh(" in source and "_tanh64" not in source and "_exp64" not in source
