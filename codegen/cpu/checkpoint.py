"""The loop form's schedules as tables: a Plan (symnet.checkpoint) for one network, as the
rows of the `_PLAN` table that the kernel file runs in order (codegen/cpu/kernels.py), with
offsets into the kernel's arena, and the figures the module records (`PlanSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from symnet.checkpoint import Plan
from symnet.spec import Spec


@dataclass(frozen=True)
class Row:
    op: int
    layer: int
    src: int
    dst: int
    comment: str


def plan_rows(p: Plan) -> list[Row]:
    """The plan as the kernel's table: (op, layer, src, dst) with arena offsets, -1 for X."""
    offsets = {b.name: b.offset for b in p.buffers}
    offsets["X"] = -1
    return [Row(0 if a.op == "forward" else 1, a.layer, offsets[a.src],
                offsets.get(a.dst, -1), text)
            for a, text in zip(p.actions, p.describe())]


def plan_table(p: Plan) -> np.ndarray:
    """plan_rows as the int64 array the kernel reads (`_PLAN`)."""
    return np.array([(r.op, r.layer, r.src, r.dst) for r in plan_rows(p)],
                    dtype=np.int64).reshape(-1, 4)


@dataclass(frozen=True)
class PlanSummary:
    """The figures of a plan that a generated module records as CHECKPOINT_PLAN (a dict of
    these fields, in this order) and `symnet compile` prints."""

    strategy: str  # the spec's [codegen] strategy
    schedule: str  # what it resolved to for this network, e.g. "checkpoint:2"
    forward_steps: int  # evaluations of hidden layers, recomputations included
    recomputations: int  # of them, recomputations
    slots: int  # checkpoint slots
    stored_values_per_sample: int
    arena_values_per_sample: int
    stored_bytes_per_sample: int
    peak_bytes_per_sample: int  # with the deltas
    flops_per_sample: int

    def items(self) -> list[tuple[str, object]]:
        """(name, value) per field, in order: CHECKPOINT_PLAN's entries."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


def plan_summary(spec: Spec, p: Plan) -> PlanSummary:
    """The figures of a plan that a generated module records as CHECKPOINT_PLAN."""
    return PlanSummary(
        strategy=spec.codegen.strategy,
        schedule=p.resolved,
        forward_steps=p.forward_steps,
        recomputations=p.recomputations,
        slots=p.slots,
        stored_values_per_sample=p.stored_values,
        arena_values_per_sample=p.arena_values,
        stored_bytes_per_sample=p.stored_bytes,
        peak_bytes_per_sample=p.peak_bytes,
        flops_per_sample=p.flops(),
    )
