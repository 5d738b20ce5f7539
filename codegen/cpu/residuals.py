"""The CPU module of a residual loss (physics-informed training): its context.

A spec whose loss is `kind = "residuals"` (symnet/residuals.py) compiles to a module whose
kernels carry, per named set of points, the values and the derivative channels its terms
need (symnet/jets.py) through every layer: per layer one matrix product over the channels
stacked (`_gemm` where the fixed bounds allow it for that product, `gemm_products`; else
`np.dot`) and one elementwise loop that applies the activation's jet map; then each term's
residual, its square summed into the loss, and the residual's derivatives by its symbols
seeding the adjoints of the output channels; then the backward pass through the same layers
in reverse (the jet maps' adjoints, derived by sympy, and the products' transposes), which
accumulates the parameter gradient. One compiled function per point set, fused: forward,
residuals and backward in one call, without the GIL, so that the module may share a step's
points out over threads (`threads`: only where no product left on np.dot is big enough for
BLAS's own threads, `ONE_THREAD_BLAS_MAX`).

Names in the generated code: the user's names of inputs, outputs and derivatives never reach
it (they could be any identifier, `X` or `np`); each symbol is renamed (in_0, y0_v, y0_d0d0)
and the residual's text is kept in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symnet.jets import (
    COMBINED,
    OUT,
    Channels,
    JetMap,
    activation_jets,
    channel_name,
    channels_for,
    combined_term,
    describe_combination,
)
from symnet.layers import weight_decay
from symnet.residuals import point_sets, residual_terms

from ..context import module_context
from ..lines import Line
from ..loop import DecayCode
from ..printer import NumbaPrinter
from ..writer import render
from .config import one_thread_rows, use_gemm
from .context import CpuModuleContext, cpu_module_fields
from .gemm import gemm_source, has_vector_units, policy, target_cpu


@dataclass(frozen=True)
class JetCode:
    """One layer's jet map for one point set, printed: forward lines (from n_<c> to the out
    channels a_<c>) and backward lines (from n_<c> and the out channels' adjoints g_<c> to
    the net channels' adjoints gn_<c>)."""

    forward: list[Line]
    forward_out: list[tuple[str, str]]  # (channel, expression of its out value)
    backward: list[Line]
    backward_out: list[tuple[str, str]]  # (channel, expression of its net adjoint)
    reads_out: bool  # the backward lines read y, the stored out value f(net)


@dataclass(frozen=True)
class LayerJets:
    number: int
    units: int
    units_in: int
    activation: str  # described
    bias: str  # per_unit, shared or none
    w: str  # its weight array's name in the kernels: W1
    b: str  # its bias array's name: B1 ("" without a bias)
    dw: str
    db: str
    jets: JetCode
    # whether its products run through _gemm: forward (net = a @ W.T), backward (the
    # adjoint of a = gn @ W), and the weights' gradient (gn.T @ a)
    gemm_forward: bool = False
    gemm_backward: bool = False
    gemm_weights: bool = False


@dataclass(frozen=True)
class TermCode:
    name: str
    formula: str  # the residual as the spec writes it, for comments
    weight: str  # printed
    lines: list[Line]  # common subexpressions of the residual and its derivatives
    residual: str  # the residual, printed
    seeds: list[tuple[str, int, str]]  # (out channel, output index, d residual / d symbol)
    loads: list[tuple[str, str, int]]  # (name, out channel, output index) per symbol used


@dataclass(frozen=True)
class PointSetCode:
    name: str
    index: int
    channels: list[str]  # v, d0, d1, d0d0, ..., dd
    directions: list[int]  # the inputs of the first-order channels, in channel order
    pairs: list[tuple[int, int]]  # the second-order channels' input pairs, in channel order
    unit_inputs: dict[str, int]  # first-order channel -> its input (the unit vector at layer 1)
    combination: str  # what the channel dd is, for comments ("" if the set has none)
    layers: list[LayerJets]
    terms: list[TermCode]
    inputs_read: list[int]  # the inputs its terms' formulas read (x, t, ...)


@dataclass(frozen=True, kw_only=True)
class CpuResidualsContext(CpuModuleContext):
    """The residual loss's module (templates/cpu/residuals.py.jinja)."""

    point_sets: list[PointSetCode]
    forward_layers: list[LayerJets]  # the layers with the value channel alone (forward)
    input_names: list[str]  # the spec's names of the inputs (for docs and errors)
    output_names: list[str]
    terms_doc: list[tuple[str, str, str, str]]  # (name, points, weight, residual) per term
    weight_decay: DecayCode | None  # the penalty and gradient of one weight w
    uses_math: bool  # the printed code calls the math module (erf)
    fastmath64: bool  # float64: the printed code calls _exp64 or _tanh64 (cpu/fastmath64.jinja)
    gemm_module: str  # the gemm file's module name ("" without _gemm)
    threads: bool  # the points may be shared out over threads (no product on BLAS's threads)
    block: int  # _BLOCK


def _lines(exprs: list[sp.Expr], printer: NumbaPrinter,
           prefix: str) -> tuple[list[Line], list[str]]:
    """Common subexpressions of `exprs` as lines, and each expression printed over them."""
    reps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(prefix), optimizations="basic")
    return ([Line(s.name, printer.doprint(e), "") for s, e in reps],
            [printer.doprint(e) for e in reduced])


def _jet_code(jm: JetMap, printer: NumbaPrinter, number: int) -> JetCode:
    names = [c for c, _ in jm.forward]
    f_lines, f_out = _lines([e for _, e in jm.forward], printer, f"f{number}_")
    b_lines, b_out = _lines([e for _, e in jm.backward], printer, f"b{number}_")
    reads = any(OUT in e.free_symbols for _, e in jm.backward)
    return JetCode(f_lines, list(zip(names, f_out)), b_lines, list(zip(names, b_out)), reads)


BLOCK = 256  # the points a kernel call takes at once (the module's _BLOCK)


def gemm_products(units: int, units_in: int, dtype: str) -> tuple[bool, bool, bool]:
    """Whether a layer's forward product, its backward product and its weights' gradient run
    through _gemm (the loop form's product for narrow layers, codegen/cpu/gemm.py): the fixed
    bounds of codegen/cpu/config.py on the columns of each result (units; units_in; units_in),
    on a target with AVX2 and FMA, under SYMNET_GEMM "measure" (the residual module is not
    tuned: its products are the same few shapes on every point set) or "bounds"; never under
    "never"."""
    how = policy()
    if how == "never" or (how == "measure" and not has_vector_units(target_cpu()[1])):
        return False, False, False
    backward = use_gemm(units, units_in, units_in, dtype)  # both results have units_in columns
    return use_gemm(units, units_in, units, dtype), backward, backward


def _one_thread_blas(sets: list[PointSetCode], block: int) -> bool:
    """Whether every product left on np.dot stays under ONE_THREAD_BLAS_MAX multiply-adds on
    a block of points of every set (the first layer has no backward product)."""
    for p in sets:
        for lay in p.layers:  # each of a layer's products has rows * units * units_in
            on_dot = (not lay.gemm_forward or not lay.gemm_weights
                      or (not lay.gemm_backward and lay.number > 1))
            if on_dot and block * len(p.channels) > one_thread_rows(lay.units, lay.units_in):
                return False
    return True


def _term_code(term, printer: NumbaPrinter, index: int, spec, ch: Channels) -> TermCode:
    rename = {sym: sp.Symbol(f"in_{k}", real=True) for k, sym in enumerate(term.inputs)}
    expr, reads = term.expr, [(sym, channel_name(d.inputs), d.output) for sym, d in term.uses]
    if ch.combination:  # the second derivatives through their combination, channel dd
        expr, combined = combined_term(expr, term.uses, ch.combination)
        reads = [r for (_, d), r in zip(term.uses, reads) if d.order < 2]
        reads += [(sym, COMBINED, o) for o, sym in combined.items()]
    loads = []
    for sym, c, o in reads:
        new = sp.Symbol(f"y{o}_{c}", real=True)
        rename[sym] = new
        loads.append((new.name, c, o))
    expr = expr.xreplace(rename)
    seeds_exprs = [sp.diff(expr, rename[sym]) for sym, _, _ in reads]
    lines, printed = _lines([expr, *seeds_exprs], printer, f"r{index}_")
    seeds = [(c, o, p) for (_, c, o), p in zip(reads, printed[1:])]
    return TermCode(term.name, term_text(spec, term.name), printer.doprint(sp.Float(term.weight)),
                    lines, printed[0], seeds, loads)


def term_text(spec, name: str) -> str:
    return next(t.residual for t in spec.loss.terms if t.name == name)


def residuals_context(spec, *, version: str, spec_file: str) -> CpuResidualsContext:
    # float64: exp and tanh by the module's own vectorizable functions
    printer = NumbaPrinter(spec.codegen.dtype, vector64=True)
    module = module_context(spec, version=version, spec_file=spec_file, mode="residuals")
    terms = residual_terms(spec)
    layers = spec.network.layers

    def layer_jets(ch: Channels) -> list[LayerJets]:
        codes = []
        units_in = spec.network.inputs
        for number, layer in enumerate(layers, start=1):
            has_b = layer.bias != "none"
            codes.append(LayerJets(number, layer.units, units_in, layer.activation.describe(),
                                   layer.bias, f"W{number}", f"B{number}" if has_b else "",
                                   f"dW{number}", f"dB{number}" if has_b else "",
                                   _jet_code(activation_jets(layer.activation, ch), printer,
                                             number),
                                   *gemm_products(layer.units, units_in, spec.codegen.dtype)))
            units_in = layer.units
        return codes

    sets = []
    for index, (name, derivatives) in enumerate(point_sets(spec).items()):
        ch = channels_for(derivatives, [t for t in terms if t.points == name])
        sets.append(PointSetCode(
            name, index, list(ch.names()), list(ch.directions), list(ch.pairs),
            {channel_name((d,)): d for d in ch.directions},
            describe_combination(ch, spec.loss.input_names), layer_jets(ch),
            [_term_code(t, printer, k, spec, ch) for k, t in enumerate(terms)
             if t.points == name],
            sorted({k for t in terms if t.points == name
                    for k, sym in enumerate(t.inputs) if sym in t.expr.free_symbols})))
    decay = weight_decay(spec.loss)
    decay_code = None if decay is None else DecayCode(printer.doprint(decay.term),
                                                      printer.doprint(decay.grad))
    forward_layers = layer_jets(Channels((), ()))
    gemm = any(lay.gemm_forward or lay.gemm_backward or lay.gemm_weights
               for p in sets for lay in p.layers)
    return CpuResidualsContext(
        **{**cpu_module_fields(module), "samples_axis": 0, "uses_gemm": gemm},
        point_sets=sets,
        forward_layers=forward_layers,
        input_names=list(spec.loss.input_names),
        output_names=list(spec.loss.output_names),
        terms_doc=[(t.name, t.points, repr(t.weight), t.residual) for t in spec.loss.terms],
        weight_decay=decay_code,
        uses_math="math" in printer.module_imports,
        fastmath64=printer.calls_float64_helpers,
        gemm_module=gemm_source(version)[0] if gemm else "",
        threads=_one_thread_blas(sets, BLOCK),
        block=BLOCK,
    )


def render_residuals(spec, *, version: str, spec_file: str) -> tuple[str, tuple]:
    """The module of a residual loss (CPU), and the files it imports, as (module name, text):
    the gemm file when some product runs through _gemm."""
    context = residuals_context(spec, version=version, spec_file=spec_file)
    files = (gemm_source(version),) if context.uses_gemm else ()
    return render("cpu/residuals.py.jinja", context), files


__all__ = ["CpuResidualsContext", "render_residuals", "residuals_context"]
