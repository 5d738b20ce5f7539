"""The pipeline, end to end: spec -> Program -> backprop -> Schedule -> source -> module.

Each stage is a plain function in its own module; this file only strings them together.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .autodiff import differentiate
from .errors import SpecError
from .loop import LoopProgram, lower_loop
from .lower import lower
from .program import Program
from .schedule import Schedule, schedule
from .spec import TARGETS, Spec, load_spec, spec_from_dict

# `mode = "auto"` picks the unrolled (scalar) form up to this many parameters and the loop
# form beyond (measured: see docs/benchmarks.md).
AUTO_SCALAR_MAX_PARAMS = 64

# Largest network compiled in the unrolled (scalar) form. Numba's compile time grows faster
# than the unrolled code: Numba's first compile of grad + fit reaches about 10 s near 300
# parameters on a 2-core machine (benchmarks/compile_time.py, see docs/benchmarks.md).
MAX_SCALAR_PARAMS = 300


@dataclass(frozen=True)
class Compiled:
    spec: Spec
    program: Program | LoopProgram
    schedule: Schedule | None  # None in the loop form
    source: str
    mode: str = "scalar"
    target: str = "cpu"  # "cuda": a numba.cuda module with the same API, <name>_cuda.py

    @property
    def module_name(self) -> str:
        return self.spec.name + ("_cuda" if self.target == "cuda" else "")


def as_spec(spec: Spec | str | os.PathLike | Mapping[str, Any]) -> Spec:
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, Mapping):
        return spec_from_dict(spec)
    return load_spec(spec)


def choose_mode(spec: Spec) -> str:
    mode = spec.codegen.mode
    if mode == "auto":
        if spec.codegen.strategy == "recompute":
            return "scalar"  # recompute is a scalar-form schedule
        return "scalar" if spec.n_params() <= AUTO_SCALAR_MAX_PARAMS else "loop"
    if mode == "loop" and spec.codegen.strategy == "recompute":
        raise SpecError(spec.source, "codegen.strategy",
                        '"store" in the loop form (recompute needs mode = "scalar")', "recompute")
    return mode


def check_size(spec: Spec) -> None:
    n = spec.n_params()
    if n > MAX_SCALAR_PARAMS:
        raise SpecError(spec.source, "network",
                        f"at most {MAX_SCALAR_PARAMS} parameters for the unrolled (scalar) form "
                        "(Numba's compile time grows too fast beyond it; "
                        'use mode = "loop" or "auto")', n)


def build(spec, strategy: str | None = None, dtype: str | None = None,
          mode: str | None = None, target: str = "cpu", cuda_config=None) -> Compiled:
    """Run every stage and render the module's source (nothing is written).
    `spec` is a Spec, a path to a TOML file or a dict. `target` is "cpu" or "cuda" (the
    same pipeline, rendered by codegen/cuda; `cuda_config` is its CudaConfig)."""
    from codegen.cpu import context
    from codegen.writer import render

    spec = as_spec(spec)
    changes = {k: v for k, v in (("strategy", strategy), ("dtype", dtype), ("mode", mode))
               if v is not None}
    if changes:
        spec = spec.replace_codegen(**changes)
    if target not in TARGETS:
        raise SpecError(spec.source, "codegen.targets", "a target among "
                        + ", ".join(f'"{t}"' for t in TARGETS), target)
    mode = choose_mode(spec)
    spec_file = Path(spec.source).name
    if mode == "loop":
        from codegen.loop import context as loop_context

        loop_program = lower_loop(spec)
        if target == "cuda":
            from codegen.cuda import render_loop

            return Compiled(spec, loop_program, None, render_loop(
                spec, loop_program, version=__version__, spec_file=spec_file,
                config=cuda_config), "loop", "cuda")
        ctx = loop_context(spec, loop_program, version=__version__, spec_file=spec_file)
        return Compiled(spec, loop_program, None, render("cpu/module.py.jinja", ctx), "loop")
    check_size(spec)
    program = differentiate(lower(spec))
    sched = schedule(program, spec.codegen.strategy)
    if target == "cuda":
        from codegen.cuda import render_scalar

        return Compiled(spec, program, sched, render_scalar(
            spec, sched, version=__version__, spec_file=spec_file, config=cuda_config),
            "scalar", "cuda")
    ctx = context(spec, sched, version=__version__, spec_file=spec_file)
    return Compiled(spec, program, sched, render("cpu/module.py.jinja", ctx), "scalar")


def default_out_dir() -> Path:
    env = os.environ.get("SYMNET_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symnet"


def write(compiled: Compiled, out_dir: str | os.PathLike) -> Path:
    from codegen.writer import write_if_changed

    path = Path(out_dir) / f"{compiled.module_name}.py"
    write_if_changed(path, compiled.source)
    return path


def import_module(path: Path, name: str):
    """Import a generated module from its file (a fresh module object each time)."""
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def compile(spec, out_dir=None, *, strategy=None, dtype=None, mode=None,  # noqa: A001
            target="cpu"):
    """Compile a spec (a path or a dict) and import the generated module (target "cuda":
    the numba.cuda module, <name>_cuda)."""
    compiled = build(spec, strategy=strategy, dtype=dtype, mode=mode, target=target)
    path = write(compiled, out_dir if out_dir is not None else default_out_dir())
    return import_module(path, compiled.module_name)
