"""Stage 4: store or recompute. A differentiated Program becomes straight-line blocks.

- ``store`` (the lecture's Eq. 6.52): the structured program (every net, out and delta kept)
  with `sympy.cse` run over forward and backward together, so every shared subexpression is
  computed once and kept in a temporary.
- ``recompute`` (Eq. 6.53): every output, the loss and every gradient is inlined into one
  expression of inputs, targets and parameters; nothing is shared, nothing is stored.

Both give the same numbers. For each block the schedule reports `sympy.count_ops` of the
forward part (up to the loss) and of the backward part, and how many temporaries it keeps.

Either way the derivatives with respect to the inputs and the Hessian-vector product
(symnet/tangent.py: `jacobian`, `input_grad`, `hvp`) are scheduled as `store` schedules them:
the structured block with dead lines dropped and `sympy.cse` over it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from .errors import SymnetError
from .program import Assign, Program
from .tangent import Derived, input_adjoints, input_tangents, parameter_tangents

# Inlining every gradient grows like width**depth; beyond this many parameters the
# recompute form is refused. With one hidden layer, build + first compile is about 10 s at
# 25 parameters and 20 s at 30 (benchmarks/compile_time.py, see docs/benchmarks.md).
RECOMPUTE_MAX_PARAMS = 25


# Numba compiles about 300 inlined operations a second here (5,500 took 30 s), so the
# inlined gradients are capped too (measured: see docs/benchmarks.md).
RECOMPUTE_MAX_OPS = 3000


@dataclass(frozen=True)
class Counts:
    forward_ops: int
    backward_ops: int
    temporaries: int

    @property
    def total_ops(self) -> int:
        return self.forward_ops + self.backward_ops


@dataclass(frozen=True)
class Schedule:
    # the scalar form's CSE choice, "store" or "recompute" (its [codegen] strategy; the loop
    # form's layer schedule of the same name is a symnet.checkpoint Plan)
    cse: str
    program: Program
    forward: tuple[Assign, ...]  # body computing the outputs
    loss: tuple[Assign, ...]  # body computing the outputs' loss E
    grad: tuple[Assign, ...]  # body computing E and every dE/dparam
    counts: Counts  # of the grad block as emitted
    before_cse: Counts  # of the same choice before CSE (equal for recompute)
    # the input derivatives and the Hessian-vector product (symnet/tangent.py), each block
    # with its results: jacobian's, a row of expressions per output; input_grad's and hvp's,
    # the loss E then one expression per input (per parameter)
    jacobian: Derived | None = None
    input_grad: Derived | None = None
    hvp: Derived | None = None


def schedule(program: Program, cse: str = "store", derivatives: bool = False) -> Schedule:
    """The program as straight-line blocks, by the scalar form's CSE choice `cse` (the spec's
    strategy): "store" shares every subexpression, "recompute" inlines everything. With
    `derivatives` ([codegen] derivatives), also the input derivatives and the Hessian-vector
    product, scheduled as "store" schedules."""
    if cse == "store":
        scheduled = _store(program)
    elif cse == "recompute":
        scheduled = _inline_all(program)
    else:
        raise SymnetError(f"unknown strategy {cse!r} (expected store or recompute)")
    if not derivatives:
        return scheduled
    return replace(scheduled, jacobian=derived_block(input_tangents(program)),
                   input_grad=derived_block(input_adjoints(program)),
                   hvp=derived_block(parameter_tangents(program)))


def derived_block(derived: Derived, keep=()) -> Derived:
    """Dead lines dropped (but those computing the results and `keep`), then CSE (as `store`
    does)."""
    wanted = set(keep)
    for r in derived.results:
        for e in (r if isinstance(r, tuple) else (r,)):
            wanted |= e.free_symbols
    return Derived(tuple(cse_block(eliminate_dead(list(derived.steps), wanted))),
                   derived.results)


def _results(program: Program):
    outputs = set(program.outputs)
    grads = set(program.grads.values())
    return outputs, {program.loss}, {program.loss} | grads


def _store(program: Program) -> Schedule:
    out_r, loss_r, grad_r = _results(program)
    fwd = [a for a in program.forward if a.role != "loss"]
    plain_grad = eliminate_dead(list(program.forward + program.backward), grad_r)
    return Schedule(
        cse="store",
        program=program,
        forward=tuple(cse_block(eliminate_dead(fwd, out_r))),
        loss=tuple(cse_block(eliminate_dead(list(program.forward), loss_r))),
        grad=tuple(grad := cse_block(plain_grad)),
        counts=count(grad, program.loss),
        before_cse=count(plain_grad, program.loss),
    )


def _inline_all(program: Program) -> Schedule:
    if len(program.params) > RECOMPUTE_MAX_PARAMS:
        raise SymnetError(
            f"strategy 'recompute' inlines every gradient into one expression and is limited to "
            f"{RECOMPUTE_MAX_PARAMS} parameters (this network has {len(program.params)}); "
            f"use strategy 'store'")
    inlined = inline(program)
    size = sum(sp.count_ops(inlined[g]) for g in program.grads.values())
    if size > RECOMPUTE_MAX_OPS:
        raise SymnetError(
            f"strategy 'recompute' would inline the gradients into {size} operations per sample "
            f"(the limit is {RECOMPUTE_MAX_OPS}: Numba's compile time grows with them); "
            f"use strategy 'store'")
    outs = [Assign(o, inlined[o], "out", "inlined: nothing stored") for o in program.outputs]
    loss = Assign(program.loss, inlined[program.loss], "loss", "E, inlined")
    grads = [Assign(g, inlined[g], "grad", f"dE/d{p.name}, inlined: nothing shared")
             for p, g in program.grads.items()]
    grad = [loss] + grads
    counts = count(grad, program.loss)
    return Schedule(cse="recompute", program=program, forward=tuple(outs), loss=(loss,),
                    grad=tuple(grad), counts=counts, before_cse=counts)


def inline(program: Program) -> dict[sp.Symbol, sp.Expr]:
    """Every named value as one expression of inputs, targets and parameters."""
    defs: dict[sp.Symbol, sp.Expr] = {}
    for a in program.forward + program.backward:
        defs[a.lhs] = a.rhs.xreplace(defs)
    return defs


def eliminate_dead(steps: list[Assign], results: set[sp.Symbol]) -> list[Assign]:
    """Drop assignments nothing downstream (nor the results) uses."""
    live = set(results)
    kept = []
    for a in reversed(steps):
        if a.lhs in live:
            kept.append(a)
            live |= a.rhs.free_symbols
    return kept[::-1]


def cse_block(steps: list[Assign]) -> list[Assign]:
    """sympy.cse over all right-hand sides together; each temporary is placed just before
    its first use, so the block stays in dependency order. A step whose whole right-hand side
    is one temporary gives that temporary its name instead of copying it."""
    if not steps:
        return []
    names = sp.numbered_symbols("cse", real=True)
    replacements, reduced = sp.cse([a.rhs for a in steps], symbols=names, order="none")
    temps = dict(replacements)
    alias: dict[sp.Symbol, Assign] = {}
    for a, rhs in zip(steps, reduced):
        if rhs in temps and rhs not in alias:
            alias[rhs] = a
    renamed = {c: a.lhs for c, a in alias.items()}
    # how each temporary is referenced (its own name or its alias) -> (order, rhs, alias step)
    pending = {}
    for i, (c, d) in enumerate(replacements):
        pending[renamed.get(c, c)] = (i, d.xreplace(renamed), alias.get(c))
    placed: set[sp.Symbol] = set()
    out: list[Assign] = []

    def need(expr):
        for sym in sorted(expr.free_symbols & pending.keys(), key=lambda q: pending[q][0]):
            if sym in placed:
                continue
            placed.add(sym)
            _, d, a = pending[sym]
            need(d)
            out.append(Assign(sym, d, a.role, a.comment, a.layer) if a is not None
                       else Assign(sym, d, "temp", "shared subexpression (CSE)"))

    for a, rhs in zip(steps, reduced):
        need(rhs.xreplace(renamed))
        if a.lhs not in pending:
            out.append(Assign(a.lhs, rhs.xreplace(renamed), a.role, a.comment, a.layer))
    return out


def count(steps, loss: sp.Symbol) -> Counts:
    forward = backward = temps = 0
    in_backward = False
    for a in steps:
        ops = sp.count_ops(a.rhs)
        if in_backward:
            backward += ops
        else:
            forward += ops
        if a.lhs == loss:
            in_backward = True
        if a.role not in ("grad", "loss"):
            temps += 1
    return Counts(forward, backward, temps)
