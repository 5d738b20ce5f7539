"""The loop form's printed parts that both backends share: a layer's activation and
derivative (`LoopLayerCode`), the output block (`output_block_fields`, the fields of
codegen/context.py's OutputBlockContext) and the weight decay (`decay_code`). The CPU's own
choices (which matrix products run through `_gemm`) are in codegen/cpu/config.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .lines import Line

if TYPE_CHECKING:
    from .printer import NumbaPrinter


@dataclass(frozen=True)
class LoopLayerCode:
    number: int
    units: int
    units_in: int
    bias: str
    activation: str
    formula: str
    out: str  # f(z), printed
    derivative: str  # f'(z) in y and/or z, printed
    uses_z: bool  # whether the derivative reads net (z)
    uses_y: bool  # whether it reads out (y)
    source: str  # the array this layer reads: X or out<l-1>
    # f''(z) in y and/or z, printed (the CUDA loop form's Hessian-vector product); "" where
    # it vanishes (relu, linear: no curvature term, no R{net} kept)
    second: str = ""
    second_uses_z: bool = False  # whether f'' reads net (z)
    second_uses_y: bool = False  # whether it reads out (y)


def reads(expr) -> tuple[bool, bool]:
    """Whether an activation's f' or f'' (a symnet.loop layer's `derivative`, `second`)
    reads net (z) and out (y): which values both backends' kernels load for it."""
    from symnet.loop import OUT, Z

    return Z in expr.free_symbols, OUT in expr.free_symbols


@dataclass(frozen=True)
class DecayCode:
    """The weight decay for one weight w, printed: the layer program's WeightDecay
    (symnet/layers.py), as every loop form's template reads it (`weight_decay`) and prints it
    with common/macros.jinja's add_decay."""

    penalty: str  # lambda*w^2, added to the batch's loss once per weight
    grad: str  # its gradient, added to each weight's
    second: str = ""  # the gradient's derivative (both loop forms' Hessian-vector product)
    second_uses_w: bool = True  # whether `second` reads w (not for lambda*w^2: 2*lambda)


def decay_code(program, printer: NumbaPrinter, symbolic: bool = False) -> DecayCode | None:
    """A LoopProgram's weight decay, printed for one weight w, or None. The one place either
    backend's loop form prints the term (the CPU's kernel file and its module's tables; the
    CUDA module's penalty and gradient). `symbolic`: lambda printed as `lam`, a variable of
    the kernel (the CPU kernel file, shared by every value of lambda)."""
    decay = program.symbolic_decay if symbolic else program.decay
    if decay is None:
        return None
    from symnet.layers import W

    return DecayCode(printer.doprint(decay.term), printer.doprint(decay.grad),
                     printer.doprint(decay.second), W in decay.second.free_symbols)


def _block(steps, printer: NumbaPrinter) -> list[Line]:
    return [Line(a.lhs.name, printer.doprint(a.rhs), a.comment if a.role in
                 ("temp", "shift") else "") for a in steps]


def output_block_fields(program, printer: NumbaPrinter) -> dict:
    """The fields of codegen/context.py's OutputBlockContext (the loop-form output block as
    both backends' templates read it): the loss formula, the printed forward and gradient
    steps, the names of the outputs and deltas, and the targets the gradient reads."""
    out = program.output
    return {
        "loss_formula": program.loss_formula,
        "out_forward": _block(out.forward, printer),
        "out_grad": _block(out.grad_steps, printer),
        "out_names": [s.name for s in out.outs],
        "delta_names": [s.name for s in out.deltas],
        "target_loads": used_symbols(out.grad_steps, out.targets),
        "out_jacobian": _block(out.jacobian.steps, printer),
        "out_jacobian_rows": [[printer.doprint(e) for e in row] for row in out.jacobian.results],
        "jacobian_net_loads": used_symbols(out.jacobian.steps, out.nets),
        "out_hvp": _block(out.hvp.steps, printer),
        "out_hvp_deltas": [printer.doprint(e) for e in out.hvp.results[1:]],
        "hvp_net_loads": used_symbols(out.hvp.steps, out.nets),
        "hvp_target_loads": used_symbols(out.hvp.steps, out.targets),
    }


def used_symbols(steps, symbols) -> list[tuple[int, str]]:
    """(index, name) of each of `symbols` that the right-hand sides of `steps` read: the
    output block's nets and targets to load, in both the CPU kernel file and the CUDA
    module."""
    free = set().union(*(a.rhs.free_symbols for a in steps)) if steps else set()
    return [(k, s.name) for k, s in enumerate(symbols) if s in free]
