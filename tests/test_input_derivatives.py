"""The generated module's derivatives with respect to the inputs (`jacobian`, `input_grad`) and
its Hessian-vector product (`hvp`): against central finite differences of the
NumPy reference (tests/_reference.py) or of the module's own gradient, in both forms and both
dtypes, on the smallest nets that show each case (softmax, weight decay, a sum reduction, a
kink: relu and mae)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _reference import forward as ref_forward
from _reference import loss as ref_loss

import symnet

EPS = 1e-6
MAZUR = Path(__file__).resolve().parent.parent / "examples" / "mazur.toml"

SPECS = {
    # a sigmoid output, tanh, weight decay (mean)
    "tanh-bce": {"network": {"inputs": 3, "layers": [
        {"units": 4, "activation": "tanh"}, {"units": 2, "activation": "sigmoid"}]},
        "loss": {"kind": "bce", "weight_decay": 0.01}},
    # a softmax output (the shift m has no derivative), gelu (erf), weight decay under "sum"
    "gelu-softmax": {"network": {"inputs": 2, "layers": [
        {"units": 3, "activation": "gelu"}, {"units": 3, "activation": "softmax"}]},
        "loss": {"kind": "cross_entropy", "reduction": "sum", "weight_decay": 0.02}},
    # kinks: relu, and mae's |t - y|, whose second derivative sympy writes with a DiracDelta
    "relu-mae": {"network": {"inputs": 2, "layers": [
        {"units": 3, "activation": "relu"}, {"units": 2, "activation": "softplus"},
        {"units": 1, "activation": "linear"}]}, "loss": {"kind": "mae"}},
}


def _full(name: str, mode: str, dtype: str = "float64") -> dict:
    return {"name": f"der_{name.replace('-', '_')}_{mode}_{dtype}", **SPECS[name],
            "codegen": {"mode": mode, "dtype": dtype, "derivatives": True}}


@pytest.fixture(scope="module")
def modules(run_folder):
    out = run_folder("derivatives")
    cache = {}

    def get(name, mode, dtype="float64"):
        key = (name, mode, dtype)
        if key not in cache:
            cache[key] = symnet.compile(_full(name, mode, dtype), out)
        return cache[key]

    return get


def _problem(m, name, seed=0, n=6):
    rng = np.random.default_rng(seed)
    params = {k: (v + 0.3 * rng.normal(size=v.shape)).astype(m.DTYPE)
              for k, v in m.init_params(seed=seed).items()}
    X = rng.normal(size=(n, m.N_INPUTS))
    if name == "gelu-softmax":
        T = rng.dirichlet(np.ones(m.N_OUTPUTS), size=n)
    else:
        T = rng.uniform(size=(n, m.N_OUTPUTS))
    return params, X, T


def _away_from_kinks(spec, params, X, margin=1e-3):
    """Whether every relu net of the reference is at least `margin` from 0 at every sample."""
    from _reference import layer_nets

    nets = layer_nets(spec, params, X)
    for layer, z in zip(spec["network"]["layers"], nets):
        if layer["activation"] == "relu" and np.min(np.abs(z)) < margin:
            return False
    return True


@pytest.mark.parametrize("mode", ["scalar", "loop"])
@pytest.mark.parametrize("name", list(SPECS))
def test_jacobian_and_input_grad_against_finite_differences(modules, name, mode):
    m = modules(name, mode)
    spec = _full(name, mode)
    params, X, T = _problem(m, name)
    assert _away_from_kinks(spec, params, X)
    J = m.jacobian(params, X)
    assert J.shape == (X.shape[0], m.N_OUTPUTS, m.N_INPUTS) and J.dtype == m.DTYPE
    for d in range(m.N_INPUTS):
        step = EPS * np.eye(m.N_INPUTS)[d]
        fd = (ref_forward(spec, params, X + step) - ref_forward(spec, params, X - step)) / (2 * EPS)
        np.testing.assert_allclose(J[:, :, d], fd, rtol=1e-6, atol=1e-8)

    E, G = m.input_grad(params, X, T)
    assert E == pytest.approx(ref_loss(spec, params, X, T), rel=1e-12)
    assert G.shape == X.shape
    fd = np.zeros_like(X)
    for s in range(X.shape[0]):
        for d in range(X.shape[1]):
            Xp, Xm = X.copy(), X.copy()
            Xp[s, d] += EPS
            Xm[s, d] -= EPS
            fd[s, d] = (ref_loss(spec, params, Xp, T) - ref_loss(spec, params, Xm, T)) / (2 * EPS)
    if name == "relu-mae":  # mae's kink: compare where no |t - y| is near 0
        assert np.min(np.abs(T - ref_forward(spec, params, X))) > 1e-3
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("mode", ["scalar", "loop"])
@pytest.mark.parametrize("name", list(SPECS))
def test_hvp_against_finite_differences_of_the_gradient(modules, name, mode):
    m = modules(name, mode)
    params, X, T = _problem(m, name)
    rng = np.random.default_rng(7)
    V = {k: rng.normal(size=v.shape) for k, v in params.items()}
    E, H = m.hvp(params, X, T, V)
    assert E == pytest.approx(m.loss(params, X, T), rel=1e-12)
    assert set(H) == set(params) and all(H[k].shape == params[k].shape for k in H)
    plus = m.grad({k: params[k] + EPS * V[k] for k in params}, X, T)[1]
    minus = m.grad({k: params[k] - EPS * V[k] for k in params}, X, T)[1]
    for k in params:
        np.testing.assert_allclose(H[k], (plus[k] - minus[k]) / (2 * EPS), rtol=1e-5, atol=1e-8)
    # linear in V: H(2V - V/2) = 1.5 H(V), exactly up to rounding
    E2, H2 = m.hvp(params, X, T, {k: 1.5 * v for k, v in V.items()})
    for k in params:
        np.testing.assert_allclose(H2[k], 1.5 * H[k], rtol=1e-12, atol=1e-14)


def test_float32_derivatives_follow_float64(modules):
    name = "tanh-bce"
    for mode in ("scalar", "loop"):
        m32, m64 = modules(name, mode, "float32"), modules(name, mode)
        params, X, T = _problem(m64, name)
        p32 = {k: v.astype(np.float32) for k, v in params.items()}
        J32 = m32.jacobian(p32, X)
        assert J32.dtype == np.float32
        np.testing.assert_allclose(J32, m64.jacobian(params, X), rtol=2e-4, atol=1e-5)
        np.testing.assert_allclose(m32.input_grad(p32, X, T)[1], m64.input_grad(params, X, T)[1],
                                   rtol=2e-4, atol=1e-5)
        V = {k: np.ones_like(v) for k, v in params.items()}
        H32 = m32.hvp(p32, X, T, V)[1]
        H64 = m64.hvp(params, X, T, V)[1]
        for k in params:
            assert H32[k].dtype == np.float32
            np.testing.assert_allclose(H32[k], H64[k], rtol=2e-3, atol=1e-5)


def test_the_loop_forms_kept_workspace_is_written_before_it_is_read(modules):
    # the kernel file keeps the derivative kernels' workspace between calls: filled with nan, it
    # changes nothing, for the batch that sized it and for a smaller one after it
    m = modules("tanh-bce", "loop")
    params, X, T = _problem(m, "tanh-bce", n=12)
    V = {k: np.ones_like(v) for k, v in params.items()}

    def all_three(n):
        E_g, G = m.input_grad(params, X[:n], T[:n])
        E_h, H = m.hvp(params, X[:n], T[:n], V)
        return [m.jacobian(params, X[:n]), np.array([E_g, E_h]), G, *H.values()]

    want = {n: all_three(n) for n in (12, 5)}
    units = [shape[0] for name, shape in m.PARAM_SHAPES.items() if name.startswith("W")]
    assert m._kernels._WORK[0].size >= (6 * sum(units) + 3 * max(units)) * 12  # hvp's, 12 samples
    for n in (12, 5):
        m._kernels._WORK[0][:] = np.nan
        for got, w in zip(all_three(n), want[n]):
            assert np.all(np.isfinite(got))
            np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_arguments_are_checked(modules, mode):
    m = modules("tanh-bce", mode)
    params, X, T = _problem(m, "tanh-bce")
    with pytest.raises(ValueError, match="V: missing 'b2'"):
        m.hvp(params, X, T, {k: v for k, v in params.items() if k != "b2"})
    with pytest.raises(ValueError, match="X"):
        m.jacobian(params, X[:, :2])


def test_scalar_form_derives_them_only_when_asked(tmp_path):
    """[codegen] derivatives = false (the default): the scalar module says how to get them;
    the loop form always has them."""
    spec = {"name": "der_off", "network": {"inputs": 2, "layers": [
        {"units": 2, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "loss": {"kind": "bce"}}
    source = symnet.build(spec).source
    assert "def _jacobian" not in source and "def _hvp" not in source
    m = symnet.compile(spec, tmp_path)
    X, T = np.zeros((1, 2)), np.zeros((1, 1))
    for call in (lambda: m.jacobian(m.init_params(), X),
                 lambda: m.input_grad(m.init_params(), X, T),
                 lambda: m.hvp(m.init_params(), X, T, m.init_params())):
        with pytest.raises(NotImplementedError, match=r"\[codegen\] derivatives = true"):
            call()


def test_jacobian_lines_are_tangents_in_the_lecture_names():
    from dataclasses import replace

    from symnet.spec import load_spec

    spec = load_spec(MAZUR)
    source = symnet.build(replace(spec, codegen=replace(spec.codegen, derivatives=True))).source
    body = source[source.index("def _jacobian"):source.index("def _input_grad")]
    assert "dout_o1_di1 = " in body and "dnet_h1_di1 = w1  # dnet_h1/di1 = dnet_h1/di1" in body
    hvp = source[source.index("def _hvp"):]
    assert "R_dE_dw5" in hvp and "v_w5 = VW2[0, 0]" in hvp
