"""float32 modules call their own vectorizable exp/log/tanh/softplus: accurate to a few ulp."""

import numpy as np
import pytest
from _compiled import each

import symnet


@pytest.fixture(scope="module")
def m32(tmp_path_factory):
    spec = {
        "name": "fast32",
        "network": {"inputs": 2, "layers": [
            {"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "loss": {"kind": "bce"},
        "codegen": {"dtype": "float32"},
    }
    return symnet.compile(spec, tmp_path_factory.mktemp("fast32"))


def _grid(lo, hi, n=200_001):
    return np.linspace(lo, hi, n).astype(np.float32)


def test_tanh(m32):
    x = _grid(-20, 20)
    got = each(m32._tanh32, x[::50]).astype(np.float64)
    want = np.tanh(x[::50].astype(np.float64))
    assert np.max(np.abs(got - want)) < 5e-7


def test_exp_is_relatively_accurate_and_saturates(m32):
    x = _grid(-87, 88)[::50]
    got = each(m32._exp32, x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    assert np.max(np.abs(got / want - 1)) < 4e-7  # a few float32 ulp
    huge, tiny = each(m32._exp32, np.float32([1e4, -1e4]))
    assert np.isfinite(huge)  # no overflow to inf
    assert tiny < 1e-37


@pytest.mark.parametrize("lo, hi", [(1e-30, 1e-3), (1e-3, 10.0), (10.0, 1e30)])
def test_log(m32, lo, hi):
    x = np.geomspace(lo, hi, 4001).astype(np.float32)
    got = each(m32._log32, x).astype(np.float64)
    want = np.log(x.astype(np.float64))
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-3)) < 3e-7


def test_softplus_stable_everywhere(m32):
    x = np.concatenate([_grid(-100, 100)[::50], np.float32([-1e4, 1e4])])
    got = each(m32._softplus32, x).astype(np.float64)
    want = np.logaddexp(0.0, x.astype(np.float64))
    assert np.all(np.isfinite(got))
    assert np.max(np.abs(got - want) / np.maximum(want, 1e-30)) < 5e-7


def test_float32_module_uses_them_and_matches_float64(m32, tmp_path):
    with open(m32.__file__) as fh:
        source = fh.read()
    assert "_tanh32(" in source and "np.tanh(" not in source
    m64 = symnet.compile({"name": "fast64", "network": {"inputs": 2, "layers": [
        {"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "loss": {"kind": "bce"}}, tmp_path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    T = (rng.uniform(size=(300, 1)) > 0.5).astype(float)
    p64 = {k: rng.normal(size=s) for k, s in m64.PARAM_SHAPES.items()}
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    E32, g32 = m32.grad(p32, X, T)
    E64, g64 = m64.grad(p64, X, T)
    assert E32 == pytest.approx(E64, rel=2e-6)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=2e-5, atol=2e-6)
