"""The CPU module's context: what both of its forms (codegen/cpu/scalar.py, the scalar form;
codegen/cpu/kernels.py, the loop form's module) add to every target's ModuleContext."""

from __future__ import annotations

from dataclasses import dataclass

from ..context import FASTMATH32, INNER_OPTIONS, ModuleContext, TemplateContext


@dataclass(frozen=True, kw_only=True)
class CpuModuleContext(ModuleContext):
    """What the CPU module needs besides every target's fields (templates/cpu/module.py.jinja)."""

    # the scalar form loops over samples innermost: X is passed features-by-samples (1)
    samples_axis: int  # the axis of X (and T) that the kernels take samples along
    fastmath32: str  # the float32 kernels' fastmath flags (templates/cpu/fastmath32.jinja)
    inner: str  # more @njit options for a function only compiled code calls (INNER_OPTIONS)
    uses_gemm: bool  # its kernel file (the residual module: itself) calls _gemm; False: np.dot only


@dataclass(frozen=True, kw_only=True)
class GemmFileContext(TemplateContext):
    """The gemm file's (templates/cpu/gemm.py.jinja; codegen/cpu/gemm.py)."""

    version: str  # symnet's, in the header
    njit: str  # the @njit options (the same for both dtypes: _gemm is written in vector IR)
    fastmath32: str  # the float32 optimizer step's fastmath flags, as the kernel files'
    inner: str  # more @njit options for a function only compiled code calls (INNER_OPTIONS)
    update_rules: tuple[str, ...]  # the optimizer's update rules, by number (config.py)
    gemm_max: int  # no side of a weight matrix that _gemm multiplies is over this


def cpu_module_fields(module: ModuleContext) -> dict:
    """`module`'s fields and the CPU module's own, to build a CpuModuleContext's subclass."""
    return {**module.own_fields(), "samples_axis": 1 if module.mode == "scalar" else 0,
            "fastmath32": FASTMATH32, "inner": INNER_OPTIONS, "uses_gemm": False}


__all__ = ["CpuModuleContext", "GemmFileContext", "cpu_module_fields"]
