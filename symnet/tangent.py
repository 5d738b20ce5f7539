"""Stage 3, the other direction: derivatives with respect to the inputs, and along a direction
in the parameters, over a differentiated scalar `Program`.

Three passes, each a plain function from a Program to a `Derived` block (assignments and the
symbols that hold its results), built from the same local derivatives reverse mode uses:

- `input_adjoints`: dE/di_k, reverse mode one step further than `autodiff.differentiate`
  goes: the sum over the values that use input i_k of their adjoint (delta) times the local
  derivative d value / d i_k. This is dE/dX (saliency, adversarial examples).
- `input_tangents`: forward mode from the inputs. The tangent of a value v along input i_d is
  dv/di_d = sum over the arguments u of v of (dv/du) * (du/di_d), one line per value and
  direction; the tangents of the outputs are the rows of the Jacobian d out / d x.
- `parameter_tangents`: forward mode over the forward *and* backward program along a
  direction V in the parameters (Pearlmutter's R-operator, R{u} = d/dr u(theta + r V) at r = 0):
  R{dE/dtheta} is the Hessian of the per-sample loss times V, without forming the Hessian.
  The local derivatives of the backward lines (d delta / d out, ...) are taken by the same rule
  (`autodiff.local_derivative`), so each activation's second derivative appears where the
  chain rule needs it, derived by sympy, never written by hand.

Each local derivative of a forward value is the one `autodiff` recorded on `Program.edges`
(written in the stored output where that is cheaper); only edges the record does not hold
(into the inputs, out of the backward lines) are derived here. A softmax's shift m = max_k
net_k keeps a zero tangent, as it keeps a zero adjoint: nothing downstream depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sympy as sp

from .autodiff import adjoint_name, local_derivative
from .program import Assign, Program


@dataclass(frozen=True)
class Derived:
    """A straight-line block (dependency order; it reads the inputs, targets and parameters,
    and for `parameter_tangents` the direction's symbols) and where its results are."""

    steps: tuple[Assign, ...]
    results: tuple  # the results' expressions (a symbol, or 0 where a derivative vanishes)


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def _recorded(program: Program) -> dict:
    return {(e.value, e.arg): e.local for e in program.edges}


def _local(recorded: dict, step: Assign, u: sp.Symbol) -> sp.Expr:
    key = (step.lhs, u)
    return recorded[key] if key in recorded else almost_everywhere(local_derivative(step.rhs, u))


def almost_everywhere(expr: sp.Expr) -> sp.Expr:
    """The derivative where it exists: sympy differentiates sign(x) or a Heaviside step into a
    DiracDelta, which is zero everywhere but at the kink (where the derivative is undefined),
    as the Piecewise derivatives of relu and the first-order rules already are."""
    if not expr.has(sp.DiracDelta):
        return expr
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))


def tangent_steps(steps: Iterable[Assign], seeds: dict, name: Callable[[sp.Symbol], str],
                  recorded: dict, *, what: str, skip=frozenset()) -> tuple[list[Assign], dict]:
    """Forward mode over `steps`: for each step whose right-hand side uses a value with a
    tangent (the seeds' symbols to start with), the tangent of its left-hand side, named
    `name(lhs)`. Returns the new steps and every tangent (symbol -> expression; values whose
    tangent is zero are absent). `what` names the direction in the comments (d/di1, R{})."""
    tangent = dict(seeds)
    out: list[Assign] = []
    for a in steps:
        if a.lhs in skip:
            continue
        terms, labels = [], []
        for u in sorted(a.rhs.free_symbols & tangent.keys(), key=lambda s: s.name):
            local = _local(recorded, a, u)
            if local == 0:
                continue
            terms.append(local * tangent[u])
            seed = u in seeds and seeds[u] == 1  # d u/d u: the direction itself
            labels.append(f"d{a.lhs.name}/d{u.name}" if seed
                          else f"d{a.lhs.name}/d{u.name} * {what.format(u.name)}")
        if not terms:
            continue
        sym = _sym(name(a.lhs))
        out.append(Assign(sym, sp.Add(*terms), "tangent",
                          comment=f"{what.format(a.lhs.name)} = " + " + ".join(labels),
                          layer=a.layer))
        tangent[a.lhs] = sym
    return out, tangent


def _shifts(program: Program) -> frozenset:
    return frozenset(a.lhs for a in program.forward if a.role == "shift")


def input_adjoints(program: Program) -> Derived:
    """dE/di_k for every input: the backward pass, then one line per input. Results: the
    loss E, then dE/di_1, dE/di_2, ..."""
    adjoints = {a.lhs for a in program.backward}
    steps = list(program.forward + program.backward)
    results = [program.loss]
    for i in program.inputs:
        terms, labels = [], []
        for a in program.forward:
            if i not in a.rhs.free_symbols:
                continue
            local = almost_everywhere(local_derivative(a.rhs, i))
            if a.lhs == program.loss:
                terms.append(local)
                labels.append(str(local))
                continue
            adj = _sym(adjoint_name(a.lhs))
            if adj in adjoints and local != 0:
                terms.append(adj * local)
                labels.append(f"dE/d{a.lhs.name} * d{a.lhs.name}/d{i.name}")
        g = _sym(f"dE_d{i.name}")
        steps.append(Assign(g, sp.Add(*terms), "input_grad",
                            comment=f"dE/d{i.name} = " + (" + ".join(labels) or "0")))
        results.append(g)
    return Derived(tuple(steps), tuple(results))


def input_tangents(program: Program) -> Derived:
    """d out_k / d i_d for every output k and input d (forward mode, one pass per input).
    Results: a tuple per output of one expression per input (0 where it vanishes)."""
    return output_jacobian(program, program.inputs)


def output_jacobian(program: Program, leaves) -> Derived:
    """d out_k / d leaf_d for every output k and leaf d (forward mode, one pass per leaf: the
    inputs, or the loop form's output block's nets). Results: a tuple per output of one
    expression per leaf (0 where it vanishes)."""
    recorded = _recorded(program)
    forward = [a for a in program.forward if a.role != "loss"]
    steps = list(forward)
    columns = []
    for leaf in leaves:
        new, tangent = tangent_steps(
            forward, {leaf: sp.Integer(1)}, lambda v, u=leaf: f"d{v.name}_d{u.name}", recorded,
            what="d{}/d" + leaf.name, skip=_shifts(program))
        steps.extend(new)
        columns.append([tangent.get(o, sp.Integer(0)) for o in program.outputs])
    rows = tuple(tuple(col[k] for col in columns) for k in range(len(program.outputs)))
    return Derived(tuple(steps), rows)


def delta_tangents(program: Program, leaves) -> Derived:
    """The loop form's output block (a Program whose parameters are the output nets): the
    tangents R{delta_k} of its deltas dE/dnet_k along tangents R_<net> of the nets, i.e. the
    Hessian of the per-sample loss in the nets times them. `leaves`: the nets. Results: the
    loss, then R{delta_k} per net (0 where it vanishes)."""
    recorded = _recorded(program)
    steps = list(program.forward + program.backward)
    seeds = {n: _sym(f"R_{n.name}") for n in leaves}
    new, tangent = tangent_steps(steps, seeds, lambda v: f"R_{v.name}", recorded,
                                 what="R{{{}}}", skip=_shifts(program))
    return Derived(tuple(steps + new),
                   (program.loss, *(tangent.get(program.grads[n], sp.Integer(0))
                                    for n in leaves)))


def direction_symbols(program: Program) -> dict:
    """The direction V in the parameters: one symbol v_<name> per scalar parameter."""
    return {p.symbol: _sym(f"v_{p.symbol.name}") for p in program.params}


def parameter_tangents(program: Program) -> Derived:
    """R{dE/dtheta} = (the Hessian of E in the parameters) V, for the direction V of
    `direction_symbols`. Results: the loss E, then one expression per parameter (in
    `program.params`' order; 0 where it vanishes)."""
    recorded = _recorded(program)
    steps = list(program.forward + program.backward)
    new, tangent = tangent_steps(steps, direction_symbols(program),
                                 lambda v: f"R_{v.name}", recorded, what="R{{{}}}",
                                 skip=_shifts(program))
    grads = [tangent.get(program.grads[p.symbol], sp.Integer(0)) for p in program.params]
    return Derived(tuple(steps + new), (program.loss, *grads))


__all__ = ["Derived", "delta_tangents", "direction_symbols", "input_adjoints", "input_tangents",
           "output_jacobian", "parameter_tangents", "tangent_steps"]
