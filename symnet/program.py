"""The intermediate representation shared by lowering, differentiation and scheduling.

A `Program` is the network for one sample in scalar form: an ordered list of assignments
(`Assign`), each giving one named value (net_h1, out_h1, E, delta_o1, ...) as a sympy
expression of earlier names, inputs, targets and parameters. Passes take a Program and
return a new one; none of them mutate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp


@dataclass(frozen=True)
class Assign:
    lhs: sp.Symbol
    rhs: sp.Expr
    role: str  # "net" | "out" | "loss" | "adjoint" | "delta" | "grad" | "temp"
    comment: str = ""  # the math, as the lecture writes it
    layer: int = 0  # 1-based layer the value belongs to (0: none)


@dataclass(frozen=True)
class Edge:
    """One edge of the chain rule, as reverse mode records it: `value` is an assignment's
    left-hand side, `arg` one of the values or parameters its right-hand side uses, and `local`
    the local derivative d value / d arg (a `sympy.diff`, in the stored output where autodiff
    rewrote it so). The generated comments and `symnet explain` format these."""

    value: sp.Symbol
    arg: sp.Symbol
    local: sp.Expr
    layer: int = 0  # the layer of `value` (0: none, e.g. the loss)


@dataclass(frozen=True)
class ParamEntry:
    """One scalar parameter: its symbol, the array it lives in and its index there."""

    symbol: sp.Symbol
    array: str  # "W1", "b1", ...
    index: tuple[int, ...]  # () for a shared bias


@dataclass(frozen=True)
class LayerInfo:
    number: int  # 1-based
    role: str  # "hidden" | "output"
    activation: str  # e.g. "sigmoid" or "leaky_relu(alpha=0.2)"
    formula: str  # the activation's formula in x
    nets: tuple[sp.Symbol, ...]
    outs: tuple[sp.Symbol, ...]
    bias: str


@dataclass(frozen=True)
class Program:
    inputs: tuple[sp.Symbol, ...]
    targets: tuple[sp.Symbol, ...]
    params: tuple[ParamEntry, ...]
    layers: tuple[LayerInfo, ...]
    forward: tuple[Assign, ...]  # nets and outs, layer by layer, then the loss
    outputs: tuple[sp.Symbol, ...]
    loss: sp.Symbol  # the per-sample loss E
    loss_formula: str = ""
    backward: tuple[Assign, ...] = ()  # filled by autodiff
    grads: dict = field(default_factory=dict)  # param symbol -> symbol of dE/dparam
    edges: tuple[Edge, ...] = ()  # filled by autodiff: every local derivative of `forward`
    # (value, arg) -> d value/d arg where the layer-level program (symnet.layers) already
    # derived it: an activation's f', the weight decay's gradient. autodiff records these
    # rather than differentiating again.
    known: dict = field(default_factory=dict)

    def with_backward(self, backward, grads, edges=()) -> Program:
        return replace(self, backward=tuple(backward), grads=dict(grads), edges=tuple(edges))

    @property
    def param_symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(p.symbol for p in self.params)

    def definitions(self) -> dict[sp.Symbol, sp.Expr]:
        return {a.lhs: a.rhs for a in self.forward + self.backward}
