"""The loop form's checkpointed `_grad`: the template context for a Plan (symnet.checkpoint).

The kernel holds every per-sample value of the backward pass in one arena, allocated once
per call; the plan's actions become rows of a table `_PLAN` that the kernel runs in order.
One small `@njit` function per kind of layer (activation and bias) does a layer's forward,
its dE/dW and its delta; the table says which layer, and where its states are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symnet.checkpoint import Plan, plan
from symnet.loop import OUT, LoopProgram, Z
from symnet.spec import Spec

from .cpu import Line
from .loop import use_gemm
from .printer import NumbaPrinter


@dataclass(frozen=True)
class Kind:
    name: str  # the function's name
    doc: str
    code: str  # f(z) or f'(z) printed
    uses_z: bool
    uses_y: bool
    bias: str = "none"


@dataclass(frozen=True)
class CkLayer:
    number: int
    units: int
    units_in: int
    bias: str
    kind: Kind | None  # its activation and bias (None: the output layer)
    with_net: bool  # its state keeps net as well as out
    delta: int  # arena offset of delta<number>
    back: Kind | None  # the previous layer's f', through which delta passes back
    prev_delta: int  # arena offset of delta<number - 1>
    prev_with_net: bool


@dataclass(frozen=True)
class Row:
    op: int
    layer: int
    src: int
    dst: int
    comment: str


def with_net(program: LoopProgram) -> tuple[bool, ...]:
    """Per layer 1..L: whether its state keeps net (its derivative reads z)."""
    return tuple(L is not program.layers[-1] and Z in L.derivative.free_symbols
                 for L in program.layers)


def widths(spec: Spec) -> tuple[int, ...]:
    return (spec.network.inputs, *(layer.units for layer in spec.network.layers))


def make_plan(spec: Spec, program: LoopProgram) -> Plan:
    itemsize = np.dtype(spec.codegen.dtype).itemsize
    return plan(spec.codegen.strategy, widths(spec), with_net(program), itemsize)


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


def context(spec: Spec, program: LoopProgram, p: Plan) -> dict:
    printer = NumbaPrinter(spec.codegen.dtype)
    layers = program.layers
    depth = len(layers)
    nets = with_net(program)
    forward_kinds: dict[tuple, Kind] = {}
    back_kinds: dict[tuple, Kind] = {}
    for L in layers[:-1]:
        key = (printer.doprint(L.out), L.bias, nets[L.number - 1])
        if key not in forward_kinds:
            forward_kinds[key] = Kind(f"_layer_forward_{len(forward_kinds) + 1}",
                                      f"{L.activation}, bias {L.bias}: out = {L.formula}",
                                      key[0], key[2], False, L.bias)
        d = L.derivative
        dkey = (printer.doprint(d), Z in d.free_symbols, OUT in d.free_symbols)
        if dkey not in back_kinds:
            back_kinds[dkey] = Kind(f"_delta_back_{len(back_kinds) + 1}",
                                    f"{L.activation}: f' = {dkey[0]}", *dkey)
    delta_at = {i: p.deltas[(depth - i) % 2].offset for i in range(1, depth + 1)}
    ck_layers = []
    for L in layers:
        i = L.number
        fwd = back = None
        if L is not layers[-1]:
            fwd = forward_kinds[(printer.doprint(L.out), L.bias, nets[i - 1])]
        if i > 1:
            P = layers[i - 2]
            d = P.derivative
            back = back_kinds[(printer.doprint(d), Z in d.free_symbols,
                               OUT in d.free_symbols)]
        ck_layers.append(CkLayer(
            number=i, units=L.units, units_in=L.units_in, bias=L.bias, kind=fwd,
            with_net=nets[i - 1], delta=delta_at[i], back=back,
            prev_delta=delta_at.get(i - 1, -1), prev_with_net=i > 1 and nets[i - 2]))
    rows = plan_rows(p)
    summary = {
        "strategy": spec.codegen.strategy,
        "schedule": p.resolved,
        "forward_steps": p.forward_steps,
        "recomputations": p.recomputations,
        "slots": p.slots,
        "stored_values_per_sample": p.stored_values,
        "arena_values_per_sample": p.arena_values,
        "stored_bytes_per_sample": p.stored_bytes,
        "peak_bytes_per_sample": p.peak_bytes,
        "flops_per_sample": p.flops(),
    }
    out = program.output

    def block(steps):
        return [Line(a.lhs.name, printer.doprint(a.rhs),
                     a.comment if a.role in ("temp", "shift") else "") for a in steps]

    def used(steps, symbols):
        free = set().union(*(a.rhs.free_symbols for a in steps)) if steps else set()
        return [(k, s.name) for k, s in enumerate(symbols) if s in free]

    fk = list(forward_kinds)
    bk = list(back_kinds)
    tables = {
        "forward": [-1] + [fk.index((printer.doprint(L.out), L.bias, nets[L.number - 1]))
                           if L is not layers[-1] else -1 for L in layers],
        "back": [-1, -1] + [bk.index((printer.doprint(P.derivative),
                                      Z in P.derivative.free_symbols,
                                      OUT in P.derivative.free_symbols))
                            for P in layers[:-1]],
        "bias": [0] + [{"none": 0, "per_unit": 1, "shared": 2}[L.bias] for L in layers],
        "delta": [-1] + [delta_at[L.number] for L in layers],
        "needs_placeholder": any(L.bias == "none" for L in layers),
        # 1 where the layer's forward product, or its backward ones, run through _gemm
        "gemm_forward": [0] + [int(use_gemm(L.units, L.units_in, L.units, spec.codegen.dtype))
                               for L in layers],
        "gemm_backward": [0] + [int(use_gemm(L.units, L.units_in, L.units_in,
                                             spec.codegen.dtype)) for L in layers],
    }
    return {
        "checkpointed": True,
        "ck_tables": tables,
        "ck_forward": list(forward_kinds.values()),
        "ck_back": list(back_kinds.values()),
        "ck_out_grad": block(out.grad_steps),
        "ck_net_loads": used(out.grad_steps, out.nets),
        "ck_target_loads": used(out.grad_steps, out.targets),
        "ck_delta_names": [s.name for s in out.deltas],
        "ck_loss_name": out.loss.name,
        "ck_decay": printer.doprint(program.decay) if program.decay is not None else "",
        "ck_decay_grad": (printer.doprint(program.decay_grad)
                          if program.decay_grad is not None else ""),
        "ck_plan": p,
        "ck_rows": rows,
        "ck_summary": summary,
        "ck_buffers": sorted([*p.buffers, *p.deltas], key=lambda b: b.offset),
        "ck_layers": ck_layers,
    }
