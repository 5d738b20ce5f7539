"""The backend registry: the one module of the pipeline that reaches the code generators.

Dependencies run one way. The generators (symnet.codegen, rendering the Jinja2 templates of
symnet.templates) import the pipeline's representations: Spec, Program, Schedule,
LoopProgram, Plan. The rest of symnet imports no generator: the compiler, the command line
and explain ask this module, where a target's name ("cpu", "cuda") gives its `Backend`.

A Backend is a configuration: the target's settings, as data, and the name of the module
that renders it, imported the first time something is rendered (the generators import
jinja2, their printers sympy). So `import symnet` imports no generator, and the check that
reuses a generated module only the writer, for the generator's hash (`generator_sha256`).

To add a backend (docs/architecture.md, "Adding a backend"): write its generator as a
folder of symnet.codegen whose `__init__.py`, the entry, has `render_scalar` and
`loop_form`, and either `render_loop` or the CPU's kernel-file functions (see `Backend`'s
methods; the two entries so far are codegen/cpu/__init__.py and codegen/cuda/__init__.py);
put its templates under symnet.templates; then add its `Backend` to BACKENDS below. The
spec's `[codegen] targets`, `symnet compile --target` and `symnet.build(target=...)` take its
name from then on.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checkpoint import Plan
    from .loop import LoopProgram
    from .program import Program
    from .schedule import Schedule
    from .spec import Spec


@dataclass(frozen=True)
class Backend:
    name: str  # the target: [codegen] targets, --target, build(target=...)
    title: str  # in messages
    generator: str  # the module that renders it, imported on first use
    suffix: str = ""  # its module is written to DIR/<spec name><suffix>.py
    # The loop form: a kernel file shared by every network of the same kinds of layers, with
    # its KernelInfo, and a module of tables for one network (the CPU's); otherwise one module
    # rendered from the LoopProgram (`render_loop`).
    kernel_files: bool = False
    # Whether the loop form takes the checkpoint schedules of symnet.checkpoint (else only
    # "store").
    schedules: bool = False
    # Whether it renders a residual loss's module (physics-informed terms; `render_residuals`).
    residuals: bool = False

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.generator)

    def render_scalar(self, spec: Spec, schedule: Schedule, *, version: str, spec_file: str,
                      config: Any = None) -> str:
        """The unrolled (scalar) form's module, from the schedule. `config`: the backend's
        own settings (the CUDA backend's CudaConfig), None for its defaults."""
        return self.module.render_scalar(spec, schedule, version=version, spec_file=spec_file,
                                         config=config)

    def render_loop(self, spec: Spec, program: LoopProgram, *, version: str, spec_file: str,
                    config: Any = None) -> str:
        """The loop form's module, from the LoopProgram (a backend without kernel files)."""
        return self.module.render_loop(spec, program, version=version, spec_file=spec_file,
                                       config=config)

    def render_residuals(self, spec: Spec, *, version: str, spec_file: str) -> tuple[str, tuple]:
        """The module of a residual loss (symnet/residuals.py, symnet/jets.py), and the files
        it imports, written beside it: ((module name, text), ...)."""
        return self.module.render_residuals(spec, version=version, spec_file=spec_file)

    def loop_form(self, spec: Spec) -> str:
        """What the loop form's kernels are, in a few words (`symnet compile`'s summary)."""
        return self.module.loop_form(spec)

    # the loop form of a backend with kernel files

    def load_info(self, directory: str | os.PathLike, spec: Spec, version: str):
        """The KernelInfo saved in `directory` for the spec's kinds of layers (with its kernel
        file there), or None."""
        return self.module.load_info(directory, spec, version)

    def save_info(self, directory: str | os.PathLike, spec: Spec, version: str, info) -> None:
        self.module.save_info(directory, spec, version, info)

    def kernel_source(self, spec: Spec, program: LoopProgram, *, version: str):
        """The kernel file for the network's kinds of layers: (KernelInfo, its text)."""
        return self.module.kernel_source(spec, program, version=version)

    def support_files(self, spec: Spec, version: str) -> tuple[tuple[str, str], ...]:
        """The files the network's kernel file imports, as (module name, text), written
        beside it (the CPU's gemm file, when some product runs through it)."""
        return self.module.support_files(spec, version)

    def tune(self, spec: Spec, module) -> bool:
        """Measure the imported loop-form module's choices on this machine (the CPU's: which
        products run through _gemm); True when they changed and the module must be built
        again. False for a backend with nothing to tune."""
        return self.kernel_files and self.module.tune(spec, module)

    def network_plan(self, spec: Spec, info) -> Plan:
        """The backward pass's schedule (the spec's strategy) for this network; ValueError
        for a byte budget that nothing fits."""
        return self.module.network_plan(spec, info)

    def plan_summary(self, spec: Spec, plan: Plan):
        """The plan's figures, as the module records them (CHECKPOINT_PLAN): the CPU's
        PlanSummary (symnet.codegen.cpu.checkpoint), a frozen dataclass."""
        return self.module.plan_summary(spec, plan)

    def render_module(self, spec: Spec, info, plan: Plan, *, version: str, spec_file: str,
                      checkpoint_summary: Any = None,
                      kernel_dir: str | None = None) -> str:
        """The loop form's module: the network as tables for the kernel file `info.name`."""
        return self.module.render_module(spec, info, plan, version=version,
                                         spec_file=spec_file,
                                         checkpoint_summary=checkpoint_summary,
                                         kernel_dir=kernel_dir)

    # symnet explain (the CPU backend)

    def render_explain(self, spec: Spec, program: Program, quantities, *, version: str) -> str:
        """The explain kernel: the scalar Program and each (label, sympy expression) of
        `quantities`, evaluated for one sample."""
        return self.module.render_explain(spec, program, quantities, version=version)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("cpu", "CPU", "symnet.codegen.cpu", kernel_files=True, schedules=True,
            residuals=True),
    Backend("cuda", "CUDA", "symnet.codegen.cuda", suffix="_cuda"),
)}
TARGETS = tuple(BACKENDS)


def get(target: str) -> Backend:
    return BACKENDS[target]


def generator_sha256() -> str:
    """SHA-256 of the generator's source: symnet, symnet.codegen and symnet.templates."""
    from .codegen.writer import generator_sha256

    return generator_sha256()


def use_template_cache(directory: str | os.PathLike) -> None:
    """Keep the templates' compiled code in `directory` (Jinja2's bytecode cache)."""
    from .codegen.writer import use_bytecode_cache

    use_bytecode_cache(directory)
