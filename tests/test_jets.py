"""symnet/jets.py: every activation's jet map (the derivative channels of out = f(net) in the
channels of net) and its adjoints, against finite differences, with no compiled code."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symnet.functions import ACTIVATIONS
from symnet.jets import OUT, Channels, channels_for, jet_map
from symnet.residuals import Derivative

ELEMENTWISE = sorted(name for name, a in ACTIVATIONS.items() if not a.layer_wide)


def _net(x, y):
    """A smooth net(x, y) with nonzero first and second derivatives, and its derivatives."""
    v = 0.3 + 0.8 * x - 0.5 * y + 0.4 * x * y + 0.3 * x * x - 0.2 * y * y
    return {"v": v, "d0": 0.8 + 0.4 * y + 0.6 * x, "d1": -0.5 + 0.4 * x - 0.4 * y,
            "d0d0": 0.6, "d0d1": 0.4, "d1d1": -0.4}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_each_activation_s_jet_is_the_derivatives_of_f_of_net(name):
    ch = Channels((0, 1), ((0, 0), (0, 1), (1, 1)))
    act = ACTIVATIONS[name]
    jm = jet_map(lambda z: act.expr(z), ch)
    syms = dict(jm.net_symbols)
    funcs = {c: sp.lambdify(list(syms.values()), e, "numpy") for c, e in jm.forward}

    def out(x, y):
        n = _net(x, y)
        return funcs["v"](*[n[c] for c in syms])

    x0, y0, h = 0.37, -0.21, 1e-4
    n = _net(x0, y0)
    got = {c: f(*[n[k] for k in syms]) for c, f in funcs.items()}
    fd = {
        "d0": (out(x0 + h, y0) - out(x0 - h, y0)) / (2 * h),
        "d1": (out(x0, y0 + h) - out(x0, y0 - h)) / (2 * h),
        "d0d0": (out(x0 + h, y0) - 2 * out(x0, y0) + out(x0 - h, y0)) / h ** 2,
        "d1d1": (out(x0, y0 + h) - 2 * out(x0, y0) + out(x0, y0 - h)) / h ** 2,
        "d0d1": (out(x0 + h, y0 + h) - out(x0 + h, y0 - h) - out(x0 - h, y0 + h)
                 + out(x0 - h, y0 - h)) / (4 * h ** 2),
    }
    for c, want in fd.items():
        assert got[c] == pytest.approx(want, rel=1e-5, abs=1e-6), (name, c)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "gelu", "softsign"])
def test_the_adjoints_are_the_jet_s_partial_derivatives(name):
    """gn_c = sum over out channels o of g_o * d out_o / d n_c: checked by perturbing each n_c
    of a random point and weighting the out channels' changes by random adjoints."""
    ch = Channels((0,), ((0, 0),))
    jm = jet_map(lambda z: ACTIVATIONS[name].expr(z), ch)
    nets, adjs = dict(jm.net_symbols), dict(jm.adjoint_symbols)
    forward = {c: sp.lambdify(list(nets.values()), e) for c, e in jm.forward}
    value = dict(jm.forward)["v"]  # where the adjoints read the out value y = f(net)
    backward = {c: sp.lambdify([*nets.values(), *adjs.values()], e.subs(OUT, value))
                for c, e in jm.backward}
    rng = np.random.default_rng(1)
    n = dict(zip(nets, rng.normal(size=len(nets))))
    g = dict(zip(adjs, rng.normal(size=len(adjs))))

    def weighted(values):
        return sum(g[o] * forward[o](*values.values()) for o in forward)

    h = 1e-6
    for c in nets:
        up, down = dict(n), dict(n)
        up[c] += h
        down[c] -= h
        fd = (weighted(up) - weighted(down)) / (2 * h)
        assert backward[c](*n.values(), *g.values()) == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_a_set_carries_the_first_order_channels_its_pairs_need():
    ch = channels_for({Derivative(0, (0, 1)), Derivative(1, ())})
    assert ch == Channels((0, 1), ((0, 1),))
    assert ch.names() == ("v", "d0", "d1", "d0d1")
    assert channels_for({Derivative(0, ())}).names() == ("v",)


# a combination with a mixed pair and unequal coefficients: dd = d0d0 + 2 d0d1 + 1/2 d1d1
COMBINATION = (((0, 0), sp.Integer(1)), ((0, 1), sp.Integer(2)), ((1, 1), sp.Rational(1, 2)))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_the_combined_channel_is_the_combination_of_the_pairs_channels(name):
    """The jet map of the channel dd, derived once for the combination, against the same
    combination of the per-pair channels' jets (each checked against finite differences
    above), at a random point whose n_dd is the combination of its pairs' nets."""
    f = ACTIVATIONS[name].expr
    pairs = jet_map(lambda z: f(z), Channels((0, 1), tuple(p for p, _ in COMBINATION)))
    combined = jet_map(lambda z: f(z), Channels((0, 1), (), COMBINATION))
    assert [c for c, _ in combined.forward] == ["v", "d0", "d1", "dd"]
    rng = np.random.default_rng(3)
    n = dict(zip(("v", "d0", "d1", "d0d0", "d0d1", "d1d1"), rng.normal(size=6)))
    n["dd"] = sum(float(c) * n[f"d{a}d{b}"] for (a, b), c in COMBINATION)

    def value(jm, channel):
        syms = dict(jm.net_symbols)
        e = dict(jm.forward)[channel]
        return float(e.subs({syms[c]: n[c] for c in syms}))

    want = sum(float(c) * value(pairs, f"d{a}d{b}") for (a, b), c in COMBINATION)
    assert value(combined, "dd") == pytest.approx(want, rel=1e-9, abs=1e-12), name
    for c in ("v", "d0", "d1"):
        assert value(combined, c) == pytest.approx(value(pairs, c), rel=1e-12, abs=1e-15)


def _terms(*residuals, points="p"):
    """ResidualTerms of formulas in inputs x, y and outputs u, v, parsed as a spec's are."""
    from symnet.residuals import ResidualTerm, _parse_text, _symbol

    out = []
    for k, text in enumerate(residuals):
        expr, uses = _parse_text(text, ("x", "y"), ("u", "v"), "<test>", f"terms[{k}]")
        out.append(ResidualTerm(f"t{k}", points, 1.0, expr, uses,
                                (_symbol("x"), _symbol("y"))))
    return out


@pytest.mark.parametrize("residuals, combination", [
    (["u_xx + u_yy + x"], {(0, 0): 1, (1, 1): 1}),
    (["sin(2*u_xx + 2*u_yy) * x", "u_y - 1"], {(0, 0): 1, (1, 1): 1}),
    (["u_xx + 2*u_xy + 3*u_yy", "(u_xx + 2*u_xy + 3*u_yy)**2 - u"],
     {(0, 0): 1, (0, 1): 2, (1, 1): 3}),
    (["u_xx + u_yy + v_xx + v_yy", "v_xx + v_yy - u"], {(0, 0): 1, (1, 1): 1}),
    (["exp(u_xx) * exp(u_yy) - u", "u_xx + u_yy"], {(0, 0): 1, (1, 1): 1}),
    (["u_xx + pi * u_yy"], {(0, 0): 1, (1, 1): np.pi}),
    (["u_xx * u_yy"], None),  # not a formula in any one combination
    (["u_xx + x * u_yy"], None),  # coefficients that are not numbers
    (["u_xx + u_yy", "u_xx - u_yy"], None),  # two combinations on one set
    (["u_xx + u_yy", "v_xx"], None),  # v reads u_xx alone
    (["u_xx"], None),  # one pair: nothing to combine
])
def test_a_set_combines_its_second_derivatives_only_when_its_terms_read_one_sum(
        residuals, combination):
    terms = _terms(*residuals)
    derivatives = {d for t in terms for _, d in t.uses}
    ch = channels_for(derivatives, terms)
    if combination is None:
        assert ch.combination == () and ch.pairs
        assert "dd" not in ch.names()
        return
    assert {p: float(c) for p, c in ch.combination} == combination
    assert ch.pairs == () and ch.names()[-1] == "dd"
    # every term is a formula in the combination: the same value at random derivatives
    from symnet.jets import combined_term

    rng = np.random.default_rng(0)
    for t in terms:
        expr, symbols = combined_term(t.expr, t.uses, ch.combination)
        values = {s: rng.uniform(0.5, 1.5) for s in t.expr.free_symbols}
        direct = float(t.expr.subs(values))
        by_output = {}
        for sym, d in t.uses:
            if d.order == 2:
                by_output[d.output] = by_output.get(d.output, 0.0) + \
                    float(dict(ch.combination)[d.inputs]) * values[sym]
        combined_values = {s: v for s, v in values.items() if s in expr.free_symbols}
        combined_values.update({symbols[o]: v for o, v in by_output.items()})
        assert float(expr.subs(combined_values)) == pytest.approx(direct, rel=1e-12)
