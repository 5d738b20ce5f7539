"""The CUDA backend: the same scalar Schedule or LoopProgram as the CPU backend, rendered
into a `numba.cuda` module with the CPU module's API (templates/cuda/). This package is the
backend's entry: what symnet.backends asks of it."""

from __future__ import annotations

from symnet.loop import LoopProgram
from symnet.schedule import Schedule
from symnet.spec import Spec

from ..writer import render
from .config import CudaConfig
from .context import cuda_loop_context, cuda_scalar_context

TEMPLATE = "cuda/module.py.jinja"


def render_scalar(spec: Spec, schedule: Schedule, *, version: str, spec_file: str,
                  config: CudaConfig | None = None) -> str:
    return render(TEMPLATE, cuda_scalar_context(spec, schedule, version=version,
                                                spec_file=spec_file, config=config))


def render_loop(spec: Spec, program: LoopProgram, *, version: str, spec_file: str,
                config: CudaConfig | None = None) -> str:
    return render(TEMPLATE, cuda_loop_context(spec, program, version=version, spec_file=spec_file,
                                              config=config))


def loop_form(spec: Spec) -> str:
    """The loop form's kernels in a few words, for `symnet compile`'s summary."""
    return "per-thread layer loops"


__all__ = ["CudaConfig", "TEMPLATE", "cuda_loop_context", "cuda_scalar_context", "loop_form",
           "render_loop", "render_scalar"]
