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
