"""Stage 2 for residual losses: the jets each layer carries, derived by sympy.

A residual loss (symnet/residuals.py) reads derivatives of the outputs with respect to the
inputs, up to second order. Each point set carries, besides the values, one *channel* per
input direction that some derivative of its terms needs (du/dx_d), and one per second-order
pair (d2u/dx_a dx_b) its terms use: forward-mode tangents through the layers, only those the
loss names (the diagonal pairs of a Laplacian, not the full Hessian).

Through a layer, the linear part maps every channel the same way (net = a @ W.T + b for the
values, net_c = a_c @ W.T for a derivative channel c: the bias is constant). The elementwise
part is the activation's *jet map*: out = f(net), and for the channels the derivatives of
f(net(x)) with respect to x, written in net's own channels. `jet_map` derives those by sympy:
net is an undefined function of the inputs, sympy differentiates f(net(x)), and each
Derivative(net, x_a, ...) becomes the channel's symbol, so f', f'' and the chain rule are
sympy's, never written here. The backward pass needs each net channel's adjoint: the sum over
out channels of their adjoint times the partial derivative of their expression by that net
channel, again by sympy.

The residuals' own derivatives (d residual / d u_xx, ...) are taken from their expressions in
the same way, where the residuals are printed (codegen/cpu/residuals.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from .lazy import sp
from .tangent import almost_everywhere


@dataclass(frozen=True)
class Channels:
    """The derivative channels a point set carries besides the values: first-order
    directions (input indices) and second-order pairs (a <= b)."""

    directions: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]

    def names(self) -> tuple[str, ...]:
        """Every channel's name, the values first: v, d0, d1, d0d0, d0d1, ..."""
        return ("v", *(channel_name((d,)) for d in self.directions),
                *(channel_name(p) for p in self.pairs))


def channel_name(inputs: tuple[int, ...]) -> str:
    """v for the values, d0 for d/dx_0, d0d1 for d2/dx_0 dx_1."""
    return "v" if not inputs else "".join(f"d{i}" for i in inputs)


def channels_for(derivatives) -> Channels:
    """What a point set must carry for these Derivatives: each second-order pair it uses, and
    every direction that a first- or second-order derivative involves (a pair's tangents
    need both first-order channels)."""
    pairs = sorted({tuple(d.inputs) for d in derivatives if len(d.inputs) == 2})
    directions = sorted({i for d in derivatives for i in d.inputs})
    return Channels(tuple(directions), tuple(pairs))


@dataclass(frozen=True)
class JetMap:
    """An elementwise activation on every channel: `forward` gives each out channel's value
    from the net channels' symbols (`net_symbols`); `backward` each net channel's adjoint
    from the net channels, the out channels' adjoints (`adjoint_symbols`) and OUT, the out
    value f(net) where the derivatives are written in it."""

    net_symbols: tuple[tuple[str, sp.Symbol], ...]  # (channel, symbol), in Channels order
    adjoint_symbols: tuple[tuple[str, sp.Symbol], ...]  # (channel, the out channel's adjoint)
    forward: tuple[tuple[str, sp.Expr], ...]  # (channel, out channel's expression)
    backward: tuple[tuple[str, sp.Expr], ...]  # (channel, net channel's adjoint)


def _real(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


# the out value f(net) of the values channel, as the backward expressions read it
OUT = sp.Symbol("y", real=True)


def activation_jets(activation, channels: Channels) -> JetMap:
    """The jet map of a spec's `Activation` (a registry entry or a custom formula, with its
    parameters); SymnetError for a layer-wide one (softmax has no per-unit expression)."""
    from .functions import activation_def

    definition = activation_def(activation)
    return jet_map(lambda z: definition.expr(z, **activation.kwargs), channels)


def jet_map(f, channels: Channels) -> JetMap:
    """The jet map of the activation `f` (a function from a sympy expression to its
    activation's expression) for `channels`."""
    names = channels.names()
    n_inputs = 1 + max((*channels.directions, *(b for _, b in channels.pairs), -1))
    xs = sp.symbols(f"x0:{max(n_inputs, 1)}", real=True)
    net = sp.Function("net")(*xs)
    nets = {c: _real(f"n_{c}") for c in names}
    replace = {net: nets["v"]}
    for d in channels.directions:
        replace[sp.Derivative(net, xs[d])] = nets[channel_name((d,))]
    for a, b in channels.pairs:
        replace[sp.Derivative(net, xs[a], xs[b])] = nets[channel_name((a, b))]
    out = f(net)
    exprs = {"v": out}
    for d in channels.directions:
        exprs[channel_name((d,))] = sp.diff(out, xs[d])
    for a, b in channels.pairs:
        exprs[channel_name((a, b))] = sp.diff(out, xs[a], xs[b])
    # the highest derivatives first, so that d2net/dx dy is replaced before dnet/dx
    order = sorted(replace, key=lambda e: -len(getattr(e, "variables", ())))
    forward = {}
    for c in names:
        # where the derivative exists: sign' and a step's derivative are 0 but at the kink
        # (tangent.almost_everywhere; sympy may leave d sign(net)/dx unevaluated)
        e = almost_everywhere(exprs[c].replace(
            lambda d: isinstance(d, sp.Derivative) and d.expr.func in (sp.sign, sp.Heaviside),
            lambda d: sp.Integer(0)))
        for k in order:
            e = e.subs(k, replace[k])
        if e.has(sp.Derivative) or e.has(net):
            raise ValueError(f"jet_map: channel {c} kept {e}")  # a bug, not user input
        forward[c] = e
    adjoints = {c: _real(f"g_{c}") for c in names}
    backward = {c: sp.Add(*(adjoints[o] * almost_everywhere(sp.diff(forward[o], nets[c]))
                            for o in names)) for c in names}
    # where the adjoints use f(net) itself (tanh' = 1 - tanh^2), they read the stored out
    # value y instead of computing f again
    value = forward["v"]
    if value != nets["v"]:
        backward = {c: e.subs(value, OUT) for c, e in backward.items()}
    return JetMap(tuple((c, nets[c]) for c in names), tuple((c, adjoints[c]) for c in names),
                  tuple((c, forward[c]) for c in names), tuple((c, backward[c]) for c in names))

