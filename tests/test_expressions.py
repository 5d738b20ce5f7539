"""Custom formulas (`activation = { expr = ... }`, `[loss] kind = "custom"`): the whitelist
parser in symnet/expressions.py, what it builds and everything it refuses. No Numba here."""

from __future__ import annotations

import ast
import builtins
import math
import sys

import numpy as np
import pytest
import sympy as sp

import symnet
from symnet import expressions, functions
from symnet.expressions import MAX_DEPTH, MAX_LENGTH

X = functions.x
Y, T = functions.y, functions.t


def act(text):
    return functions.parse_activation(text, "spec.toml", "network.layers[0].activation.expr")


def loss(text):
    return functions.parse_loss(text, "spec.toml", "loss.expr")


# ----------------------------------------------------------------------------------------
# what is accepted, and the expression it becomes


@pytest.mark.parametrize("text, want", [
    ("x/(1 + abs(x))", X / (1 + sp.Abs(X))),
    ("x", X),
    ("  x  ", X),
    ("+x", X),
    ("-x**2", -(X ** 2)),  # ** binds tighter than unary minus, as in Python
    ("2**-1*x", X / 2),
    ("x**x", X ** X),
    ("1e-3*x + 1_000", sp.Float("0.001") * X + 1000),
    ("pi*x", sp.pi * X),
    ("max(x, 0) + min(x, 1)", sp.Max(X, 0) + sp.Min(X, 1)),
    ("sigmoid(x)", 1 / (1 + sp.exp(-X))),
    ("softplus(x)", sp.log(1 + sp.exp(X))),
    ("exp(x) - log(1 + x**2) + sqrt(1 + x**2) - tanh(x) + erf(x) + sin(x)*cos(x)",
     sp.exp(X) - sp.log(1 + X ** 2) + sp.sqrt(1 + X ** 2) - sp.tanh(X) + sp.erf(X)
     + sp.sin(X) * sp.cos(X)),
    ("1/3*x", X / 3),  # exact: an integer division is a Rational, not a rounded float
    ("(2**10)**2*x", 2 ** 20 * X),
])
def test_activation_formulas(text, want):
    assert sp.simplify(act(text) - want) == 0


def test_loss_formulas_use_y_and_t():
    assert loss("(y - t)**2/2") == (Y - T) ** 2 / 2
    assert loss("abs(t - y)") == sp.Abs(T - Y)
    assert loss("-t*log(y)") == -T * sp.log(Y)


def test_a_refusal_says_what_the_formula_may_use():
    """By default the variables' names; `described` replaces them (the residuals of a
    physics-informed loss name their inputs, outputs and derivatives that way)."""
    with pytest.raises(symnet.SpecError) as info:
        expressions.parse("x +", {"x": X}, source="s.toml", key="k")
    assert info.value.expected.startswith("a formula in x (not a valid formula")
    with pytest.raises(symnet.SpecError) as info:
        expressions.parse("x +", {"x": X}, source="s.toml", key="k", described="x and friends")
    assert info.value.expected.startswith("a formula in x and friends (not a valid formula")
    assert expressions.parse("x + 1", {"x": X}, described="anything") == X + 1


def test_formulas_use_the_registry_symbols():
    """x, y and t are the very symbols the registry's entries are written in."""
    assert act("x").free_symbols == {functions.x}
    assert loss("y*t").free_symbols == {functions.y, functions.t}


def test_a_custom_activation_and_loss_in_a_spec():
    spec = symnet.spec_from_dict({
        "name": "c",
        "network": {"inputs": 2, "layers": [
            {"units": 2, "activation": {"expr": " x/(1 + abs(x)) "}},
            {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "custom", "expr": "softplus(y - t)"},
    })
    a = spec.network.layers[0].activation
    assert (a.name, a.expr, a.kwargs) == ("custom", "x/(1 + abs(x))", {})
    assert a.describe() == "custom(x/(1 + abs(x)))"
    assert (spec.loss.kind, spec.loss.expr) == ("custom", "softplus(y - t)")
    hash(spec)  # still a frozen, hashable spec


def test_parsing_never_evaluates_the_text(monkeypatch):
    """The parser builds the expression from the syntax tree only: no eval, exec or sympify."""
    def refuse(*args, **kwargs):
        raise AssertionError("the formula's text was evaluated")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(sp, "sympify", refuse)
    monkeypatch.setattr(sp, "parse_expr", refuse)
    assert act("x*exp(-x**2) + sigmoid(x)") == X * sp.exp(-X ** 2) + 1 / (1 + sp.exp(-X))
    assert loss("(y - t)**2") == (Y - T) ** 2


def test_a_custom_activation_builds_without_solving(monkeypatch):
    """No sympy.solve on a formula from a spec: it can run for minutes (symnet/autodiff.py's
    doc), and so can the simplification that follows a solve there. A deterministic check in
    place of a clock: every solver and simplifier sympy has is made to fail, and the build
    must not need one."""
    spec = {
        "name": "c", "codegen": {"mode": "scalar"},
        "network": {"inputs": 2, "layers": [
            {"units": 2, "activation": {"expr": "x + sin(x)*exp(x) + x**5"}},
            {"units": 2, "activation": {"expr": "x/2*(1 + tanh(0.8*(x + 0.04*x**3)))"}}]},
        "loss": {"kind": "mse"},
    }

    def refuse(*args, **kwargs):
        raise AssertionError("a solver or simplifier ran on a formula from a spec")

    import importlib

    modules = [sp] + [importlib.import_module(f"sympy.{name}") for name in (
        "solvers.solvers", "solvers.solveset", "simplify.simplify", "polys.polytools")]
    for module in modules:
        for name in ("solve", "solveset", "nsolve", "nonlinsolve", "linsolve", "simplify",
                     "factor"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)
    assert "def _forward" in symnet.build(spec).source


# ----------------------------------------------------------------------------------------
# what is refused: at least 20 hostile or malformed formulas, each one line naming the key

HOSTILE = [
    # code execution and escape attempts
    ("__import__(os)", "the function '__import__' is not allowed"),
    ("__import__('os').system('touch pwned')", "found"),
    ("eval(x)", "the function 'eval' is not allowed"),
    ("exec(x)", "the function 'exec' is not allowed"),
    ("open(x)", "the function 'open' is not allowed"),
    ("getattr(x, x)", "the function 'getattr' is not allowed"),
    ("globals()", "the function 'globals' is not allowed"),
    ("x.__class__", "attribute access"),
    ("x.__class__.__mro__", "attribute access"),
    ("sigmoid.__globals__", "attribute access"),
    ("(1).real", "attribute access"),
    ("__builtins__", "the name '__builtins__' is not allowed"),
    ("os", "the name 'os' is not allowed"),
    ("x(1)", "the function 'x' is not allowed"),
    ("exp", "the function 'exp' must be called"),
    ("lambda: x", "found ':'"),
    ("[c for c in x]", "found '['"),
    ("x[0]", "found '['"),
    ("(x, x)", "tuples"),
    ("x if x else 1", "conditional expressions"),
    ("x and 1", "and/or"),
    ("not x", "the operator Not"),
    ("x // 2", "the operator FloorDiv"),
    ("exp(*x)", "takes no *arguments"),
    ("exp(x, x)", "exp() takes 1 argument, got 2"),
    ("max(x)", "max() takes 2 arguments, got 1"),
    ("exp()", "exp() takes 1 argument, got 0"),
    ("exp(x=1)", "found '='"),
    ("'x'", "found"),
    ("x # comment", "found '#'"),
    ("x\n+ 1", "found '\\n'"),
    ("ｘ", "found"),  # a full-width x: Python would normalise it to x
    ("True*x", "the constant bool True"),
    ("None", "the constant NoneType None"),
    ("1j*x", "the constant complex"),
    # resource exhaustion
    ("10**10**10", "exponents must be at most 64"),
    ("2**100000", "exponents must be at most 64"),
    ("x**1000", "exponents must be at most 64"),
    ("(10**15)**64*x", "not a finite real number"),
    ("exp(exp(exp(exp(10))))", "not a finite real number"),
    ("9" * 400 + "*x", "at most 1e+15 in magnitude"),
    ("1e400*x", "at most 1e+15 in magnitude"),
    ("x*" * 600 + "x", f"at most {MAX_LENGTH} characters"),
    ("-" * (MAX_DEPTH + 1) + "x", f"nested more than {MAX_DEPTH} deep"),
    ("exp(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1), f"nested more than {MAX_DEPTH}"),
    ("(" * 300 + "x" + ")" * 300, "not a valid formula"),
    # not a real, finite formula
    ("x/0", "not a finite real formula"),
    ("log(0)*x", "not a finite real number"),
    ("sqrt(-1)*x", "not a finite real number"),
    ("(-8)**(1/3)*x", "not a finite real number"),
    ("", "the formula is empty"),
    ("   ", "the formula is empty"),
    ("x +", "not a valid formula"),
    (3, "the formula must be a string"),
    (None, "the formula must be a string"),
]


def test_the_corpus_is_large():
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("text, reason", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_formulas_are_refused(text, reason):
    with pytest.raises(symnet.SpecError) as info:
        act(text)
    message = str(info.value)
    assert message.startswith("spec.toml: network.layers[0].activation.expr: expected a "
                              "formula in x (")
    assert reason in message
    assert message.isprintable() and len(message) < 600
    assert info.value.key == "network.layers[0].activation.expr"


def test_loss_formulas_may_not_use_x():
    with pytest.raises(symnet.SpecError, match="the name 'x' is not allowed: use y, t, pi"):
        loss("(x - t)**2")
    with pytest.raises(symnet.SpecError, match="the name 't' is not allowed: use x, pi"):
        act("x - t")


def test_refusals_take_bounded_work():
    """Each hostile formula is refused after a bounded amount of work, counted in Python
    function calls (deterministic, unlike a clock): a sympy simplify or solve, even of a
    small expression, or an unbounded recursion would take orders of magnitude more.
    (Arithmetic on constants is on floats, and exponents are checked before any power is
    taken, so no single C-level call can hang.)"""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event == "call":
            calls += 1

    work = {}
    for text, _ in HOSTILE:
        calls = 0
        sys.setprofile(count)
        try:
            with pytest.raises(symnet.SpecError):
                act(text)
        finally:
            sys.setprofile(None)
        work[repr(text)[:60]] = calls
    # at most about 600 calls a formula on 2026-12-04 (210 on average); sympy.simplify of
    # exp(x)/(1 + exp(x)) or (x**2 - 1)/(x - 1) takes 2*10^4 and more, a solve 6*10^4
    assert all(0 < n < 5000 for n in work.values()), max(work.items(), key=lambda kv: kv[1])


@pytest.mark.parametrize("where", ["activation", "loss"])
def test_a_payload_that_would_create_a_file_does_not(where, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    payloads = [
        f"__import__('pathlib').Path('{marker}').touch()",
        "open(pwned, w)",  # bare names: no quotes needed to reach open() if names leaked
        "__import__(pathlib).Path(pwned).touch()",
        "exec(open_pwned)",
        f"x.__class__.__init__.__globals__['__builtins__']['open']('{marker}', 'w')",
    ]
    for text in payloads:
        network = {"inputs": 1, "layers": [{"units": 2, "activation": "tanh"},
                                           {"units": 1, "activation": "linear"}]}
        loss_table = {"kind": "mse"}
        if where == "activation":
            network["layers"][0]["activation"] = {"expr": text}
        else:
            loss_table = {"kind": "custom", "expr": text}
        data = {"name": "payload", "network": network, "loss": loss_table}
        with pytest.raises(symnet.SpecError) as info:
            symnet.compile(data, tmp_path / "out")
        assert info.value.key.endswith("expr")
    assert not marker.exists()
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# What the float32 printer's helpers stand for (the generated module's own vectorizable
# versions, tested against NumPy in test_fastmath32.py): here NumPy's, in float32
FLOAT32_HELPERS = {"_exp32": np.exp, "_log32": np.log, "_tanh32": np.tanh,
                   "_softplus32": lambda u: np.logaddexp(np.float32(0), u)}


def test_the_grammar_is_what_the_printer_can_print():
    """Every function a formula may call prints, and so does its derivative, as Python that
    computes the formula's value: evaluated at a few points, it equals sympy's own value."""
    from symnet.codegen.printer import NumbaPrinter

    for name, (arity, _, _) in expressions.FUNCTIONS.items():
        text = f"{name}(x)" if arity == 1 else f"{name}(x, 1 - x)"
        e = act(text)
        for dtype, rtol in (("float64", 1e-13), ("float32", 2e-6)):
            for expr in (e, sp.diff(e, X)):
                code = NumbaPrinter(dtype).doprint(expr)
                # Python that calls numpy, math or the module's own helpers only, on x
                names = {n.id for n in ast.walk(ast.parse(code, mode="eval"))
                         if isinstance(n, ast.Name)}
                allowed = {"x", "np", "math", "abs", "min", "max"}
                assert names <= allowed | set(FLOAT32_HELPERS), (name, dtype, code)
                assert "x" in names or expr.is_constant(), (name, code)
                # 0.3 and 1.7: no tie of max(x, 1 - x), x > 0 for log and sqrt
                for x in (0.3, 1.7):
                    want = float(expr.subs(X, sp.Rational(str(x))).evalf(30))
                    scope = {"np": np, "math": math, **FLOAT32_HELPERS,
                             "x": getattr(np, dtype)(x)}
                    got = eval(compile(code, "<printed>", "eval"), scope)
                    assert got == pytest.approx(want, rel=rtol, abs=rtol), (name, dtype, code)
