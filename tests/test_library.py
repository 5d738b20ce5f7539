"""The activation and loss library, custom formulas, weight decay and init schemes.

Gradients are checked against central differences of the independent NumPy reference
(tests/_reference.py). Each spec below chains several activations, so that a few compiled
modules cover the whole registry (each module costs Numba about a second or two).
"""

from __future__ import annotations

import ast
import io
import math
import re
from pathlib import Path

import _reference as ref
import numpy as np
import pytest
import sympy as sp
from scipy import special

import symnet
from symnet.autodiff import differentiate
from symnet.functions import ACTIVATIONS, LOSSES
from symnet.lower import SAMPLE_INDEX, lower
from symnet.schedule import schedule

DOCS = Path(__file__).resolve().parent.parent / "docs" / "spec.md"

SOFTSIGN = "x/(1 + abs(x))"
EVERY_FUNCTION = ("exp(-x**2) + log(1 + x**2) + sqrt(1 + x**2) + abs(x) + tanh(x) + sigmoid(x)"
                  " + softplus(x) + erf(x) + sin(x) + cos(x) + max(x, 0) + min(x, 1)")
CUSTOM_LOSS = "softplus(y - t) + (y - t)**2/2"
ref.CUSTOM_ACTS[SOFTSIGN] = lambda z: z / (1 + np.abs(z))
ref.CUSTOM_ACTS[EVERY_FUNCTION] = lambda z: (
    np.exp(-z ** 2) + np.log(1 + z ** 2) + np.sqrt(1 + z ** 2) + np.abs(z) + np.tanh(z)
    + special.expit(z) + np.logaddexp(0, z) + special.erf(z) + np.sin(z) + np.cos(z)
    + np.maximum(z, 0) + np.minimum(z, 1))
ref.CUSTOM_LOSSES[CUSTOM_LOSS] = lambda y, t: np.logaddexp(0, y - t) + (y - t) ** 2 / 2


def _layer(units, activation):
    return {"units": units, "activation": activation}


# name -> (layers, loss table): together every activation, every new loss, both reductions
# and weight decay under each
SPECS = {
    "smooth": ([_layer(3, {"name": "elu", "alpha": 0.7}), _layer(3, "selu"), _layer(2, "gelu"),
                _layer(2, "gelu_tanh")], {"kind": "mae"}),
    "soft": ([_layer(3, "softplus"), _layer(3, "silu"), _layer(2, "swish"),
              _layer(3, "hard_sigmoid"), _layer(2, "softsign")], {"kind": "sse"}),
    "sign": ([_layer(3, "sign"), _layer(3, "linear"), _layer(2, "sigmoid")],
             {"kind": "nll", "reduction": "sum"}),
    "step": ([_layer(3, "step"), _layer(3, "relu"), _layer(3, {"name": "leaky_relu",
                                                                  "alpha": 0.2}),
              _layer(3, "softmax")], {"kind": "cross_entropy", "weight_decay": 0.05}),
    "softmax_sse": ([_layer(3, "tanh"), _layer(3, "softmax")],
                    {"kind": "sse", "reduction": "sum", "weight_decay": 0.03}),
    "softmax_nll": ([_layer(3, "sigmoid"), _layer(3, "softmax")], {"kind": "nll"}),
    "custom": ([_layer(3, {"expr": SOFTSIGN}), _layer(2, {"expr": EVERY_FUNCTION}),
                _layer(2, "linear")],
               {"kind": "custom", "expr": CUSTOM_LOSS, "weight_decay": 0.01}),
}
# the lecture's own losses, checked on random specs in test_gradients.py
OLD_LOSSES = {"sse", "mse", "bce"}


def _spec(name, dtype="float64"):
    layers, loss = SPECS[name]
    return {"name": f"lib_{name}_{dtype}", "network": {"inputs": 3, "layers": layers},
            "loss": loss, "codegen": {"mode": "scalar", "dtype": dtype}}


def _point(spec, seed, batch=4):
    rng = np.random.default_rng(seed)
    shapes = symnet.spec_from_dict(spec).param_shapes()
    params = {k: rng.normal(0.0, 0.8, s) for k, s in shapes.items()}
    X = rng.normal(0.0, 1.0, (batch, 3))
    T = rng.uniform(0.0, 1.0, (batch, spec["network"]["layers"][-1]["units"]))
    if spec["network"]["layers"][-1]["activation"] == "softmax":
        T /= T.sum(axis=1, keepdims=True)  # probabilities
    return params, X, T


@pytest.fixture(scope="module")
def modules(run_folder):
    """Each spec compiled once per dtype, on first use."""
    cache = {}
    out = run_folder("library")

    def get(name, dtype="float64"):
        if (name, dtype) not in cache:
            cache[name, dtype] = symnet.compile(_spec(name, dtype), out)
        return cache[name, dtype]

    return get


def test_the_specs_cover_the_library():
    acts, losses = set(), set()
    for layers, loss in SPECS.values():
        for layer in layers:
            a = layer["activation"]
            acts.add(a if isinstance(a, str) else a.get("name", "custom"))
        losses.add(loss["kind"])
    assert acts == set(ACTIVATIONS) | {"custom"}
    assert losses | OLD_LOSSES == set(LOSSES) | {"custom"}


@pytest.mark.parametrize("name", list(SPECS))
def test_grad_matches_finite_differences(name, modules):
    spec = _spec(name)
    m = modules(name)
    params, X, T = _point(spec, seed=sum(map(ord, name)))
    E, grads = m.grad(params, X, T)
    assert E == pytest.approx(ref.loss(spec, params, X, T), rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(m.forward(params, X), ref.forward(spec, params, X), rtol=1e-12,
                               atol=1e-14)
    fd = ref.finite_difference_grad(spec, params, X, T)
    for key in params:
        err = np.linalg.norm(grads[key] - fd[key])
        assert err / max(np.linalg.norm(fd[key]), 1e-3) < 1e-6, (key, grads[key], fd[key])


def _float64_in_kernels(kernel) -> list[str]:
    """Numba's typed IR lines whose result is a float64, other than the float literals that
    np.float32(...) converts and those conversions themselves."""
    buf = io.StringIO()
    kernel.inspect_types(file=buf)
    return [line for line in buf.getvalue().splitlines()
            if re.search(r"::\s.*float64", line) and "const(float" not in line
            and not re.search(r"\(float64,\) -> float32$", line)]


def test_the_float64_detector_detects():
    from numba import njit

    @njit
    def promoted(a):
        return a * 0.5  # a float64 literal: float32 * float64 is float64

    @njit
    def kept(a):
        return a * np.float32(0.5)

    promoted(np.float32(1.0))
    kept(np.float32(1.0))
    assert _float64_in_kernels(promoted)
    assert not _float64_in_kernels(kept)


@pytest.mark.parametrize("name", list(SPECS))
def test_float32_modules_compute_in_float32(name, modules):
    spec = _spec(name)
    m32, m64 = modules(name, "float32"), modules(name)
    params, X, T = _point(spec, seed=7)
    E32, g32 = m32.grad(params, X, T)
    E64, g64 = m64.grad(params, X, T)
    assert E32 == pytest.approx(E64, rel=1e-5, abs=1e-6)
    for key in g64:
        assert g32[key].dtype == np.float32
        np.testing.assert_allclose(g32[key], g64[key], rtol=2e-4, atol=2e-5)
    assert m32.forward(params, X).dtype == np.float32
    for kernel in (m32._forward, m32._loss, m32._grad):
        assert _float64_in_kernels(kernel) == [], kernel


def test_math_is_imported_only_when_used(modules):
    m = modules("smooth")  # gelu: erf is math.erf
    tree = ast.parse(Path(m.__file__).read_text())
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "math" in imports and "math.erf(" in Path(m.__file__).read_text()
    source = symnet.build(_spec("soft")).source
    assert "import math" not in source and "math." not in source


# ----------------------------------------------------------------------------------------
# softmax and the fused losses, symbolically


def _softmax_program(loss, units=3):
    spec = symnet.spec_from_dict({
        "name": "sm", "network": {"inputs": 2, "layers": [_layer(units, "softmax")]},
        "loss": loss})
    return differentiate(lower(spec))


def test_cross_entropy_delta_is_y_minus_t():
    """delta_k = (sum_j t_j) * y_k - t_k: y - t for targets that are probabilities."""
    prog = _softmax_program({"kind": "cross_entropy"})
    env = _evaluate(prog, prog.forward + prog.backward, seed=1, probabilities=True)
    for k in (1, 2, 3):
        delta = env[sp.Symbol(f"delta_o{k}", real=True)]
        y = env[sp.Symbol(f"out_o{k}", real=True)]
        t = env[sp.Symbol(f"t{k}", real=True)]
        assert delta == pytest.approx(y - t, abs=1e-14)


def test_the_softmax_shift_gets_no_gradient():
    prog = _softmax_program({"kind": "sse"})
    shift = [a for a in prog.forward if a.role == "shift"]
    assert len(shift) == 1 and isinstance(shift[0].rhs, sp.Max)
    assert [a.lhs.name for a in prog.backward if a.lhs.name.startswith("dE_dmax")] == []
    # every exp(net_k - max) is written as the stored value in its derivative
    deltas = [a for a in prog.backward if a.role == "delta"]
    assert deltas and not any(a.rhs.has(sp.exp) for a in deltas)


def _evaluate(prog, steps, seed, probabilities=False):
    rng = np.random.default_rng(seed)
    env = {s: float(rng.normal()) for s in prog.inputs + prog.param_symbols}
    t = rng.uniform(size=len(prog.targets))
    if probabilities:
        t /= t.sum()
    env.update(zip(prog.targets, map(float, t)))
    env[SAMPLE_INDEX] = 0  # the first sample of a batch (weight decay under reduction sum)
    for a in steps:
        value = a.rhs.xreplace(env)
        env[a.lhs] = value if isinstance(value, sp.logic.boolalg.Boolean) else float(value)
    return env


@pytest.mark.parametrize("loss", [{"kind": "cross_entropy", "weight_decay": 0.1},
                                  {"kind": "nll", "reduction": "sum", "weight_decay": 0.1},
                                  {"kind": "mae"}])
def test_store_and_recompute_agree_through_softmax(loss):
    # (mae's gradient runs through the softmax's Jacobian: inlined, 3 units exceed the limit)
    prog = _softmax_program(loss, units=2 if loss["kind"] == "mae" else 3)
    store, recompute = schedule(prog, "store"), schedule(prog, "recompute")
    e1 = _evaluate(prog, store.grad, seed=2)
    e2 = _evaluate(prog, recompute.grad, seed=2)
    for g in [prog.loss, *prog.grads.values()]:
        assert e1[g] == pytest.approx(e2[g], rel=1e-12, abs=1e-14)


# ----------------------------------------------------------------------------------------
# numerical stability: nets of +-1000


def _extreme(out_units):
    """A 2-2-K net whose hidden (softplus) nets are +-1000 and whose output nets reach
    +-1000: W1 = diag(1000, -1000), output net_k = W2[k, 0] * softplus(1000 * x_0)."""
    W1 = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    W2 = np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, 0.25]])[:out_units]
    X = np.array([[1.0, 1.0], [-1.0, -1.0], [0.3, -0.2]])
    return {"W1": W1, "W2": W2}, X


def _stable_reference(params, X, T, out):
    """Loss and gradient of a softplus hidden layer and a softmax/sigmoid output, from
    textbook formulas in NumPy (mean over the batch)."""
    Z1 = X @ params["W1"].T
    H = np.logaddexp(0.0, Z1)
    Z2 = H @ params["W2"].T
    if out == "softmax":
        E = -np.sum(T * special.log_softmax(Z2, axis=1), axis=1)
        D2 = special.softmax(Z2, axis=1) * T.sum(axis=1, keepdims=True) - T
    else:
        E = np.sum(T * np.logaddexp(0.0, -Z2) + (1 - T) * np.logaddexp(0.0, Z2), axis=1)
        D2 = special.expit(Z2) - T
    D1 = (D2 @ params["W2"]) * special.expit(Z1)
    n = X.shape[0]
    return E.mean(), {"W1": D1.T @ X / n, "W2": D2.T @ H / n}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("out, loss", [("softmax", "cross_entropy"), ("sigmoid", "bce")])
def test_extreme_nets_stay_finite_and_correct(out, loss, dtype, tmp_path):
    units = 3 if out == "softmax" else 2
    spec = {"name": f"extreme_{loss}_{dtype}",
            "network": {"inputs": 2, "layers": [
                {"units": 2, "activation": "softplus", "bias": "none"},
                {"units": units, "activation": out, "bias": "none"}]},
            "loss": {"kind": loss}, "codegen": {"mode": "scalar", "dtype": dtype}}
    m = symnet.compile(spec, tmp_path)
    params, X = _extreme(units)
    T = np.array([[0.1, 0.7, 0.2], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])[:, :units]
    Y = m.forward(params, X)
    E, grads = m.grad(params, X, T)
    assert np.all(np.isfinite(Y)) and np.isfinite(E)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    if out == "softmax":
        np.testing.assert_allclose(Y.sum(axis=1), 1.0, rtol=1e-6)
    E_ref, g_ref = _stable_reference(params, X, T, out)
    assert E_ref > 100  # the nets are large enough to matter
    rtol = 1e-12 if dtype == "float64" else 1e-5
    assert E == pytest.approx(E_ref, rel=rtol)
    for key in grads:
        np.testing.assert_allclose(grads[key], g_ref[key], rtol=rtol, atol=rtol)


def test_softplus_and_its_derivative_at_extremes(modules):
    """softplus(+-1000) and softplus' = 1 - exp(-out), printed as -expm1(-out)."""
    source = Path(modules("soft").__file__).read_text()
    assert "np.logaddexp(0.0, net_h1_1)" in source
    assert "np.expm1(-out_h1_1)" in source


# ----------------------------------------------------------------------------------------
# weight decay


def test_weight_decay_is_added_once_per_batch(modules):
    """With a step first layer nothing flows back to W1: its gradient is the decay's alone."""
    m = modules("step")
    params, X, T = _point(_spec("step"), seed=3, batch=5)
    _, grads = m.grad(params, X, T)
    np.testing.assert_allclose(grads["W1"], 2 * 0.05 * params["W1"], rtol=1e-13)
    assert np.all(grads["b1"] == 0)  # biases are not decayed


# ----------------------------------------------------------------------------------------
# init schemes


@pytest.mark.parametrize("scheme, bound, std", [
    ("xavier_uniform", lambda i, o: math.sqrt(6 / (i + o)), lambda i, o: math.sqrt(2 / (i + o))),
    ("he_uniform", lambda i, o: math.sqrt(6 / i), lambda i, o: math.sqrt(2 / i)),
    ("xavier_normal", None, lambda i, o: math.sqrt(2 / (i + o))),
    ("he_normal", None, lambda i, o: math.sqrt(2 / i)),
    ("uniform_fan_in", lambda i, o: 1 / math.sqrt(i), lambda i, o: 1 / math.sqrt(3 * i)),
    ("normal_0.01", None, lambda i, o: 0.01),
])
def test_init_scheme_statistics(scheme, bound, std, tmp_path):
    spec = {"name": f"init_{scheme.replace('.', '_')}", "codegen": {"mode": "scalar"},
            "network": {"inputs": 3, "layers": [_layer(5, "tanh"), _layer(2, "linear")]},
            "loss": {"kind": "mse"}, "init": {"scheme": scheme, "seed": 11}}
    m = symnet.compile(spec, tmp_path)  # init_params is plain NumPy: nothing is jit-compiled
    draws = {"W1": [], "W2": []}
    for seed in range(300):
        p = m.init_params(seed)
        assert np.all(p["b1"] == 0) and np.all(p["b2"] == 0)
        for k in draws:
            draws[k].append(p[k])
    np.testing.assert_array_equal(m.init_params()["W1"], m.init_params(11)["W1"])  # seeded
    for k, (fan_out, fan_in) in {"W1": (5, 3), "W2": (2, 5)}.items():
        w = np.array(draws[k])
        assert abs(w.mean()) < 0.1 * std(fan_in, fan_out)
        assert w.std() == pytest.approx(std(fan_in, fan_out), rel=0.05)
        if bound is not None:
            assert np.abs(w).max() <= bound(fan_in, fan_out)
            assert np.abs(w).max() > 0.98 * bound(fan_in, fan_out)


# ----------------------------------------------------------------------------------------
# the docs name everything


def test_spec_docs_name_every_activation_loss_and_scheme():
    text = DOCS.read_text(encoding="utf-8")
    from symnet.spec import INIT_SCHEMES

    for name in [*ACTIVATIONS, *LOSSES, *INIT_SCHEMES, "custom", "weight_decay", "expr"]:
        assert f"`{name}`" in text, name
