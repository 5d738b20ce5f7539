"""Stage 3: reverse-mode differentiation over a Program's forward assignments.

Backprop as the lecture teaches it: walk the assignments from the loss back to the inputs;
each value's adjoint dE/dv is the sum, over the values that use it, of their adjoint times
the local derivative (`sympy.diff` of the user's right-hand side). Adjoints of net values are
the lecture's deltas. Nothing is hand-written: the only derivative rules are sympy's.

Each local derivative is recorded as data, an `Edge` (value, arg, local, layer) on the
returned Program's `edges`: the backward assignments are sums over those edges, their comments
are the edges formatted (`chain_comment`), and `symnet explain` formats the same record
instead of differentiating again. Where the layer-level program already derived an edge (an
activation's f', the weight decay's gradient: `Program.known`, filled by `lower.unroll`), that
derivative is recorded as it is; the rule it was derived by is `local_derivative`, this one.

Where a local derivative of out = f(net) can be written in the stored output alone
(sigmoid' = out(1 - out), tanh' = 1 - out^2, bce's y - t), it is rewritten so: first by
replacing f(net) with out, else by substituting net = f^-1(out) and cancelling (a rational
function of out, or of exp(out)). The rewrite is kept only when it removes net and does not
cost more operations. The solve is tried only
for the registry's activations that allow it (`solve_for_output`, e.g. sigmoid): on other
formulas sympy.solve can run for minutes.

An assignment of role "shift" (softmax's max_k net_k) is treated as a constant: the values
that use it are invariant under the shift (out_k = exp(net_k - m)/sum_j exp(net_j - m)), so
its total derivative is zero and no adjoint is propagated through it, and no edges out of it
are recorded.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import sympy as sp

from .functions import ACTIVATIONS
from .functions import x as _X
from .functions import y as _Y
from .program import Assign, Edge, Program


def adjoint_name(v: sp.Symbol) -> str:
    name = v.name
    if name.startswith("net_"):
        return "delta_" + name[4:]
    return "dE_d" + name


def differentiate(program: Program) -> Program:
    """The backward assignments, and the record they are built from: one `Edge` (the local
    derivative) for each value or parameter each forward assignment uses."""
    forward = program.forward
    params = set(program.param_symbols)
    shifts = {a.lhs for a in forward if a.role == "shift"}  # constants here (module doc)
    produced = {a.lhs for a in forward} - shifts
    # values out = f(u) of one argument (shifts aside): candidates for writing f'(u) in
    # terms of out
    stored_of: dict[sp.Symbol, tuple[sp.Symbol, sp.Expr]] = {}
    for a in forward:
        if a.role in ("out", "temp") and len(a.rhs.free_symbols - shifts) == 1:
            (u,) = a.rhs.free_symbols - shifts
            stored_of[u] = (a.lhs, a.rhs)

    edges: list[Edge] = []
    into: dict[sp.Symbol, list[Edge]] = defaultdict(list)  # u -> the edges (v, u) that flow
    backward: list[Assign] = []
    for a in reversed(forward):
        v = a.lhs
        live = v == program.loss or bool(into[v])  # else v does not reach the loss
        if live and v != program.loss:
            terms = into.pop(v)
            role = "delta" if v.name.startswith("net_") else "adjoint"
            backward.append(Assign(_adjoint(v), sp.Add(*[_term(e, program.loss) for e in terms]),
                                   role, comment=chain_comment(v, terms, program.loss),
                                   layer=a.layer))
        if a.role == "shift":
            continue  # a constant here: no edges (sympy's derivative of Max took seconds)
        for u in sorted(a.rhs.free_symbols & (produced | params), key=lambda s: s.name):
            local = program.known.get((v, u))
            if local is None:
                local = local_derivative(a.rhs, u, stored_of)
            e = Edge(v, u, local, a.layer)
            edges.append(e)  # recorded whether or not it reaches the loss (explain shows all)
            if live and e.local != 0:  # else (e.g. a step activation) nothing flows through it
                into[u].append(e)

    grads = {}
    for p in program.params:
        g = sp.Symbol(f"dE_d{p.symbol.name}", real=True)
        terms = into.get(p.symbol, [])
        rhs = sp.Add(*[_term(e, program.loss) for e in terms]) if terms else sp.Integer(0)
        backward.append(Assign(g, rhs, "grad", comment=chain_comment(p.symbol, terms,
                                                                     program.loss)))
        grads[p.symbol] = g
    return program.with_backward(backward, grads, edges)


def _adjoint(v: sp.Symbol) -> sp.Symbol:
    return sp.Symbol(adjoint_name(v), real=True)


def _term(e: Edge, loss: sp.Symbol) -> sp.Expr:
    """dE/dvalue * dvalue/darg: what one edge adds to the adjoint of its arg."""
    return e.local if e.value == loss else _adjoint(e.value) * e.local


def edge_label(e: Edge, loss: sp.Symbol) -> str:
    """One edge as the generated comments write it: dE/dout_h1 * dout_h1/dnet_h1 (dout_h1/dnet_h1
    = out_h1*(1 - out_h1)); an edge of the loss is its local derivative."""
    if e.value == loss:
        return str(e.local)
    v, u = e.value.name, e.arg.name
    label = f"dE/d{v} * d{v}/d{u}"
    if e.local.free_symbols:
        label += f" (d{v}/d{u} = {e.local})"
    return label


def chain_comment(u: sp.Symbol, edges, loss: sp.Symbol) -> str:
    """The comment of dE/du, the sum over `edges` (v, u): each edge's label, without the local
    derivatives when there are several."""
    head = f"dE/d{u.name}"
    if not edges:
        return f"{head} = 0"
    if len(edges) == 1:
        return f"{head} = {edge_label(edges[0], loss)}"
    return f"{head} = " + " + ".join(edge_label(e, loss).split(" (")[0] for e in edges)


def total_derivative(edges, v: sp.Symbol, u: sp.Symbol, through=frozenset()) -> sp.Expr:
    """dv/du from the record: the sum over the paths from v to u whose inner values are all in
    `through` (e.g. a softmax's exp_k and exp_sum) of the product of their edges' locals."""
    total = sp.Integer(0)
    for e in edges:
        if e.value != v:
            continue
        if e.arg == u:
            total += e.local
        elif e.arg in through:
            total += e.local * total_derivative(edges, e.arg, u, through)
    return total


def local_derivative(expr: sp.Expr, u: sp.Symbol, stored_of=None) -> sp.Expr:
    """d expr / du, in the stored output of u where that is cheaper: the one derivative rule,
    of every edge here and of the layer-level forms (`symnet.layers`: an activation's f', the
    weight-decay term's gradient)."""
    return output_form(sp.diff(expr, u), u, stored_of or {})


def output_form(local: sp.Expr, u: sp.Symbol, stored_of) -> sp.Expr:
    """Write a derivative in the stored output of u where that is cheaper (see module doc)."""
    if u not in local.free_symbols or u not in stored_of:
        return local
    v, g = stored_of[u]
    others = sorted((local.free_symbols | g.free_symbols) - {u}, key=lambda s: s.name)
    canon = {s: sp.Symbol(f"_p{i}", real=True) for i, s in enumerate(others)}
    local_c = local.xreplace({u: _X, **canon})
    rewritten = _rewrite(local_c, g.xreplace({u: _X, **canon}))
    if rewritten is None:
        return local
    back = {c: s for s, c in canon.items()}
    back[_Y] = v
    back[_X] = u  # a partial rewrite (f(u) replaced, u left elsewhere) keeps u
    return rewritten.xreplace(back)


@cache
def _rewrite(local: sp.Expr, g: sp.Expr) -> sp.Expr | None:
    direct = local.xreplace({g: _Y})
    if _X not in direct.free_symbols:
        return direct
    # where f(x) cannot be eliminated, replacing it where it occurs still saves recomputing it
    partial = direct if sp.count_ops(direct) < sp.count_ops(local) else None
    if g.has(sp.Piecewise) or g == _X or g not in _solvable():
        return partial
    try:
        # neither sympy's check of the solutions nor its tidying of them: both call simplify,
        # whose first call imports sympy.physics.units (a tenth of a second of every cold
        # compile); each solution is checked by _inverts, and cancel tidies the result
        solutions = sp.solve(sp.Eq(_Y, g), _X, check=False, simplify=False)
    except (NotImplementedError, ValueError):
        return partial
    best = None
    for s in solutions:
        if not _inverts(g, s):
            continue
        r = _tidy(sp.factor(sp.cancel(local.xreplace({_X: s}))))
        if _X in r.free_symbols:
            continue
        # the expanded form too: softplus' = (exp(y) - 1)*exp(-y) overflows for large y,
        # its expansion 1 - exp(-y) does not (and is cheaper)
        for cand in (r, sp.expand(r)):
            if best is None or sp.count_ops(cand) < sp.count_ops(best):
                best = cand
    if best is None or sp.count_ops(best) > sp.count_ops(local):
        return partial
    return best


def _inverts(g: sp.Expr, s: sp.Expr) -> bool:
    """Whether x = s(y) solves y = g(x): at y = 1/4 and 3/4 (in the range of every
    `solve_for_output` activation), to 1e-12."""
    gap = g.xreplace({_X: s}) - _Y
    try:
        return all(abs(complex(gap.xreplace({_Y: sp.Rational(v, 4)}).evalf())) < 1e-12
                   for v in (1, 3))
    except (TypeError, ValueError, ZeroDivisionError):
        return False


@cache
def _solvable() -> frozenset:
    """The activations (in x) whose inverse sympy.solve finds quickly (`solve_for_output`)."""
    return frozenset(a.expr(_X) for a in ACTIVATIONS.values()
                     if a.solve_for_output and not a.layer_wide)


def _tidy(r: sp.Expr) -> sp.Expr:
    """-y*(y - 1) -> y*(1 - y): move a leading minus sign into a sum factor."""
    if r.is_Mul and r.could_extract_minus_sign():
        c, factors = r.as_coeff_mul()
        for i, f in enumerate(factors):
            if f.is_Add:
                return sp.Mul(-c, *factors[:i], sp.expand(-f), *factors[i + 1:])
    return r
