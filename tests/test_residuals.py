"""Physics-informed losses, stage 1: `[loss] kind = "residuals"` in the spec, and its terms as
sympy expressions (symnet/residuals.py): the names in a residual, the derivatives they stand
for, the union of them per set of points, and the activations refused because they lose the
derivatives the terms use. No Numba here.

Expected expressions are built in the tests from sympy symbols, and expected derivatives from
their definition (output, sorted input indices), never by running the parser. The refusals of
whole spec files are in tests/bad_specs/ (residuals_*.toml, run by test_spec.py and
test_cli.py); here each is checked by its key as well.
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import hashlib
from pathlib import Path

import pytest
import sympy as sp

import symnet
from symnet import functions
from symnet.functions import ACTIVATIONS, ActivationDef
from symnet.residuals import (
    Derivative,
    ResidualTerm,
    check_differentiable,
    point_sets,
    residual_terms,
)
from symnet.spec import Activation, Layer, Loss, LossTerm

ROOT = Path(__file__).resolve().parent.parent


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


POISSON_TOML = '''
name = "poisson1d"
[network]
inputs = 1
layers = [{units = 16, activation = "tanh"}, {units = 16, activation = "tanh"},
          {units = 1, activation = "linear"}]
[loss]
kind = "residuals"
inputs = ["x"]        # optional: names of the inputs in the formulas
outputs = ["u"]       # optional: names of the outputs
[[loss.terms]]
name = "pde"
points = "interior"
residual = "u_xx + pi**2 * sin(pi * x)"
[[loss.terms]]
name = "boundary"
points = "boundary"
residual = "u"
weight = 10.0
'''


def pinn(*residuals, n_in=2, n_out=1, hidden="tanh", last="linear", **loss) -> dict:
    """A spec dict: n_in inputs, a hidden layer, n_out outputs, one term per residual (named
    t0, t1, ..., on the points "p" unless a residual is given as (residual, points)), and the
    other keys of [loss] (inputs=..., outputs=...) as given."""
    terms = []
    for k, r in enumerate(residuals):
        text, points = r if isinstance(r, tuple) else (r, "p")
        terms.append({"name": f"t{k}", "points": points, "residual": text})
    return {
        "name": "pinn",
        "network": {"inputs": n_in, "layers": [{"units": 5, "activation": hidden},
                                               {"units": n_out, "activation": last}]},
        "loss": {"kind": "residuals", "terms": terms, **loss},
    }


def load(data: dict) -> symnet.Spec:
    return symnet.spec_from_dict(data, source="pinn.toml")


def refusal(data: dict) -> symnet.SpecError:
    with pytest.raises(symnet.SpecError) as info:
        load(data)
    message = str(info.value)
    assert message.splitlines() == [message] and message.isprintable()
    assert message.startswith("pinn.toml: ")
    return info.value


def only(spec) -> ResidualTerm:
    (term,) = residual_terms(spec)
    return term


# ----------------------------------------------------------------------------------------
# the spec: the example, key by key


@pytest.fixture(scope="module")
def poisson(tmp_path_factory):
    path = tmp_path_factory.mktemp("poisson") / "poisson1d.toml"
    path.write_text(POISSON_TOML)
    return symnet.load_spec(path)


def test_the_example_loads(poisson):
    assert poisson.loss == Loss(
        kind="residuals", reduction="mean",
        terms=(LossTerm("pde", "interior", 1.0, "u_xx + pi**2 * sin(pi * x)"),
               LossTerm("boundary", "boundary", 10.0, "u")),
        input_names=("x",), output_names=("u",))
    assert poisson.network.layers[-1] == Layer(1, Activation("linear"))
    assert poisson.training == symnet.spec.Training()  # [training] works as usual


def test_the_example_terms(poisson):
    x, u, u_xx = sym("x"), sym("u"), sym("u_xx")
    pde, boundary = residual_terms(poisson)
    assert (pde.name, pde.points, pde.weight) == ("pde", "interior", 1.0)
    assert pde.expr == u_xx + sp.pi ** 2 * sp.sin(sp.pi * x)
    assert pde.uses == ((u_xx, Derivative(0, (0, 0))),)
    assert pde.inputs == (x,)
    assert (boundary.name, boundary.points, boundary.weight) == ("boundary", "boundary", 10.0)
    assert boundary.expr == u
    assert boundary.uses == ((u, Derivative(0, ())),)
    assert boundary.inputs == (x,)  # every input, used or not
    assert point_sets(poisson) == {"interior": frozenset({Derivative(0, (0, 0))}),
                                   "boundary": frozenset({Derivative(0, ())})}
    check_differentiable(poisson)  # tanh, tanh, linear: u_xx exists


def test_the_symbols_are_real():
    term = only(load(pinn("u_xy*x + y")))
    assert all(s.is_real for s in term.expr.free_symbols)
    assert all(s.is_real for s in term.inputs)


def test_the_spec_keeps_the_text_and_the_weights_as_floats():
    data = pinn("  u_x  ", "u")
    data["loss"]["terms"][1]["weight"] = 3  # an integer
    spec = load(data)
    assert spec.loss.terms == (LossTerm("t0", "p", 1.0, "u_x"), LossTerm("t1", "p", 3.0, "u"))
    assert isinstance(spec.loss.terms[1].weight, float)


def test_reduction_and_weight_decay_are_allowed():
    spec = load(pinn("u_xx", reduction="sum", weight_decay=0.01))
    assert (spec.loss.reduction, spec.loss.weight_decay) == ("sum", 0.01)


# ----------------------------------------------------------------------------------------
# existing specs are unchanged


def test_other_losses_have_no_terms_or_names():
    mazur = symnet.load_spec(ROOT / "examples" / "mazur.toml")
    assert mazur.loss == Loss(kind="sse", reduction="sum")
    assert (mazur.loss.terms, mazur.loss.input_names, mazur.loss.output_names) == ((), (), ())
    assert residual_terms(mazur) == ()
    assert point_sets(mazur) == {}
    check_differentiable(mazur)  # sigmoid layers, no terms: nothing to refuse
    assert mazur.sha256 == hashlib.sha256((ROOT / "examples" / "mazur.toml").read_bytes()) \
        .hexdigest()


def test_a_dict_spec_hashes_as_before():
    """The hashes symnet gave these dicts before the residuals loss existed (commit 9d4bc37):
    a module written then is still current as far as SPEC_SHA256 goes."""
    small = {"name": "small", "network": {"inputs": 3, "layers": [
        {"units": 4, "activation": "tanh"}, {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"}}
    assert symnet.spec_from_dict(small).sha256 == \
        "ff6adfff01402712dedb2ca342b454151cf69f8939a4ad9adfa303595432f2ca"
    small["loss"] = {"kind": "custom", "expr": "(y-t)**2", "weight_decay": 0.01}
    assert symnet.spec_from_dict(small).sha256 == \
        "6cab527001d779aa92c89676359e0e5c61734d49eb4c0bdb5f9ad03253cc18ad"


def test_a_residuals_spec_is_hashable_and_its_hash_follows_the_terms():
    spec = load(pinn("u_xx"))
    assert hash(spec) == hash(load(pinn("u_xx")))
    assert spec.sha256 != load(pinn("u_yy")).sha256


# ----------------------------------------------------------------------------------------
# names: values, derivatives of first and second order, defaults and custom names


def test_values_first_and_second_derivatives():
    x, t = sym("x"), sym("t")
    u, u_x, u_t, u_xx = sym("u"), sym("u_x"), sym("u_t"), sym("u_xx")
    term = only(load(pinn("u_t + u*u_x - 0.01/pi*u_xx + x*t", inputs=["x", "t"])))
    assert term.expr == u_t + u * u_x - sp.Float("0.01") / sp.pi * u_xx + x * t
    # sorted by output, then order, then inputs
    assert term.uses == ((u, Derivative(0, ())), (u_x, Derivative(0, (0,))),
                         (u_t, Derivative(0, (1,))), (u_xx, Derivative(0, (0, 0))))
    assert term.inputs == (x, t)


def test_a_mixed_derivative_is_one_symbol_in_either_order():
    u_xy = sym("u_xy")
    both = only(load(pinn("u_xy + u_yx")))
    assert both.expr == 2 * u_xy
    assert both.uses == ((u_xy, Derivative(0, (0, 1))),)
    assert only(load(pinn("u_yx"))).uses == ((u_xy, Derivative(0, (0, 1))),)
    assert only(load(pinn("u_yy"))).uses == ((sym("u_yy"), Derivative(0, (1, 1))),)


@pytest.mark.parametrize("n, names", [
    (1, ("x",)), (2, ("x", "y")), (3, ("x", "y", "z")),
    (4, ("x1", "x2", "x3", "x4")), (12, tuple(f"x{i}" for i in range(1, 13))),
])
def test_default_input_names(n, names):
    first = names[0]
    spec = load(pinn(f"u_{first}", n_in=n))
    assert spec.loss.input_names == names
    assert only(spec).inputs == tuple(map(sym, names))
    assert only(spec).uses == ((sym(f"u_{first}"), Derivative(0, (0,))),)


@pytest.mark.parametrize("n, names", [(1, ("u",)), (2, ("u1", "u2")), (3, ("u1", "u2", "u3"))])
def test_default_output_names(n, names):
    spec = load(pinn(f"{names[-1]}_x", n_out=n))
    assert spec.loss.output_names == names
    assert only(spec).uses == ((sym(f"{names[-1]}_x"), Derivative(n - 1, (0,))),)


def test_multi_letter_input_names_split_every_way():
    """x1 ... x12: u_x1x12 and u_x12x1 are the same mixed derivative, u_x11 a first one
    (x1 twice would be u_x1x1)."""
    term = only(load(pinn("u_x1x12 + u_x12x1 + u_x11 + u_x1x1 + x3", n_in=12)))
    assert term.expr == 2 * sym("u_x1x12") + sym("u_x11") + sym("u_x1x1") + sym("x3")
    assert term.uses == ((sym("u_x11"), Derivative(0, (10,))),
                         (sym("u_x1x1"), Derivative(0, (0, 0))),
                         (sym("u_x1x12"), Derivative(0, (0, 11))))


def test_custom_names():
    spec = load(pinn("p_rtheta + q_thetar + q_thetatheta/r**2 + p", n_out=2,
                     inputs=["r", "theta"], outputs=["p", "q"]))
    assert (spec.loss.input_names, spec.loss.output_names) == (("r", "theta"), ("p", "q"))
    term = only(spec)
    r, p, p_rth, q_rth, q_thth = map(sym, ["r", "p", "p_rtheta", "q_rtheta", "q_thetatheta"])
    assert term.expr == p_rth + q_rth + q_thth / r ** 2 + p
    assert term.uses == ((p, Derivative(0, ())), (p_rth, Derivative(0, (0, 1))),
                         (q_rth, Derivative(1, (0, 1))), (q_thth, Derivative(1, (1, 1))))


def test_input_names_that_are_prefixes_of_each_other_when_unambiguous():
    """Inputs x and xx: u_x and u_xxx (x then xx, or xx then x: one derivative) have one
    reading each; u_xx has two and is refused; u_xxxxx needs three names."""
    term = only(load(pinn("u_x + u_xxx", inputs=["x", "xx"])))
    assert term.uses == ((sym("u_x"), Derivative(0, (0,))),
                         (sym("u_xxx"), Derivative(0, (0, 1))))
    assert "'u_xx' has 2 readings, as du/dxx and as d2u/dx^2" in str(
        refusal(pinn("u_xx", inputs=["x", "xx"])))
    assert "'u_xxxxx' is a derivative of order 3" in str(
        refusal(pinn("u_xxxxx", inputs=["x", "xx"])))


def test_output_names_with_underscores():
    term = only(load(pinn("u_1_x + u_2", n_out=2, outputs=["u_1", "u_2"])))
    assert term.uses == ((sym("u_1_x"), Derivative(0, (0,))), (sym("u_2"), Derivative(1, ())))


def test_constants_and_functions():
    x, u = sym("x"), sym("u")
    term = only(load(pinn("u - exp(-x)*sin(pi*x) + max(u, 0)", n_in=1)))
    assert term.expr == u - sp.exp(-x) * sp.sin(sp.pi * x) + sp.Max(u, 0)


# ----------------------------------------------------------------------------------------
# point sets


def test_point_sets_are_unions_in_first_appearance_order():
    spec = load(pinn(("u_xx + u_yy", "interior"), ("u", "boundary"), ("u*u_x", "interior"),
                     ("u_y", "wall"), ("u2_x", "boundary"), n_out=2, outputs=["u", "u2"]))
    sets = point_sets(spec)
    assert list(sets) == ["interior", "boundary", "wall"]
    assert sets["interior"] == {Derivative(0, (0, 0)), Derivative(0, (1, 1)),
                                Derivative(0, ()), Derivative(0, (0,))}
    assert sets["boundary"] == {Derivative(0, ()), Derivative(1, (0,))}
    # the value only where a term uses it
    assert sets["wall"] == {Derivative(0, (1,))}
    assert all(isinstance(s, frozenset) for s in sets.values())


def test_terms_come_in_spec_order():
    spec = load(pinn(("u", "b"), ("u_x", "a"), ("u_y", "b")))
    assert [(t.name, t.points) for t in residual_terms(spec)] == [("t0", "b"), ("t1", "a"),
                                                                  ("t2", "b")]


# ----------------------------------------------------------------------------------------
# refusals, by key (the same cases as whole files are in tests/bad_specs/residuals_*.toml)


@pytest.mark.parametrize("residual, reason", [
    ("u_xxx", "'u_xxx' is a derivative of order 3: at most second-order derivatives"),
    ("u_xyx", "'u_xyx' is a derivative of order 3"),
    ("x_x + u", "'x_x' differentiates the input 'x': only the outputs (u) have derivatives"),
    ("y_xy + u", "'y_xy' differentiates the input 'y'"),
    ("u_t", "the name 'u_t' is not an input, an output, a derivative of an output"),
    ("v + u", "the name 'v' is not an input"),
    ("u*(w + v)", "the name 'w' is not an input"),  # the first in the text
    ("u + v +", "not a valid formula"),  # the parser's refusals come first
    ("u + v'", "only letters, digits, spaces"),
    ("u_", "the name 'u_' is not an input"),
    ("x*y", "it uses no output and no derivative of one"),
    ("u_xy - u_yx + x", "it uses no output"),  # the same symbol: it cancels
    ("2.5", "it uses no output"),
    ("u(x)", "the function 'u' is not allowed"),
    ("u.real", "attribute access"),
    ("u_x ** 100", "exponents must be at most 64"),
    ("__import__", "the name '__import__' is not an input"),
    ("", "the formula is empty"),
])
def test_bad_residuals(residual, reason):
    error = refusal(pinn("u", residual))
    assert error.key == "loss.terms[1].residual"
    assert error.file == "pinn.toml"
    assert reason in error.expected
    assert error.expected.startswith("a formula in the inputs x, y, the output u and their "
                                     "derivatives up to second order such as u_x, u_xx (")


def test_a_residual_that_is_not_a_string():
    error = refusal(pinn(["u"]))
    assert (error.key, error.got) == ("loss.terms[0].residual", ["u"])
    assert "the formula must be a string" in error.expected


@pytest.mark.parametrize("change, key, reason", [
    ({"terms": []}, "loss.terms", "a non-empty array of tables"),
    ({"terms": {"name": "a"}}, "loss.terms", "a non-empty array of tables"),
    ({"terms": ["u"]}, "loss.terms[0]", "a table"),
    ({"inputs": ["x"]}, "loss.inputs", "an array of 2 names, one per network input"),
    ({"inputs": "xy"}, "loss.inputs", "an array of 2 names"),
    ({"inputs": ["x", "x"]}, "loss.inputs[1]", "a name no other input or output has"),
    ({"inputs": ["x", "1y"]}, "loss.inputs[1]", "a Python identifier"),
    ({"inputs": ["x", "sin"]}, "loss.inputs[1]", "not a constant or function of the formulas"),
    ({"outputs": ["pi"]}, "loss.outputs[0]", "not a constant or function of the formulas"),
    ({"outputs": ["y"]}, "loss.outputs[0]", "(loss.inputs[1] has it too)"),
    ({"outputs": ["u", "v"]}, "loss.outputs", "an array of 1 name, one per network output"),
    ({"inputs": ["u", "t"]}, "loss.outputs", "the outputs' default name 'u' is also one of"),
    ({"inputs": ["x", "u_x"]}, "loss.inputs[1]", "not also a derivative's (it reads as du/dx)"),
    ({"expr": "u_xx"}, "loss.expr", "no expr for loss 'residuals'"),
])
def test_bad_residual_keys(change, key, reason):
    data = pinn("u_xx")
    data["loss"].update(change)
    error = refusal(data)
    assert error.key == key
    assert reason in error.expected


def test_an_output_that_reads_as_a_derivative_of_another():
    data = pinn("u_xy", n_out=2)
    data["loss"]["outputs"] = ["u", "u_x"]  # u_x is du/dx
    error = refusal(data)
    assert (error.key, error.got) == ("loss.outputs[1]", "u_x")
    assert "it reads as du/dx" in error.expected


def test_missing_terms():
    data = pinn("u")
    del data["loss"]["terms"]
    assert refusal(data).key == "loss.terms"


@pytest.mark.parametrize("term, key, reason", [
    ({"name": "t0"}, "loss.terms[1].name", "a name no other term has (loss.terms[0] has it"),
    ({"name": "a b"}, "loss.terms[1].name", "a Python identifier"),
    ({"points": "not"}, "loss.terms[1].points", "a Python identifier"),
    ({"points": 3}, "loss.terms[1].points", "a Python identifier"),
    ({"weight": 0}, "loss.terms[1].weight", "a positive number"),
    ({"weight": -2.0}, "loss.terms[1].weight", "a positive number"),
    ({"weight": float("inf")}, "loss.terms[1].weight", "a finite number"),
    ({"weight": float("nan")}, "loss.terms[1].weight", "a finite number"),
    ({"weight": True}, "loss.terms[1].weight", "a number"),
    ({"weight": "1"}, "loss.terms[1].weight", "a number"),
    ({"reduction": "sum"}, "loss.terms[1].reduction", "no such key"),
])
def test_bad_terms(term, key, reason):
    data = pinn("u", "u_x")
    data["loss"]["terms"][1].update(term)
    error = refusal(data)
    assert error.key == key
    assert reason in error.expected


@pytest.mark.parametrize("missing", ["name", "points", "residual"])
def test_a_term_without_a_required_key(missing):
    data = pinn("u")
    del data["loss"]["terms"][0][missing]
    assert refusal(data).key == f"loss.terms[0].{missing}"


@pytest.mark.parametrize("kind", ["sse", "mse", "custom"])
@pytest.mark.parametrize("key", ["terms", "inputs", "outputs"])
def test_other_losses_refuse_the_residual_keys(kind, key):
    data = pinn("u")
    data["loss"] = {"kind": kind, key: data["loss"]["terms"] if key == "terms" else ["x", "y"]}
    if kind == "custom":
        data["loss"]["expr"] = "(y - t)**2"
    error = refusal(data)
    assert error.key == f"loss.{key}"
    assert error.expected.startswith(f"no {key} for loss {kind!r}")


def test_the_names_in_a_message_are_shortened():
    long = "q" * 500
    error = refusal(pinn(f"u + {long}"))
    assert len(str(error)) < 400


def test_parsing_never_evaluates_the_text(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("evaluated")

    # the same functions in another text first: the modules that parsing imports on first use
    # are imported (an import runs exec), so that only the parse below is watched
    load(pinn("u_yy - exp(x)*sin(pi*y) + u_xx"))
    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    monkeypatch.setattr(sp, "sympify", boom)
    spec = load(pinn("u_xx + u_yy - sin(pi*x)*exp(y)"))
    assert only(spec).expr == sym("u_xx") + sym("u_yy") - sp.sin(sp.pi * sym("x")) * sp.exp(
        sym("y"))
    error = refusal(pinn("__import__('os').system('true')"))
    assert "only letters, digits, spaces" in error.expected


def test_a_wide_input_layer():
    """100,000 inputs, default names x1 ... x100000: the residual's names resolve by
    splitting them, not by listing every pair."""
    spec = load(pinn("u_x1x100000 + u_x99999", n_in=100_000))
    term = only(spec)
    assert term.uses == ((sym("u_x99999"), Derivative(0, (99_998,))),
                         (sym("u_x1x100000"), Derivative(0, (0, 99_999))))
    assert len(term.inputs) == 100_000 and term.inputs[-1] == sym("x100000")


# ----------------------------------------------------------------------------------------
# activations that lose the derivatives the terms use


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid", "softplus", "silu", "gelu", "elu",
                                    {"expr": "x**3 + x"}])
def test_smooth_activations_pass_for_second_derivatives(hidden):
    check_differentiable(load(pinn("u_xx + u_xy", hidden=hidden)))


@pytest.mark.parametrize("hidden", ["relu", "leaky_relu", {"name": "leaky_relu", "alpha": 0.2},
                                    "hard_sigmoid", {"expr": "abs(x)"}, {"expr": "max(x, 0)"}])
def test_kinked_activations_are_refused_for_second_derivatives(hidden):
    error = refusal(pinn("u", "u_x", ("u_yy", "q"), hidden=hidden))
    assert error.key == "network.layers[0].activation"
    assert error.expected.startswith("an activation whose second derivative is not zero almost "
                                     "everywhere, for the second-order u_yy in loss.terms[2]")
    assert "piecewise linear" in error.expected
    # the same network with first derivatives only is accepted
    check_differentiable(load(pinn("u", "u_x", hidden=hidden)))


@pytest.mark.parametrize("hidden", ["step", "sign", {"expr": "2 + 0*x"}])
def test_flat_activations_are_refused_for_any_derivative(hidden):
    for residual in ["u_y", "u_xy"]:
        error = refusal(pinn("u", residual, hidden=hidden))
        assert error.key == "network.layers[0].activation"
        assert error.expected.startswith("an activation whose derivative is not zero almost "
                                         f"everywhere, for {residual} in loss.terms[1]")
    check_differentiable(load(pinn("u - 1", hidden=hidden)))  # values only


def test_the_output_layer_is_checked_too():
    error = refusal(pinn("u_xx", last="relu"))
    assert error.key == "network.layers[1].activation"
    check_differentiable(load(pinn("u_x", last="relu")))
    check_differentiable(load(pinn("u_xx", last="linear")))
    assert refusal(pinn("u_x", last="step")).key == "network.layers[1].activation"


def test_a_softmax_output_passes():
    check_differentiable(load(pinn("u1_xx + u2_y", n_out=2, last="softmax")))


def test_an_affine_network_is_refused_for_second_derivatives():
    error = refusal(pinn("u_x", "u_xx", hidden="linear"))
    assert error.key == "network.layers"
    assert "so the network is affine in its inputs and u_xx would be 0" in error.expected
    check_differentiable(load(pinn("u_x", hidden="linear")))
    check_differentiable(load(pinn("u_xx", hidden={"expr": "x**2"}, last="linear")))


def test_the_rule_comes_from_the_registry_not_from_names(monkeypatch):
    """A new piecewise-linear activation is refused for u_xx as soon as it is registered, and
    a new smooth one passes: the decision is the sympy derivatives', not a list of names."""
    ramp = ActivationDef("ramp2", lambda v: sp.Piecewise((2 * v, v > 0), (v / 2, True)))
    wave = ActivationDef("wave", lambda v: sp.sin(v))
    monkeypatch.setitem(ACTIVATIONS, "ramp2", ramp)
    monkeypatch.setitem(ACTIVATIONS, "wave", wave)
    assert refusal(pinn("u_xx", hidden="ramp2")).key == "network.layers[0].activation"
    check_differentiable(load(pinn("u_x", hidden="ramp2")))
    check_differentiable(load(pinn("u_xx", hidden="wave")))


def test_check_differentiable_on_a_spec_built_by_hand():
    """A Spec changed after loading (dataclasses.replace) is checked by the function itself."""
    spec = load(pinn("u_xx"))
    layers = (dataclasses.replace(spec.network.layers[0], activation=Activation("relu")),
              spec.network.layers[1])
    bad = dataclasses.replace(spec, network=dataclasses.replace(spec.network, layers=layers))
    with pytest.raises(symnet.SpecError) as info:
        check_differentiable(bad)
    assert (info.value.file, info.value.key) == ("pinn.toml", "network.layers[0].activation")


def test_residual_terms_of_a_spec_built_by_hand_name_the_term():
    spec = load(pinn("u", "u_x"))
    terms = (spec.loss.terms[0], dataclasses.replace(spec.loss.terms[1], residual="u_xxx"))
    bad = dataclasses.replace(spec, loss=dataclasses.replace(spec.loss, terms=terms))
    with pytest.raises(symnet.SpecError) as info:
        residual_terms(bad)
    assert info.value.key == "loss.terms[1].residual"
    assert "'u_xxx' is a derivative of order 3" in info.value.expected


# ----------------------------------------------------------------------------------------
# what the later stages see until the code generation exists


def test_a_residuals_loss_has_no_per_unit_loss():
    spec = load(pinn("u_xx"))
    with pytest.raises(symnet.SymnetError, match="loss kind 'residuals' has no per-unit loss"):
        functions.loss_def(spec.loss)


def test_the_dict_is_not_modified():
    data = pinn("u_xx", "u")
    kept = copy.deepcopy(data)
    load(data)
    assert data == kept
