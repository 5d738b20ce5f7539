"""Property-based tests (hypothesis).

- Random valid specs (depth 1-3, widths 1-4, activations and losses from the registry, both
  forms) compile, their forward pass and loss match an independent NumPy reference
  (tests/_reference.py) and their gradients central finite differences of that reference's
  loss; fixed examples make sure every built-in activation and loss is among them. Each
  example costs a Numba compile, so there are few of them, sharing one directory.
- Random invalid specs (mutations of valid dicts: wrong types, unknown keys, bad values,
  random text; random TOML text and bytes; random formulas) never raise anything but
  symnet's own error type. These load and build the source only (no Numba), so there are
  many of them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
import _reference as reference  # noqa: E402
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import symnet  # noqa: E402
from symnet.errors import SymnetError  # noqa: E402
from symnet.functions import ACTIVATIONS  # noqa: E402

# Hidden activations to draw: softmax is drawn as an output only, and step and sign (a zero
# derivative wherever they have one) would zero every gradient before them, so they are in a
# fixed example only. The kinks of relu, leaky_relu, elu, selu and hard_sigmoid are handled by
# the gradient check (see the test).
SMOOTH_ENOUGH = sorted(a for a in ACTIVATIONS if a not in ("softmax", "step", "sign"))
# custom formulas (the whitelist parser's grammar) go through the same pipeline
CUSTOM_FORMULAS = ["x/(1 + abs(x))", "x*sigmoid(x)", "softplus(x) - log(2)", "sin(x) + x/2",
                   "tanh(x)**2 + 0.1*x", "max(x, 0.2*x)", "exp(-x**2/2)*x + erf(x)"]
# (output activation, loss): the loss must suit the output's range
OUTPUTS = [(a, loss) for a in ("linear", "tanh", "sigmoid", "softsign")
           for loss in ("sse", "mse")] + [
    ("sigmoid", "bce"), ("sigmoid", "nll"), ("softmax", "cross_entropy"), ("softmax", "nll"),
    ("softmax", "sse"), ("linear", "mae")]

FEW = settings(max_examples=6, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MANY = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@st.composite
def valid_specs(draw, compile_modes=("scalar", "loop")):
    inputs = draw(st.integers(1, 3))
    depth = draw(st.sampled_from([2, 3, 1]))  # hypothesis starts from the first: not 1 unit
    out_act, loss = draw(st.sampled_from(OUTPUTS))
    layers = []
    for _ in range(depth - 1):
        act = draw(st.sampled_from(SMOOTH_ENOUGH)
                   | st.sampled_from(CUSTOM_FORMULAS).map(lambda f: {"expr": f}))
        layers.append({"units": draw(st.integers(1, 4)), "activation": act,
                       "bias": draw(st.sampled_from(["per_unit", "shared", "none"]))})
    units = draw(st.integers(2, 4)) if out_act == "softmax" else draw(st.integers(1, 4))
    layers.append({"units": units, "activation": out_act,
                   "bias": draw(st.sampled_from(["per_unit", "shared", "none"]))})
    data = {
        "name": "net",
        "network": {"inputs": inputs, "layers": layers},
        "loss": {"kind": loss, "reduction": draw(st.sampled_from(["mean", "sum"]))},
        "init": {"scheme": "xavier_normal", "seed": draw(st.integers(0, 2**32 - 1))},
        "codegen": {"mode": draw(st.sampled_from(compile_modes))},
    }
    if draw(st.booleans()):
        data["loss"]["weight_decay"] = draw(st.sampled_from([0.0, 0.01, 0.5]))
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    data["name"] = f"net_{digest}"
    return data


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def _targets(data, rng, n):
    last = data["network"]["layers"][-1]
    k = last["units"]
    if last["activation"] == "softmax":
        return np.eye(k)[rng.integers(0, k, n)]
    if data["loss"]["kind"] in ("bce", "nll"):
        return rng.uniform(0.05, 0.95, (n, k))
    return rng.normal(size=(n, k))


def _example(name, mode, hidden, out, loss, units=2):
    """A chosen spec: one hidden layer of 2 units per activation in `hidden`."""
    layers = [{"units": 2, "activation": a} for a in hidden]
    return {"name": f"ex_{name}", "network": {"inputs": 2, "layers": layers + [
        {"units": units, "activation": out}]}, "loss": {"kind": loss, "reduction": "mean"},
        "init": {"scheme": "xavier_normal", "seed": 3}, "codegen": {"mode": mode}}


# Every built-in activation and loss, each in at least one example whatever hypothesis draws
# (softmax as an output; step and sign have a zero derivative almost everywhere, which the
# finite differences of the reference see too, away from their jumps)
EXAMPLES = [
    _example("a", "scalar", ["relu", "sigmoid", "tanh"], "linear", "sse"),
    _example("b", "loop", [{"name": "leaky_relu", "alpha": 0.2}, "elu", "selu"], "tanh", "mse"),
    _example("c", "scalar", ["softplus", "silu", "swish"], "sigmoid", "bce", units=1),
    _example("d", "loop", ["gelu", "gelu_tanh", "hard_sigmoid"], "softmax", "cross_entropy", 3),
    # sign before step: after step's 0s and 1s, sign's nets would often be just its biases
    _example("e", "scalar", ["softsign", "sign", "step"], "linear", "mae"),
    _example("f", "loop", [{"expr": "x*sigmoid(x)"}], "softmax", "nll", units=3),
    _example("g", "scalar", [{"expr": "exp(-x**2/2)*x + erf(x)"}], "sigmoid", "nll"),
]


def test_the_examples_cover_the_registry():
    from symnet.functions import LOSSES

    acts, losses = set(), set()
    for data in EXAMPLES:
        for layer in data["network"]["layers"]:
            a = layer["activation"]
            acts.add(a if isinstance(a, str) else a.get("name", "custom"))
        losses.add(data["loss"]["kind"])
    assert set(ACTIVATIONS) <= acts and set(LOSSES) <= losses


@pytest.fixture(scope="module", autouse=True)
def custom_formulas():
    """NumPy versions of the custom formulas, for the reference (removed afterwards)."""
    from scipy import special

    added = {
        "x/(1 + abs(x))": lambda z: z / (1 + np.abs(z)),
        "x*sigmoid(x)": lambda z: z * special.expit(z),
        "softplus(x) - log(2)": lambda z: np.logaddexp(0.0, z) - np.log(2.0),
        "sin(x) + x/2": lambda z: np.sin(z) + z / 2,
        "tanh(x)**2 + 0.1*x": lambda z: np.tanh(z) ** 2 + 0.1 * z,
        "max(x, 0.2*x)": lambda z: np.maximum(z, 0.2 * z),
        "exp(-x**2/2)*x + erf(x)": lambda z: np.exp(-z ** 2 / 2) * z + special.erf(z),
    }
    kinks = {"max(x, 0.2*x)": (0.0,)}  # where a formula's derivative jumps
    assert set(added) >= set(CUSTOM_FORMULAS)
    new = {k: v for k, v in added.items() if k not in reference.CUSTOM_ACTS}
    new_kinks = {k: v for k, v in kinks.items() if k not in reference.CUSTOM_KINKS}
    reference.CUSTOM_ACTS.update(new)
    reference.CUSTOM_KINKS.update(new_kinks)
    yield
    for k in new:
        reference.CUSTOM_ACTS.pop(k, None)
    for k in new_kinks:
        reference.CUSTOM_KINKS.pop(k, None)


@pytest.mark.parametrize("data", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
def test_chosen_specs_match_an_independent_reference(data, shared_dir):
    """The property below on chosen specs (one test each, so that the test processes share
    them out)."""
    _matches_the_reference(data, shared_dir)


@FEW
@given(data=valid_specs())
def test_random_valid_specs_match_an_independent_reference(data, shared_dir):
    """forward and loss against tests/_reference.py (NumPy, written from docs/spec.md), the
    gradient against central finite differences of that reference's loss, and a small step
    lowers the loss."""
    _matches_the_reference(data, shared_dir)


def _matches_the_reference(data, shared_dir):
    m = symnet.compile(data, shared_dir)
    rng = np.random.default_rng(0)
    n = 4
    X = rng.normal(size=(n, data["network"]["inputs"]))
    T = _targets(data, rng, n)
    params = m.init_params()
    # the initial biases are 0, which would hide a bias added to the wrong place, or not at all
    # (a shared bias is a 0-d array: kept an array, for the in-place finite differences)
    params = {k: np.array(v + rng.normal(0.0, 0.5, np.shape(v))) if k.startswith("b") else v
              for k, v in params.items()}
    np.testing.assert_allclose(m.forward(params, X), reference.forward(data, params, X),
                               rtol=1e-10, atol=1e-12, err_msg=str(data))
    E, grads = m.grad(params, X, T)
    assert E == pytest.approx(reference.loss(data, params, X, T), rel=1e-10, abs=1e-12)
    assert E == pytest.approx(m.loss(params, X, T), rel=1e-12, abs=1e-14)
    assert set(grads) == set(params)
    # relu, leaky_relu, elu, selu, hard_sigmoid (and max in a formula) have kinks, step and sign
    # jumps, and mae a kink where an output equals its target: a central difference straddling
    # one measures a mix of two slopes (or the jump), not the derivative. So the difference is
    # compared only for the entries whose +-h move leaves every net input (and mae's y - t) on
    # the side of every kink it was on, where the loss is one smooth piece; with random data
    # that is nearly every entry, and at least 90% must be, or the check would prove nothing.
    fd, smooth = reference.finite_difference_grad_where_smooth(data, params, X, T, h=1e-6)
    assert sum(int(ok.sum()) for ok in smooth.values()) \
        >= 0.9 * sum(ok.size for ok in smooth.values()), data
    for name in params:
        ok = smooth[name]
        np.testing.assert_allclose(grads[name][ok], fd[name][ok], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{data} {name}")
    # and a step moves the loss down for a small learning rate
    before = m.loss(params, X, T)
    m.train_step(params, X, T, lr=1e-4)
    assert m.loss(params, X, T) <= before + 1e-12


# ----------------------------------------------------------------------------------------
# invalid specs: only SymnetError, ever

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
    | st.sampled_from(["sigmoid", "softmax", "custom", "x", "exp(x)", "__import__", "../x",
                       "a; import os", "nan", "", "relu", "per_unit", "float32", "loop",
                       "recompute", "adam", "step", "weights", "W1", "b1", "xavier_normal"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=10) | st.sampled_from(["expr", "name", "units", "kind", "alpha"]),
        inner, max_size=4),
    max_leaves=12,
)


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a nested dict/list."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


KEYS = ["name", "network", "loss", "training", "init", "codegen", "inputs", "layers", "units",
        "activation", "bias", "kind", "reduction", "expr", "weight_decay", "optimizer",
        "learning_rate", "update", "momentum", "nesterov", "beta1", "beta2", "eps", "lr_decay",
        "every", "factor", "rate", "scheme", "seed", "dtype", "strategy", "mode", "W1", "b1",
        "W2", "b2", "alpha", "bogus"]


@st.composite
def mutated_specs(draw):
    data = copy.deepcopy(draw(valid_specs()))
    if draw(st.booleans()):
        data["training"] = {"optimizer": draw(st.sampled_from(["sgd", "adam"])),
                            "learning_rate": 0.1}
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add", "text"]))
        if not path:  # the top level itself
            if action == "replace":
                data = draw(JUNK)
            elif action == "add" and isinstance(data, dict):
                data[draw(st.sampled_from(KEYS))] = draw(JUNK)
            continue
        if action == "replace":
            parent[path[-1]] = draw(JUNK)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "text":
            parent[path[-1]] = draw(st.text(max_size=60))
        else:
            target = parent[path[-1]]
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = draw(JUNK)
            elif isinstance(target, list):
                target.append(draw(JUNK))
            else:
                parent[path[-1]] = [target, draw(JUNK)]
        if not isinstance(data, dict):
            break
    return data


def _only_symnet_errors(call):
    try:
        return call()
    except SymnetError as exc:
        message = str(exc)
        assert message and "\n" not in message and message.isprintable(), message
        return None


@MANY
@given(data=mutated_specs())
def test_mutated_specs_load_or_raise_only_symnet_errors(data):
    _only_symnet_errors(lambda: symnet.spec_from_dict(data))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=mutated_specs())
def test_mutated_specs_that_load_build_or_raise_only_symnet_errors(data):
    """Building renders the module's source (sympy, templates), with no Numba compile."""
    spec = _only_symnet_errors(lambda: symnet.spec_from_dict(data))
    assume(spec is not None)
    assume(spec.n_params() <= 2000)  # keep each build short: the loop form scales anyway
    compiled = _only_symnet_errors(lambda: symnet.build(spec))
    if compiled is not None:
        compile(compiled.source, f"{spec.name}.py", "exec")  # the source is valid Python


@MANY
@given(data=JUNK)
def test_junk_dicts_raise_only_symnet_errors(data):
    _only_symnet_errors(lambda: symnet.spec_from_dict(data))


_VALID_TOML = (Path(__file__).resolve().parent.parent / "examples" / "mazur.toml").read_bytes()


@st.composite
def toml_bytes(draw):
    kind = draw(st.sampled_from(["text", "bytes", "edit"]))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8")
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    data = bytearray(_VALID_TOML)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 20))
        data[at:at + cut] = draw(st.binary(max_size=10)
                                 | st.sampled_from([b'"', b"[", b"]]", b"=", b"\n", b"#",
                                                    b"inf", b"nan", b"-1", b"1e999", b"{",
                                                    b"\xff", b"\x00", b"'''"]))
    return bytes(data)


@MANY
@given(raw=toml_bytes())
def test_random_toml_files_raise_only_symnet_errors(raw, shared_dir):
    path = shared_dir / "spec.toml"
    path.write_bytes(raw)
    spec = _only_symnet_errors(lambda: symnet.load_spec(path))
    if spec is not None:
        assert spec.sha256 == hashlib.sha256(raw).hexdigest()


FORMULA_ALPHABET = "xytpie0123456789_.,+-*/() " + "abcdefghijklmnopqrstuvwxyz"
FORMULA_WORDS = st.sampled_from(["x", "y", "t", "pi", "exp(", "log(", "sqrt(", "max(", ",",
                                 "sigmoid(", "softplus(", ")", "**", "*", "/", "+", "-", "1e308",
                                 "0", "2", "64", "65", ".5", "(", "__import__", "."])


@MANY
@given(text=st.text(alphabet=FORMULA_ALPHABET, max_size=80)
       | st.lists(FORMULA_WORDS, max_size=30).map("".join) | st.text(max_size=40))
def test_random_formulas_parse_or_raise_only_symnet_errors(text):
    for parse, names in ((symnet.functions.parse_activation, {"x"}),
                         (symnet.functions.parse_loss, {"y", "t"})):
        expr = _only_symnet_errors(lambda: parse(text, "spec.toml", "expr"))
        if expr is not None:
            assert {s.name for s in expr.free_symbols} <= names
            # a formula that parses has only finite constants
            for number in expr.atoms():
                if number.is_number:
                    assert math.isfinite(float(abs(number.evalf())))
