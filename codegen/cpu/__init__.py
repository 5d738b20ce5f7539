"""The CPU backend (`@njit` kernels). This package is the backend's entry: what
symnet.backends asks of it.

The scalar form is the context of codegen/cpu/scalar.py rendered into
templates/cpu/module.py.jinja. The loop form is a kernel file shared by every network of the
same kinds of layers, with its KernelInfo, and a module that describes one network to it as
tables (codegen/cpu/kernels.py), among them the schedule of the backward pass (a
symnet.checkpoint Plan, as tables by codegen/cpu/checkpoint.py). Which matrix products run
through `_gemm` is measured on the machine (codegen/cpu/gemm.py, within the bounds of
codegen/cpu/config.py); the context both forms' modules share is in codegen/cpu/context.py.
`symnet explain`'s kernel is a scalar Program with its chain factors, in float64
(codegen/cpu/explain.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symnet.schedule import Schedule
    from symnet.spec import Spec

# the backend's entries defined in this package's modules: name -> module, imported at the
# first use (a process that reuses a tuned module asks for `tune` only, and imports
# gemm.py alone, not the renderers: 0.02 s of a new process)
_ENTRIES = {
    "plan_summary": "checkpoint",
    "render_explain": "explain",
    "tune": "gemm",
    "kernel_source": "kernels",
    "load_info": "kernels",
    "matrix_products": "kernels",
    "network_plan": "kernels",
    "render_module": "kernels",
    "save_info": "kernels",
    "support_files": "kernels",
}


def __getattr__(name: str):
    module = _ENTRIES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def render_scalar(spec: Spec, schedule: Schedule, *, version: str, spec_file: str,
                  config=None) -> str:
    """The unrolled (scalar) form's module (`config` is a GPU backend's; unused here)."""
    from ..writer import render
    from .scalar import cpu_scalar_context

    return render("cpu/module.py.jinja", cpu_scalar_context(spec, schedule, version=version,
                                                            spec_file=spec_file))


def render_residuals(spec: Spec, *, version: str, spec_file: str) -> tuple[str, tuple]:
    """The module of a residual loss and the files it imports (the gemm file, when it uses
    _gemm), as (module name, text) (codegen/cpu/residuals.py, imported here: it needs sympy,
    which the loop form's next network of a sweep does without)."""
    from .residuals import render_residuals as render_module_of_residuals

    return render_module_of_residuals(spec, version=version, spec_file=spec_file)


def loop_form(spec: Spec) -> str:
    """The loop form's kernels in a few words, for `symnet compile`'s summary."""
    from .kernels import matrix_products

    gemm, dot = matrix_products(spec)
    return f"matrix products: {gemm} by _gemm, {dot} by np.dot"


__all__ = ["kernel_source", "load_info", "loop_form", "network_plan", "plan_summary",
           "render_explain", "render_module", "render_residuals", "render_scalar", "save_info",
           "support_files", "tune"]
