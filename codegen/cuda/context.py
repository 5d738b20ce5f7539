"""The CUDA backend: the same Schedule (scalar form) or LoopProgram (loop form) as the CPU
backend, printed for `numba.cuda` kernels.

On the device every parameter lives in one flat array `theta` (W1 row by row, then b1, W2,
...), and so do the gradient `G` and the optimizer's moments `M` and `V`: one offset per
parameter array, and one update kernel for all of them. This module works out those offsets,
what each kernel loads, and, in the loop form, which weight matrices are staged in shared
memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from symnet.loop import LoopProgram
from symnet.schedule import Counts, Schedule
from symnet.spec import Spec

from ..context import ModuleContext, OutputBlockContext, array_args, module_context
from ..lines import _X, Line, derivative_fields, kernel_lines
from ..loop import DecayCode, LoopLayerCode, decay_code, output_block_fields, reads
from .config import CudaConfig
from .printer import CudaPrinter

SHARED_BYTES = 48 * 1024  # static shared memory of a block, on every CUDA GPU


@dataclass(frozen=True)
class FlatArg:
    name: str  # the user's key: W1, b1
    arg: str  # the CPU kernels' name: W1, B1
    shape: tuple[int, ...]  # as the user sees it
    kernel_shape: tuple[int, ...]
    offset: int  # first element in theta
    size: int
    updated: bool


@dataclass(frozen=True)
class CudaLayer:
    code: LoopLayerCode  # the printed activation and derivative (as in the CPU loop form)
    w: int  # offset of W<l> in theta
    b: int | None  # offset of b<l> in theta, or None without a bias
    staged: bool  # W<l> is copied into shared memory
    w_shared: int  # its offset in the shared copy

    def weight(self, j: str, i: str, direction: bool = False) -> str:
        """The expression that reads W<l>[j, i]; with `direction`, the Hessian-vector
        product's direction V at W<l>[j, i] (V is laid out as theta, and never staged)."""
        units_in = self.code.units_in
        if direction:
            array, offset = "V", self.w
        else:
            array, offset = ("wsh", self.w_shared) if self.staged else ("theta", self.w)
        if j.isdigit():  # a fixed row (an output unit): one constant offset
            return f"{array}[{_plus(offset + int(j) * units_in, i)}]"
        return f"{array}[{_plus(offset, f'{j}*{units_in}')} + {i}]"

    def bias(self, j: str, direction: bool = False) -> str:
        """The expression that reads b<l>[j] (or V's element there), "" without a bias."""
        if self.b is None:
            return ""
        array = "V" if direction else "theta"
        if self.code.bias == "shared":
            return f"{array}[{self.b}]"
        if j.isdigit():
            return f"{array}[{self.b + int(j)}]"
        return f"{array}[{_plus(self.b, j)}]"


def _plus(offset: int, term: str) -> str:
    return term if offset == 0 else f"{offset} + {term}"


def flat_args(spec: Spec) -> list[FlatArg]:
    out, offset = [], 0
    for a in array_args(spec):
        size = math.prod(a.kernel_shape)
        out.append(FlatArg(a.name, a.arg, a.shape, a.kernel_shape, offset, size, a.updated))
        offset += size
    return out


def _ranges(flat: list[FlatArg]) -> list[tuple[int, int]]:
    """The updated parameters as [start, stop) ranges of theta, adjacent ones merged."""
    ranges: list[list[int]] = []
    for a in flat:
        if not a.updated:
            continue
        if ranges and ranges[-1][1] == a.offset:
            ranges[-1][1] = a.offset + a.size
        else:
            ranges.append([a.offset, a.offset + a.size])
    return [tuple(r) for r in ranges]


@dataclass(frozen=True, kw_only=True)
class CudaModuleContext(ModuleContext):
    """What the CUDA module needs besides every target's fields (templates/cuda/)."""

    module_name: str  # the generated module's name: <name>_cuda
    flat: list[FlatArg]  # the parameter arrays and their offsets in theta
    n_flat: int  # theta's length: all the parameters, flat
    updated_ranges: list[tuple[int, int]]  # the updated parameters' [start, stop) in theta
    weight_ranges: list[tuple[int, int]]  # the weight matrices' [start, stop) in theta
    tpb: int  # threads per block of the sample kernels (CudaConfig)
    max_blocks: int  # the most blocks a sample kernel launches (CudaConfig)
    reduce_threads: int  # threads per block of the reduction kernel (CudaConfig)
    reduce_blockwise: bool  # the reduction gives each accumulator a block of its own
    fused: bool  # a training step is one kernel (the last block applies the update)
    chunk: int  # accumulators reduced at a time in shared memory (CudaConfig.reduce_chunk)


def cuda_module_fields(spec: Spec, module: ModuleContext, config: CudaConfig) -> dict:
    """`module`'s fields and the CUDA module's own, to build a CudaModuleContext's subclass."""
    flat = flat_args(spec)
    n_params = sum(a.size for a in flat)
    weights = [a for a in flat if a.name.startswith("W")]
    return {
        **module.own_fields(),
        "module_name": f"{spec.name}_cuda",
        "flat": flat,
        "n_flat": n_params,
        "updated_ranges": _ranges(flat),
        "weight_ranges": [(a.offset, a.offset + a.size) for a in weights],
        "tpb": config.threads_per_block,
        "max_blocks": config.max_blocks,
        "reduce_threads": config.reduce_threads,
        "reduce_blockwise": n_params + 1 <= config.reduce_blockwise_max,
        "fused": n_params + 1 <= config.fused_max,
        "chunk": config.reduce_chunk,
    }


@dataclass(frozen=True, kw_only=True)
class CudaScalarContext(CudaModuleContext):
    """The CUDA scalar form: one thread per sample runs the lecture's lines in registers."""

    inputs: list[str]  # the input symbols' names, one per feature
    targets: list[str]  # the target symbols' names, one per output
    outputs: list[str]  # the output symbols' names
    loss: str  # the per-sample loss's symbol name
    loads: list[Line]  # each scalar parameter read from theta, its array element as comment
    grads: list[tuple[str, str, int]]  # (per-sample gradient, accumulator, index in theta)
    forward_lines: list[Line]  # the forward pass and loss, printed, with section headers
    grad_lines: list[Line]  # the backward pass, printed
    counts: Counts  # operations per sample and stored temporaries (sympy.count_ops)
    weight_decay: None  # the loop form's weight decay: the scalar form's lines have theirs
    # the input derivatives and the Hessian-vector product (symnet/tangent.py), printed
    derivatives: bool  # [codegen] derivatives: the kernels below are emitted (else stubs)
    jacobian_lines: list[Line]  # the forward pass and its tangents along each input
    jacobian_results: list[tuple[int, int, str]]  # (output k, input d, d out_k / d i_d)
    input_grad_lines: list[Line]  # forward, backward, then dE/di per input
    input_grad_results: list[str]  # dE/di_d per input d
    direction_loads: list[Line]  # v_w1 = V[0]: the direction, flat as theta
    hvp_lines: list[Line]  # forward, backward, then their R{} tangents along V
    hvp_results: list[tuple[str, str, int]]  # (per-sample R{dE/dp}, accumulator, index)


def cuda_scalar_context(spec: Spec, schedule: Schedule, *, version: str, spec_file: str,
                        config: CudaConfig | None = None) -> CudaScalarContext:
    """The unrolled form: one thread per sample runs the lecture's lines in registers."""
    config = config or CudaConfig()
    printer = CudaPrinter(spec.codegen.dtype)
    prog = schedule.program
    module = module_context(spec, version=version, spec_file=spec_file, mode="scalar")
    fields = cuda_module_fields(spec, module, config)
    by_name = {a.name: a for a in fields["flat"]}

    def flat_index(entry) -> int:
        a = by_name[entry.array]
        idx = entry.index or (0,)
        k = 0
        for i, n in zip(idx, a.kernel_shape):
            k = k * n + i
        return a.offset + k

    def where(entry) -> str:
        idx = ", ".join(map(str, entry.index)) if entry.index else ""
        return f"{entry.array}[{idx}]" if idx else f"{entry.array} (shared)"

    return CudaScalarContext(
        **{**fields, "strategy": schedule.cse},
        inputs=[s.name for s in prog.inputs],
        targets=[s.name for s in prog.targets],
        outputs=[s.name for s in prog.outputs],
        loss=prog.loss.name,
        loads=[Line(p.symbol.name, f"theta[{flat_index(p)}]", where(p)) for p in prog.params],
        grads=[(prog.grads[p.symbol].name, "g_" + p.symbol.name, flat_index(p))
               for p in prog.params],
        forward_lines=kernel_lines(schedule.forward, schedule, printer),
        grad_lines=kernel_lines(schedule.grad, schedule, printer),
        counts=schedule.counts,
        weight_decay=None,
        **derivative_fields(schedule, printer, lambda p: f"V[{flat_index(p)}]", flat_index),
    )


@dataclass(frozen=True, kw_only=True)
class CudaLoopContext(CudaModuleContext, OutputBlockContext):
    """The CUDA loop form: per-layer loops over the units, one thread per sample."""

    cuda_layers: list[CudaLayer]  # every layer, printed, with its offsets in theta
    hidden: list[CudaLayer]  # the hidden layers
    last: CudaLayer  # the output layer
    shared_n: int  # weights staged in shared memory, per block (0: none)
    loss: str  # the per-sample loss's name in the output block
    net_names: list[str]  # the output units' nets' names
    weight_decay: DecayCode | None  # lambda*w^2, its gradient and its second, printed; or None
    derivatives: bool  # jacobian, input_grad and hvp: always emitted in the loop form


def cuda_loop_context(spec: Spec, program: LoopProgram, *, version: str, spec_file: str,
                      config: CudaConfig | None = None) -> CudaLoopContext:
    """The loop form: per-layer loops over the units, one thread per sample, tiles of
    samples per block for the weight gradients."""
    config = config or CudaConfig()
    printer = CudaPrinter(spec.codegen.dtype)
    module = module_context(spec, version=version, spec_file=spec_file, mode="loop")
    fields = cuda_module_fields(spec, module, config)
    by_name = {a.name: a for a in fields["flat"]}
    itemsize = 4 if spec.codegen.dtype == "float32" else 8
    # static shared memory is at most 48 KiB a block: the weights get what the reduction
    # buffer and the tile's rows leave
    left = SHARED_BYTES - config.reduce_chunk * config.threads_per_block * itemsize \
        - 8 * config.threads_per_block - 64
    budget = max(0, min(config.shared_weights_bytes, left)) // itemsize
    layers, shared_used = [], 0
    for L in program.layers:
        code = LoopLayerCode(
            number=L.number, units=L.units, units_in=L.units_in, bias=L.bias,
            activation=L.activation, formula=_X.sub("net", L.formula),
            out=printer.doprint(L.out), derivative=printer.doprint(L.derivative),
            **dict(zip(("uses_z", "uses_y"), reads(L.derivative))),
            source="X" if L.number == 1 else f"out{L.number - 1}",
            second="" if L.second == 0 else printer.doprint(L.second),
            **dict(zip(("second_uses_z", "second_uses_y"), reads(L.second))))
        size = L.units * L.units_in
        staged = shared_used + size <= budget
        b = by_name.get(f"b{L.number}")
        layers.append(CudaLayer(code, by_name[f"W{L.number}"].offset,
                                None if b is None else b.offset, staged,
                                shared_used if staged else 0))
        if staged:
            shared_used += size
    out = program.output

    return CudaLoopContext(
        **fields,
        cuda_layers=layers,
        hidden=layers[:-1],
        last=layers[-1],
        shared_n=shared_used,
        **output_block_fields(program, printer),
        loss=out.loss.name,
        net_names=[s.name for s in out.nets],
        weight_decay=decay_code(program, printer),
        derivatives=True,
    )
