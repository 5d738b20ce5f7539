"""The CPU loop form, size-generic: a kernel file whose text depends on the kinds of layers,
not on their widths or depth, and the tables that describe one network to it.

`kernel_source` renders templates/cpu/kernels.py.jinja: one branch per kind of hidden
activation (its f and f', printed), the output block (printed per output unit), the loss and
the dtype. Everything that changes with the widths, the depth, the learning rate or the
optimizer (its update rule and numbers: the step is the gemm file's) is a table that the
generated module passes at run time (`render_module`). The kernel file is named by the
SHA-256 of its text, so every network of the same kinds imports the same file and Numba
compiles it once per machine.

What a module needs to know of its kernel file is a `KernelInfo`: its name and each kind's
printed formulas. It is saved as JSON beside the kernel file, under a key computed from the
spec without sympy (`kinds_key`), so that the next network of the same kinds (a sweep's next
point, another worker) is rendered without lowering or differentiating anything.

A network whose products all run through np.dot (no layer narrow enough for `_gemm`) has a
kernel file without `_gemm`; it takes the one of its kinds with `_gemm` instead when only that
one is on disk (`load_info`): with every GEMM column 0 that file runs np.dot alone, so a sweep
whose widths cross GEMM_MAX (64 wide, then 128) compiles one kernel file, not two.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from symnet.checkpoint import Buffer, Plan, plan, widths
from symnet.files import write_if_changed
from symnet.spec import Spec

from ..context import FASTMATH32, INNER_OPTIONS, OutputBlockContext, module_context
from ..lines import _X
from ..loop import DecayCode, decay_code, output_block_fields, reads, used_symbols
from ..writer import generator_sha256, render
from .checkpoint import PlanSummary, plan_rows
from .config import one_thread_rows, update_rule
from .context import CpuModuleContext, cpu_module_fields
from .gemm import gemm_flags, gemm_source, may_use_gemm

KERNEL_PREFIX = "symnet_kernels_"
INFO_PREFIX = "symnet_kinds_"
# layout's columns (the kernel file names them too)
COLUMNS = ("UNITS", "UNITS_IN", "W_AT", "B_AT", "BIAS", "ACT", "GEMM_FORWARD",
           "GEMM_BACKWARD", "DELTA_AT", "WITH_NET")
_COLUMN = {name: i for i, name in enumerate(COLUMNS)}
BIAS_CODES = {"none": 0, "per_unit": 1, "shared": 2}


@dataclass(frozen=True)
class ActivationKind:
    activation: str  # described, e.g. "tanh" or "leaky_relu(alpha=0.2)"
    formula: str  # f in x, for comments
    out: str  # f(z), printed
    derivative: str  # f'(z) in y and/or z, printed
    uses_z: bool
    uses_y: bool
    second: str = ""  # f''(z) in y and/or z, printed (the Hessian-vector product)
    second_uses_z: bool = False
    second_uses_y: bool = False


@dataclass(frozen=True)
class KernelInfo:
    """What a generated module needs to know of its kernel file."""

    name: str  # the kernel file's module name
    kinds: tuple[ActivationKind, ...]  # the branches, in order
    kind_of: dict[str, int]  # each hidden activation (described) -> its branch
    loss_formula: str
    # the weight decay, printed (DecayCode's two halves; two strings, as the JSON has them)
    weight_decay: str | None  # lambda*w^2 for one weight w; None without decay
    weight_decay_grad: str | None  # its gradient

    @property
    def decay_code(self) -> DecayCode | None:
        """The weight decay as the loop form's templates read it."""
        if self.weight_decay is None:
            return None
        return DecayCode(self.weight_decay, self.weight_decay_grad)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KernelInfo:
        data = json.loads(text)
        kinds = tuple(ActivationKind(**k) for k in data.pop("kinds"))
        return cls(kinds=kinds, **data)


def _kinds(program, printer) -> tuple[tuple[ActivationKind, ...], dict[str, int]]:
    """The hidden layers' kinds of activation, each once, in a canonical order (by printed
    code), so that two networks with the same kinds share one kernel file."""
    by_code: dict[tuple[str, str], ActivationKind] = {}
    described: dict[str, tuple[str, str]] = {}
    for L in program.layers[:-1]:
        d = L.derivative
        kind = ActivationKind(L.activation, L.formula, printer.doprint(L.out),
                              printer.doprint(d), *reads(d), printer.doprint(L.second),
                              *reads(L.second))
        key = (kind.out, kind.derivative)
        by_code.setdefault(key, kind)
        described[L.activation] = key
    order = sorted(by_code)
    return (tuple(by_code[key] for key in order),
            {act: order.index(key) for act, key in described.items()})


@dataclass(frozen=True)
class NetLoads:
    """The output layer's nets that each block of its lines reads: (index, name) each."""

    forward: list[tuple[int, str]]  # read by the forward lines (outputs, loss)
    grad: list[tuple[int, str]]  # read by the gradient lines (deltas)


@dataclass(frozen=True, kw_only=True)
class KernelFileContext(OutputBlockContext):
    """The CPU loop form's kernel file (templates/cpu/kernels.py.jinja): the kinds of layers,
    the output block and the loss; no width, depth, optimizer or number that the module's
    tables carry (the optimizer's step is the gemm file's, its rule a number in hyper)."""

    version: str  # symnet's version
    dtype: str  # the kernels' dtype: "float64" or "float32"
    njit: str  # the kernels' @njit options
    fastmath32: str  # the float32 kernels' fastmath flags (templates/cpu/fastmath32.jinja)
    inner: str  # more @njit options for a function only compiled code calls (INNER_OPTIONS)
    helpers_called: bool  # float32: the output block calls the helpers rather than inline them
    fastmath64: bool  # float64: the hidden layers call _exp64 or _tanh64 (cpu/fastmath64.jinja)
    zero: str  # 0 printed in the kernel dtype
    mean: bool  # the loss is the batch's mean (else its sum)
    reduction: str  # over the batch: "mean" or "sum"
    metric_kind: int  # fit's validation accuracy: 1 softmax, 2 sigmoid, 0 none
    n_outputs: int  # outputs per sample (the output block is printed per output unit)
    output_activation: str  # the output layer's activation, described
    kinds: tuple[ActivationKind, ...]  # the hidden layers' kinds: one branch each
    uses_gemm: bool  # some product of the network may run through _gemm (and fit's team)
    gemm_module: str  # the gemm file's module name (codegen/cpu/gemm.py): every file imports it
    loss_name: str  # the per-sample loss's name in the output block
    net_loads: NetLoads  # per block of the output's lines: the nets it reads
    weight_decay: DecayCode | None  # lambda*w^2 and its gradient, printed; None: no decay
    uses_math: bool  # the printed code calls the math module (erf): the file imports it


def kernel_file_context(spec: Spec, program, *,
                        version: str) -> tuple[KernelFileContext, dict[str, int]]:
    """The kernel file's context for the network's kinds (a LoopProgram), and each hidden
    activation's branch (KernelInfo.kind_of)."""
    from ..printer import NumbaPrinter

    # float64: the hidden layers' exp and tanh by the file's own vectorizable functions
    printer = NumbaPrinter(spec.codegen.dtype, vector64=True)
    # the output block runs once per sample and output unit: it calls the float32 helpers
    # rather than inlining each call (seconds of compile time for a softmax over 10 outputs)
    called = NumbaPrinter(spec.codegen.dtype, inline=False)
    module = module_context(spec, version=version, spec_file="", mode="loop")
    out = program.output
    kinds, kind_of = _kinds(program, printer)
    weight_decay = decay_code(program, printer, symbolic=True)
    return KernelFileContext(
        version=version,
        dtype=module.dtype,
        njit=module.njit,
        fastmath32=FASTMATH32,
        inner=INNER_OPTIONS,
        helpers_called=spec.codegen.dtype == "float32",
        fastmath64=printer.calls_float64_helpers,
        zero=module.zero,
        mean=module.mean,
        reduction=module.reduction,
        metric_kind=module.metric_kind,
        n_outputs=spec.network.outputs,
        output_activation=program.layers[-1].activation,
        kinds=kinds,
        uses_gemm=uses_gemm(spec),
        gemm_module=gemm_source(version)[0],
        # lambda stays `lam`, read from hyper: every value of the weight decay shares the file
        **{**output_block_fields(program, called),
           "loss_formula": program.symbolic_loss_formula},
        loss_name=out.loss.name,
        net_loads=NetLoads(forward=used_symbols(out.forward, out.nets),
                           grad=used_symbols(out.grad_steps, out.nets)),
        weight_decay=weight_decay,
        # the printers record the modules their code calls: math for erf
        uses_math=any("math" in p.module_imports for p in (printer, called)),
    ), kind_of


def kernel_source(spec: Spec, program, *, version: str) -> tuple[KernelInfo, str]:
    """The kernel file for the network's kinds (a LoopProgram from symnet.loop.lower_loop),
    and its KernelInfo. Nothing in the text depends on the widths (but the output layer's),
    the depth, the learning rate, the optimizer or the weight decay's lambda."""
    ctx, kind_of = kernel_file_context(spec, program, version=version)
    text = render("cpu/kernels.py.jinja", ctx)
    name = KERNEL_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]
    decay = ctx.weight_decay
    return KernelInfo(name, ctx.kinds, kind_of, program.symbolic_loss_formula,
                      decay and decay.penalty, decay and decay.grad), text


# ---------------------------------------------------------------------------------------------
# KernelInfo on disk, keyed without sympy


def matrix_products(spec: Spec) -> tuple[int, int]:
    """How many of the network's matrix products run through _gemm, and how many through
    np.dot: per layer its forward product and dE/dW, and delta<l-1> but for layer 1."""
    flags = []
    for i, (forward, backward) in enumerate(gemm_flags(spec), start=1):
        flags += [forward, backward] + ([backward] if i > 1 else [])
    return sum(flags), len(flags) - sum(flags)


def uses_gemm(spec: Spec) -> bool:
    """Whether the kernel file imports the gemm file: some product of the network may run
    through _gemm on this machine (codegen/cpu/gemm.py, `may_use_gemm`)."""
    return may_use_gemm(spec)


def support_files(spec: Spec, version: str) -> tuple[tuple[str, str], ...]:
    """The files the network's kernel file imports, as (module name, text): the gemm file
    (_gemm for narrow layers, fit's team, and every kernel file's optimizer step)."""
    return (gemm_source(version),)


def kinds_key(spec: Spec, version: str, gemm: bool | None = None) -> str:
    """What decides the kernel file's text, from the spec alone (no sympy): the generator,
    the dtype, the hidden activations, the output layer, the loss and whether _gemm is needed
    (`gemm`: that of the variant with or without it; None: the network's own); not the
    widths, the depth, the optimizer or any number the tables carry."""
    layers = spec.network.layers
    key = {
        "version": version,
        "generator": generator_sha256(),
        "dtype": spec.codegen.dtype,
        "hidden": sorted({layer.activation.describe() for layer in layers[:-1]}),
        "output": [layers[-1].activation.describe(), layers[-1].units],
        "loss": [spec.loss.kind, spec.loss.reduction, repr(spec.loss.expr),
                 bool(spec.loss.weight_decay)],  # with or without; its value is in hyper
        "gemm": uses_gemm(spec) if gemm is None else gemm,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def info_path(out_dir: str | os.PathLike, spec: Spec, version: str,
              gemm: bool | None = None) -> Path:
    return Path(out_dir) / f"{INFO_PREFIX}{kinds_key(spec, version, gemm)}.json"


def load_info(out_dir: str | os.PathLike, spec: Spec, version: str) -> KernelInfo | None:
    """The KernelInfo saved for the spec's kinds in out_dir, if any (and its kernel file is
    there); None otherwise, or when the file cannot be read as one. A network that needs no
    _gemm takes the variant of its kinds with _gemm when its own is not there (the module
    docstring): its GEMM columns are 0, so that file runs the same products through np.dot."""
    info = _read_info(info_path(out_dir, spec, version), out_dir, spec)
    if info is None and not uses_gemm(spec):
        info = _read_info(info_path(out_dir, spec, version, gemm=True), out_dir, spec)
    return info


def _read_info(path: Path, out_dir: str | os.PathLike, spec: Spec) -> KernelInfo | None:
    try:
        info = KernelInfo.from_json(path.read_text("utf-8"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    hidden = {layer.activation.describe() for layer in spec.network.layers[:-1]}
    if not info.name.startswith(KERNEL_PREFIX) or not info.name[len(KERNEL_PREFIX):].isalnum() \
            or not hidden <= set(info.kind_of) \
            or not all(0 <= i < len(info.kinds) for i in info.kind_of.values()) \
            or not (Path(out_dir) / f"{info.name}.py").is_file():
        return None
    return info


def save_info(out_dir: str | os.PathLike, spec: Spec, version: str, info: KernelInfo) -> None:
    write_if_changed(info_path(out_dir, spec, version), info.to_json())


# ---------------------------------------------------------------------------------------------
# the generated module: the network as tables


def with_net(spec: Spec, info: KernelInfo) -> tuple[bool, ...]:
    """Per layer 1..L: whether its state keeps net (its activation's f' reads it)."""
    layers = spec.network.layers
    return tuple(i < len(layers) - 1
                 and info.kinds[info.kind_of[layer.activation.describe()]].uses_z
                 for i, layer in enumerate(layers))


def network_plan(spec: Spec, info: KernelInfo) -> Plan:
    """The gradient's schedule (the spec's strategy) for this network. ValueError for a
    byte budget that nothing fits."""
    import numpy as np

    itemsize = np.dtype(spec.codegen.dtype).itemsize
    return plan(spec.codegen.strategy, widths(spec), with_net(spec, info), itemsize)


@dataclass(frozen=True)
class TableRow:
    values: tuple[int, ...]
    comment: str


@dataclass(frozen=True)
class LayerDoc:
    number: int
    role: str
    activation: str
    kind: int | None
    units: int
    units_in: int
    bias: str
    source: str
    out: str  # f(net) in the layer's names, "" for the output layer
    prev_derivative: str  # f' of the layer before, printed
    product: str  # which kernel runs its matrix products


def team_rows_max(layout: list[TableRow]) -> tuple[int | None, str]:
    """The most rows of a batch one thread of fit's team may take: every product left on
    np.dot then stays small enough for OpenBLAS to run it on one thread (one_thread_rows).
    None where every product runs through _gemm. Returns it and which layer sets it."""
    bound, why = None, ""
    for number, row in enumerate(layout[1:], start=1):
        units, units_in, g_f, g_b = (row.values[_COLUMN[c]] for c in
                                     ("UNITS", "UNITS_IN", "GEMM_FORWARD", "GEMM_BACKWARD"))
        if g_f and g_b:
            continue
        rows = max(1, one_thread_rows(units, units_in))
        if bound is None or rows < bound:
            bound = rows
            why = f"layer {number}'s {units} x {units_in} products on np.dot"
    return bound, why


def forward_plan(spec: Spec, nets: tuple[bool, ...]) -> tuple[list[TableRow], int]:
    """The plan of forward and loss: each hidden layer from the state before it into one of
    two slots in turn, then the output layer (action 2). Returns the rows and the arena's
    values per sample."""
    layers = spec.network.layers
    depth = len(layers)
    slot = max((layer.units * (2 if nets[i] else 1) for i, layer in enumerate(layers[:-1])),
               default=0)
    rows = []
    src = -1
    for number in range(1, depth):
        dst = slot * ((number - 1) % 2)
        rows.append(TableRow((0, number, src, dst),
                             f"forward {number}: out{number - 1} in {src} -> "
                             f"out{number} in {dst}"))
        src = dst
    out_at = 2 * slot if depth > 1 else 0
    rows.append(TableRow((2, depth, src, out_at),
                         f"output {depth}: out{depth - 1} in {src} -> its outputs or loss"))
    return rows, out_at + layers[-1].units


@dataclass(frozen=True)
class LoopTables:
    """The network as the kernel file reads it (templates/cpu/loop_tables.jinja)."""

    layout: list[TableRow]  # per layer (row 0 unused): its COLUMNS
    plan: list[TableRow]  # the gradient's schedule: (op, layer, src, dst) per step
    arena: int  # the backward arena's values per sample
    forward_plan: list[TableRow]  # forward and loss: (action, layer, src, dst) per step
    forward_arena: int  # the forward arena's values per sample
    segments: list[TableRow]  # per parameter array: (offset in theta, size, updated)
    hyper: tuple[float, ...]  # the optimizer's and the schedule's numbers, MIN_DELTA, LAM, RULE
    n_theta: int  # theta's length: all the parameters, flat
    offsets: dict[str, tuple[int, int]]  # per parameter array: (offset in theta, size)
    team_rows_max: int | None  # a fit thread's most rows (team_rows_max); None: no bound
    team_rows_max_why: str  # the product that sets it


@dataclass(frozen=True, kw_only=True)
class CpuLoopContext(CpuModuleContext):
    """The CPU loop form's module: the network as tables for its kernel file."""

    kernel: str  # the kernel file's module name (KernelInfo.name)
    kernel_dir_literal: str  # the kernel file's other folder as a Python literal, or "None"
    tables: LoopTables  # the network as tables
    layer_docs: list[LayerDoc]  # per layer, for the module's comments
    loss_formula: str  # the per-sample loss, for comments
    weight_decay: DecayCode | None  # lambda*w^2 and its gradient, printed; None: no decay
    arena_buffers: list[Buffer]  # the arena's buffers and deltas (symnet.checkpoint), by offset
    ck_summary: PlanSummary | None  # the checkpoint schedule's figures; None: "store"


def cpu_loop_context(spec: Spec, info: KernelInfo, p: Plan, *, version: str, spec_file: str,
                     checkpoint_summary: PlanSummary | None = None,
                     kernel_dir: str | None = None) -> CpuLoopContext:
    """The CPU loop form's module context: see render_module."""
    module = module_context(spec, version=version, spec_file=spec_file, mode="loop")
    args = module.args
    layers = spec.network.layers
    depth = len(layers)
    nets = with_net(spec, info)
    offsets = {}
    at = 0
    for a in args:
        size = math.prod(a.kernel_shape)
        offsets[a.name] = (at, size)
        at += size
    delta_at = {i: p.deltas[(depth - i) % 2].offset for i in range(1, depth + 1)}
    layout = [TableRow((0,) * len(COLUMNS), "row 0 unused: layers count from 1")]
    docs = []
    units_in = spec.network.inputs
    flags = gemm_flags(spec)
    for number, layer in enumerate(layers, start=1):
        last = number == depth
        desc = layer.activation.describe()
        kind = None if last else info.kind_of[desc]
        g_f, g_b = flags[number - 1]
        b_at = offsets[f"b{number}"][0] if layer.bias != "none" else -1
        layout.append(TableRow(
            (layer.units, units_in, offsets[f"W{number}"][0], b_at, BIAS_CODES[layer.bias],
             -1 if last else kind, int(g_f), int(g_b), delta_at[number], int(nets[number - 1])),
            f"layer {number}: {layer.units} x {desc}"
            + ("" if last else f" (kind {kind})") + f", bias {layer.bias}"))
        prev = layers[number - 2].activation.describe() if number > 1 else None
        docs.append(LayerDoc(
            number, "output" if last else "hidden", desc, kind, layer.units, units_in,
            layer.bias, "X" if number == 1 else f"out{number - 1}",
            "" if last else _X.sub(f"net{number}", info.kinds[kind].formula),
            info.kinds[info.kind_of[prev]].derivative if prev is not None else "",
            "forward " + ("_gemm" if g_f else "np.dot") + ", backward "
            + ("_gemm" if g_b else "np.dot")))
        units_in = layer.units
    fplan, farena = forward_plan(spec, nets)
    tr = spec.training
    decay = tr.decay or ("none",)
    hyper = (float(tr.momentum), float(tr.beta1), float(tr.beta2), float(tr.eps),
             float({"none": 0, "step": 1, "exponential": 2}[decay[0]]),
             float(decay[1]) if decay[0] == "step" else 0.0,
             float(decay[2] if decay[0] == "step" else decay[1]) if decay[0] != "none"
             else 0.0,
             0.0,  # MIN_DELTA: set per call by fit with validation data
             float(spec.loss.weight_decay),  # LAM: the weight decay's lambda
             float(update_rule(module.optimizer_settings)))  # RULE: the update rule
    rows_max, rows_why = team_rows_max(layout)
    return CpuLoopContext(
        **{**cpu_module_fields(module),
           "uses_gemm": any(row.values[_COLUMN["GEMM_FORWARD"]]
                            or row.values[_COLUMN["GEMM_BACKWARD"]] for row in layout[1:])},
        kernel=info.name,
        kernel_dir_literal=repr(kernel_dir),
        tables=LoopTables(
            layout=layout,
            plan=[TableRow((r.op, r.layer, r.src, r.dst), r.comment) for r in plan_rows(p)],
            arena=p.arena_values,
            forward_plan=fplan,
            forward_arena=farena,
            segments=[TableRow((*offsets[a.name], int(a.updated)), a.name) for a in args],
            hyper=hyper,
            n_theta=at,
            offsets=offsets,
            team_rows_max=rows_max,
            team_rows_max_why=rows_why,
        ),
        layer_docs=docs,
        loss_formula=info.loss_formula,
        weight_decay=info.decay_code,
        arena_buffers=sorted([*p.buffers, *p.deltas], key=lambda b: b.offset),
        ck_summary=checkpoint_summary,
    )


def render_module(spec: Spec, info: KernelInfo, p: Plan, *, version: str, spec_file: str,
                  checkpoint_summary: PlanSummary | None = None,
                  kernel_dir: str | None = None) -> str:
    """The generated module of the CPU loop form: header, parameters, the network as tables
    (layout, plan, forward plan, segments, the optimizer's numbers) and the API, which calls
    the kernel file `info.name`, found beside the module or else in `kernel_dir` (an absolute
    path, recorded as KERNEL_DIR; None: beside the module only)."""
    return render("cpu/module.py.jinja", cpu_loop_context(
        spec, info, p, version=version, spec_file=spec_file,
        checkpoint_summary=checkpoint_summary, kernel_dir=kernel_dir))
