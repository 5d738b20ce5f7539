"""The pipeline, end to end: spec -> Program -> backprop -> Schedule -> source -> module.

Each stage is a plain function in its own module; this file only strings them together. The
target's backend, from the registry symnet.backends, renders the source.
"""

from __future__ import annotations

import ast
import gc
import importlib.util
import os
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, backends
from .errors import SpecError
from .files import cache_folder, write_if_changed
from .residuals import RESIDUALS
from .spec import TARGETS, Spec, check_module_name, load_spec, spec_from_dict
from .strategy import parse_strategy

if TYPE_CHECKING:  # the stages that need sympy are imported where they run
    from .loop import LoopProgram
    from .program import Program
    from .schedule import Schedule

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
    # files the module imports, written beside it: (module name, source); the CPU loop form's
    # kernel file, named by its text's hash and shared by every network of the same kinds
    # (absent when it was there already), then the files it imports (the gemm file)
    kernels: tuple[tuple[str, str], ...] = ()
    kernel_info: Any = None  # the CPU loop form's KernelInfo (symnet.codegen.cpu.kernels)
    # where `kernels` go when not beside the module (an absolute path, recorded in the module
    # as KERNEL_DIR): a folder of kernel files shared by modules written in several folders
    kernel_dir: str | None = None

    @property
    def module_name(self) -> str:
        return self.spec.name + backends.get(self.target).suffix


def as_spec(spec: Spec | str | os.PathLike | Mapping[str, Any]) -> Spec:
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, Mapping):
        return spec_from_dict(spec)
    return load_spec(spec)


def with_overrides(spec: Spec, *, strategy: str | None = None, dtype: str | None = None,
                   mode: str | None = None) -> Spec:
    """The spec with the given [codegen] settings replaced (None leaves one as it is)."""
    changes = {k: v for k, v in (("strategy", strategy), ("dtype", dtype), ("mode", mode))
               if v is not None}
    return spec.replace_codegen(**changes) if changes else spec


def choose_mode(spec: Spec) -> str:
    if spec.loss.kind == RESIDUALS:
        return "residuals"  # its own module: the terms' derivative channels through the layers
    mode = spec.codegen.mode
    layerwise = parse_strategy(spec.codegen.strategy).layerwise
    if mode == "auto":
        if layerwise:
            return "loop"  # checkpoints are layers: a loop-form schedule
        # recompute: the scalar form's inlined gradients where they fit, else the loop
        # form's, which recomputes each layer from the input
        if spec.codegen.strategy == "recompute":
            from .schedule import RECOMPUTE_MAX_PARAMS as limit
        else:
            limit = AUTO_SCALAR_MAX_PARAMS
        return "scalar" if spec.n_params() <= limit else "loop"
    if mode == "scalar" and layerwise:
        raise SpecError(spec.source, "codegen.strategy",
                        '"store" or "recompute" in the scalar form (checkpoint and budget '
                        'schedules need mode = "loop" or "auto")', spec.codegen.strategy)
    return mode


def loop_plan(spec: Spec, info, target: str = "cpu"):
    """The loop form's schedule for this network (symnet.checkpoint.Plan), from the kinds of
    its layers (the KernelInfo of a backend with kernel files)."""
    try:
        return backends.get(target).network_plan(spec, info)
    except ValueError as exc:  # a byte budget too small for this network
        raise SpecError(spec.source, "codegen.strategy", str(exc),
                        spec.codegen.strategy) from None


def check_target(spec: Spec, target: str) -> None:
    if target not in TARGETS:
        raise SpecError(spec.source, "codegen.targets", "a target among "
                        + ", ".join(f'"{t}"' for t in TARGETS), target)
    backend = backends.get(target)
    if choose_mode(spec) == "residuals" and not backend.residuals:
        raise SpecError(spec.source, "codegen.targets", f'"cpu" for a residual loss (the '
                        f'{backend.title} target has no residual kernels yet)', target)
    if choose_mode(spec) == "residuals" and spec.codegen.strategy != "store":
        raise SpecError(spec.source, "codegen.strategy", '"store" for a residual loss',
                        spec.codegen.strategy)
    if not backend.schedules and choose_mode(spec) == "loop" \
            and spec.codegen.strategy != "store":
        raise SpecError(spec.source, "codegen.strategy", f'"store" for the {backend.title} '
                        "target's loop form (checkpoint schedules are emitted for the CPU "
                        "only)", spec.codegen.strategy)


def check_size(spec: Spec) -> None:
    n = spec.n_params()
    if n > MAX_SCALAR_PARAMS:
        raise SpecError(spec.source, "network",
                        f"at most {MAX_SCALAR_PARAMS} parameters for the unrolled (scalar) form "
                        "(Numba's compile time grows too fast beyond it; "
                        'use mode = "loop" or "auto")', n)


def build(spec, strategy: str | None = None, dtype: str | None = None,
          mode: str | None = None, target: str = "cpu", cuda_config=None,
          kernel_dir: str | os.PathLike | None = None,
          out_dir: str | os.PathLike | None = None) -> Compiled:
    """Run every stage and render the module's source (nothing is written).
    `spec` is a Spec, a path to a TOML file or a dict. `target` is "cpu" or "cuda" (the
    same pipeline, rendered by the CUDA backend; `cuda_config` is its CudaConfig).
    `kernel_dir`: where the CPU loop form's kernel files are; when one for this network's
    kinds is there already, with its KernelInfo, the module is rendered from that without
    lowering anything (`program` is then None). `out_dir`: the folder the module will be
    written to; when `kernel_dir` is another one, the module records it (KERNEL_DIR) and loads
    its kernel file from there when the file is not beside it."""
    with collector_paused():
        return _build(spec, strategy, dtype, mode, target, cuda_config, kernel_dir, out_dir)


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector off for the block, then as it was: sympy allocates
    many short-lived objects while symnet lowers, differentiates and prints a network, and the
    collector rescans every object alive each time it runs (8% of building the mnist-shaped
    spec). The generated modules do the same while Numba compiles them (common/pause_gc.jinja)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(spec, strategy, dtype, mode, target, cuda_config, kernel_dir, out_dir) -> Compiled:
    spec = with_overrides(as_spec(spec), strategy=strategy, dtype=dtype, mode=mode)
    check_target(spec, target)
    backend = backends.get(target)
    mode = choose_mode(spec)
    spec_file = Path(spec.source).name
    if mode == "residuals":
        source, files = backend.render_residuals(spec, version=__version__, spec_file=spec_file)
        return Compiled(spec, None, None, source, mode, target, kernels=files)
    if mode == "loop" and backend.kernel_files:
        info = (backend.load_info(kernel_dir, spec, __version__) if kernel_dir is not None
                else None)
        shared = None
        if kernel_dir is not None and out_dir is not None \
                and Path(kernel_dir).resolve() != Path(out_dir).resolve():
            shared = str(Path(kernel_dir).resolve())
        loop_program = kernels = None
        if info is None:
            from .loop import lower_loop

            loop_program = lower_loop(spec)
            info, text = backend.kernel_source(spec, loop_program, version=__version__)
            kernels = ((info.name, text),)
        kernels = (kernels or ()) + backend.support_files(spec, __version__)
        p = loop_plan(spec, info, target)
        summary = backend.plan_summary(spec, p) if spec.codegen.strategy != "store" else None
        source = backend.render_module(spec, info, p, version=__version__, spec_file=spec_file,
                                       checkpoint_summary=summary, kernel_dir=shared)
        return Compiled(spec, loop_program, None, source, "loop", target,
                        kernels=kernels, kernel_info=info, kernel_dir=shared)
    if mode == "loop":
        from .loop import lower_loop

        loop_program = lower_loop(spec)
        return Compiled(spec, loop_program, None, backend.render_loop(
            spec, loop_program, version=__version__, spec_file=spec_file,
            config=cuda_config), "loop", target)
    from .autodiff import differentiate
    from .lower import lower
    from .schedule import schedule

    check_size(spec)
    program = differentiate(lower(spec))
    sched = schedule(program, spec.codegen.strategy, spec.codegen.derivatives)
    return Compiled(spec, program, sched, backend.render_scalar(
        spec, sched, version=__version__, spec_file=spec_file, config=cuda_config),
        "scalar", target)


def default_out_dir() -> Path:
    """Where modules compiled without an out_dir go (symnet.files.cache_folder)."""
    return cache_folder()


def module_path(spec: Spec, out_dir: str | os.PathLike, target: str = "cpu") -> Path:
    """DIR/<name>.py, or DIR/<name>_cuda.py for the CUDA target. The name is checked again
    here (a Spec can be built by hand, bypassing the loader), so that the file is always
    directly inside `out_dir`."""
    check_module_name(spec.name, spec.source)
    return Path(out_dir) / f"{spec.name}{backends.get(target).suffix}.py"


def write(compiled: Compiled, out_dir: str | os.PathLike) -> Path:
    """Write the module into out_dir, and its kernel file with its KernelInfo beside it, or
    into the module's shared kernel folder (`Compiled.kernel_dir`). Returns the module's path."""
    path = module_path(compiled.spec, out_dir, compiled.target)
    kernel_dir = Path(compiled.kernel_dir or out_dir)
    if compiled.kernels:
        kernel_dir.mkdir(parents=True, exist_ok=True)
    for name, text in compiled.kernels:  # first: the module imports them
        write_if_changed(kernel_dir / f"{name}.py", text)
    if compiled.kernels and compiled.kernel_info is not None:
        backends.get(compiled.target).save_info(kernel_dir, compiled.spec, __version__,
                                                compiled.kernel_info)
    write_if_changed(path, compiled.source)
    return path


# The constants of a generated module's header that decide whether it can be reused, and
# where the header ends (the first line that is not one of them).
_HEADER_END = "PARAM_SHAPES = {"
_HEADER_MAX_BYTES = 1 << 20  # the header is a few kB; never read a whole large file


def expected_header(spec: Spec) -> dict[str, str]:
    """The header constants that a module built now from `spec` (overrides applied) would
    record, as the source text of their values. Computed without sympy or Numba."""
    return {
        "SYMNET_VERSION": repr(__version__),
        "GENERATOR_SHA256": repr(backends.generator_sha256()),
        "SPEC_FILE": repr(Path(spec.source).name),
        "SPEC_SHA256": repr(spec.sha256),
        "DTYPE": f"np.{spec.codegen.dtype}",
        "STRATEGY": repr(spec.codegen.strategy),
        "MODE": repr(choose_mode(spec)),
    }


def recorded_header(path: str | os.PathLike) -> dict[str, str]:
    """The `NAME = value` constants at the top of a generated module (values normalised to
    their repr when they are literals), read as text: the module is not imported. Empty when
    the file is missing or unreadable."""
    found: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        return {}
    for line in head.splitlines():
        if line.startswith(_HEADER_END):
            break
        name, sep, value = line.partition(" = ")
        if not sep or not name.isidentifier() or not name.isupper() or len(value) > 200:
            continue
        try:
            found[name] = repr(ast.literal_eval(value))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            found[name] = value
    return found


def is_current(path: str | os.PathLike, spec: Spec) -> bool:
    """Whether the module at `path` was generated from this very spec (same SHA-256, same
    file name, same dtype, strategy and form) by this very symnet (same version and same
    generator source), so that importing it gives what building again would."""
    recorded = recorded_header(path)
    if not recorded or any(recorded.get(k) != v for k, v in expected_header(spec).items()):
        return False
    kernel = recorded.get("KERNEL_MODULE")  # the loop form's kernel file: beside it, or in
    if kernel is None:  # the shared kernel folder it records
        return True
    name = f"{ast.literal_eval(kernel)}.py"
    if (Path(path).parent / name).is_file():
        return True
    try:
        shared = ast.literal_eval(recorded.get("KERNEL_DIR", "None"))
    except (ValueError, SyntaxError):
        return False
    return isinstance(shared, str) and (Path(shared) / name).is_file()


def import_module(path: Path, name: str):
    """Import a generated module from its file (a fresh module object each time)."""
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


# the templates' compiled code (Jinja2's bytecode cache), a folder inside the kernel folder
TEMPLATE_CACHE = "__templatecache__"


def kernel_folder(out_dir: str | os.PathLike, kernel_dir=None) -> Path:
    """Where the loop form's kernel files go: `kernel_dir`, else $SYMNET_KERNEL_DIR, else the
    module's own folder."""
    return Path(kernel_dir or os.environ.get("SYMNET_KERNEL_DIR") or out_dir)


def compile(spec, out_dir=None, *, strategy=None, dtype=None, mode=None,  # noqa: A001
            target="cpu", kernel_dir=None, tune=True):
    """Compile a spec (a path, a dict or a Spec) and import the generated module (target
    "cuda": the numba.cuda module, <name>_cuda).

    An existing DIR/<name>.py (<name>_cuda.py) is reused, without running sympy, when its
    header records this spec's SHA-256, file name, dtype, strategy and form and this symnet's
    version and generator hash (`is_current`); otherwise the module is built and written again
    (atomically, so that processes compiling the same spec at once each import a complete
    module).

    The CPU loop form's kernel file (one per kind of network, named by its text's hash) goes
    into `kernel_dir`, else $SYMNET_KERNEL_DIR, else beside the module: a shared kernel folder
    lets modules written in several folders (a sweep's points, a test suite) compile each kind
    of network once per machine.

    A loop-form CPU module whose network has narrow layers is tuned on this machine the first
    time (codegen/cpu/gemm.py: which of its products run through _gemm; the first `fit` then
    runs here, compiling its kernels) and written again with the faster choice. tune=False
    skips that (tens of milliseconds per new network: symnet.sklearn's short fits, a
    search's many widths): the module takes the choice remembered for this network on this
    machine, if any, else the fixed bounds."""
    spec = with_overrides(as_spec(spec), strategy=strategy, dtype=dtype, mode=mode)
    check_target(spec, target)
    path = module_path(spec, out_dir if out_dir is not None else default_out_dir(), target)
    kdir = kernel_folder(path.parent, kernel_dir)
    if not is_current(path, spec):
        backends.use_template_cache(kdir / TEMPLATE_CACHE)
        path = write(build(spec, target=target, kernel_dir=kdir, out_dir=path.parent),
                     path.parent)
    module = import_module(path, path.stem)
    if tune and choose_mode(spec) == "loop" and backends.get(target).tune(spec, module):
        # measured on this machine: which products run through _gemm (codegen/cpu/gemm.py)
        path = write(build(spec, target=target, kernel_dir=kdir, out_dir=path.parent),
                     path.parent)
        module = import_module(path, path.stem)
    return module
