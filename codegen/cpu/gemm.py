"""Which of the loop form's matrix products run through `_gemm`, chosen on the machine.

`_gemm` (templates/cpu/gemm.jinja) is the loop form's own matrix product for narrow layers;
np.dot calls BLAS. Which is faster depends on the CPU: on an AVX-512 Xeon `_gemm` wins on
32-wide layers, on an AVX2 CPU BLAS wins on 64-wide ones (docs/benchmarks.md, sections 9, 12
and 15). So the choice is measured where the network trains, and remembered:

- Candidates: a layer whose weight matrix has no side over GEMM_MAX (codegen/cpu/config.py);
  wider layers keep BLAS, which blocks for the caches and uses every core. A target without
  AVX2 and FMA never uses `_gemm`.
- `symnet.compile` tunes each new network once per machine (`tune`, on the imported module):
  it times the module's own `fit` (full batch of ROWS random samples) with the products of
  each kind of candidate layer (same units, units_in, first or not), forward and backward
  apart, on `_gemm` and on np.dot, starting from the fixed bounds of codegen/cpu/config.py and
  keeping a change only where the whole step got faster by TUNE_MARGIN. The step is what is
  timed, not the products alone: timed alone, back to back, np.dot measured up to 30% faster
  than it runs inside a step (between products the kernels apply f and f', and BLAS's
  threads, caches and call overhead fare differently), which chose np.dot where the step
  then ran 27% slower (section 15).
- The result is kept in the calibration folder (the shared kernel folder, else symnet's cache
  folder) as JSON, keyed by the target CPU (NUMBA_CPU_NAME and NUMBA_CPU_FEATURES when set,
  else the host's), the gemm file, the dtype and the network's kinds of layers, one choice per
  kind; building the module reads it (`gemm_flags`), so the module written after tuning
  records the tuned choice in its `_LAYOUT`, and a later compile of the same network, or of
  one with the same kinds of layers in another number (a sweep over depth), tunes nothing. A
  network not tuned yet (`symnet.build`, `symnet compile` on the command line) gets the fixed
  bounds.

SYMNET_GEMM chooses the policy: "measure" (the default, as above), "bounds" (the fixed bounds
on every machine, never tuned: the test suite's, to exercise `_gemm` on every CPU), or "never"
(np.dot everywhere).

The gemm file holds `_gemm`; its name is its text's hash, and the kernel files that may use
`_gemm` import it from their own folder (so that Numba compiles it once per machine and
folder, whatever kinds of networks use it). Whether a kernel file imports it does not depend
on what tuning chose, so a sweep's next network, tuned anew, shares the kernel file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from symnet.files import write_if_changed

from ..context import FASTMATH32, INNER_OPTIONS, NJIT_OPTIONS
from ..writer import render
from .config import GEMM_MAX, UPDATE_RULES, use_gemm
from .context import GemmFileContext

if TYPE_CHECKING:
    from symnet.spec import Spec

GEMM_PREFIX = "symnet_gemm_"
TUNED_FILE = "symnet_gemm_tuned.json"
POLICIES = ("measure", "bounds", "never")
ROWS = 256  # the batch the steps are timed at (a spec does not fix its batch size)
BLOCK_SECONDS = 2e-3  # each timed block runs this long at least
BLOCKS = 3  # best of this many blocks per choice
TUNE_MARGIN = 0.97  # a change is kept where the step got at least 3% faster


def policy() -> str:
    """SYMNET_GEMM, checked: "measure" (default), "bounds" or "never"."""
    value = os.environ.get("SYMNET_GEMM", "measure").strip().lower() or "measure"
    if value not in POLICIES:
        raise ValueError(f"SYMNET_GEMM: expected one of {', '.join(POLICIES)}, got {value!r}")
    return value


@lru_cache(maxsize=4)
def gemm_source(version: str) -> tuple[str, str]:
    """The gemm file: (its module name, its text), rendered once per process (every build of
    a loop-form network asks for its name: the kernel file, the key of the tuned choices)."""
    text = render("cpu/gemm.py.jinja", GemmFileContext(version=version, njit=NJIT_OPTIONS,
                                                        fastmath32=FASTMATH32,
                                                        inner=INNER_OPTIONS,
                                                        update_rules=UPDATE_RULES,
                                                        gemm_max=GEMM_MAX))
    return GEMM_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16], text


def target_cpu() -> tuple[str, str]:
    """The CPU Numba compiles for: (name, features), from NUMBA_CPU_NAME and
    NUMBA_CPU_FEATURES when set (as numba.core.config reads them), else the host's."""
    host = _host_cpu()
    return (os.environ.get("NUMBA_CPU_NAME") or host[0],
            os.environ.get("NUMBA_CPU_FEATURES") or host[1])


@lru_cache(maxsize=1)
def _host_cpu() -> tuple[str, str]:
    from llvmlite import binding as llvm

    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def has_vector_units(features: str) -> bool:
    """Whether the target has what `_gemm` is written for: AVX2 and FMA (or AVX-512)."""
    on = {f.strip()[1:] for f in features.split(",") if f.strip().startswith("+")}
    return "avx512f" in on or {"avx2", "fma"} <= on


def calibration_folder() -> Path:
    """Where the measurements and the gemm file they time live: the shared kernel folder
    ($SYMNET_KERNEL_DIR), else symnet's cache folder."""
    from symnet.files import cache_folder

    return Path(os.environ.get("SYMNET_KERNEL_DIR") or cache_folder())


def layer_shapes(spec: Spec) -> list[tuple[int, int, bool]]:
    """Per layer 1..L: (units, units_in, first layer)."""
    w = (spec.network.inputs, *(layer.units for layer in spec.network.layers))
    return [(w[i], w[i - 1], i == 1) for i in range(1, len(w))]


def _candidate(shape: tuple[int, int, bool]) -> bool:
    return max(shape[0], shape[1]) <= GEMM_MAX


def bounds_flags(spec: Spec) -> tuple[tuple[bool, bool], ...]:
    """The fixed rule of codegen/cpu/config.py, per layer (forward, backward)."""
    dtype = spec.codegen.dtype
    return tuple((use_gemm(u, ui, u, dtype), use_gemm(u, ui, ui, dtype))
                 for u, ui, _ in layer_shapes(spec))


def gemm_flags(spec: Spec) -> tuple[tuple[bool, bool], ...]:
    """Per layer 1..L: whether its forward product and its backward ones run through _gemm,
    by the SYMNET_GEMM policy: under "measure", what `tune` found for this network on this
    machine, else the fixed bounds (np.dot everywhere on a target without AVX2)."""
    how = policy()
    shapes = layer_shapes(spec)
    if how == "never":
        return tuple((False, False) for _ in shapes)
    if how == "bounds":
        return bounds_flags(spec)
    target = target_cpu()
    if not has_vector_units(target[1]):
        return tuple((False, False) for _ in shapes)
    tuned = _read(calibration_folder() / TUNED_FILE).get(_network_key(spec, target))
    if not isinstance(tuned, dict):
        return bounds_flags(spec)
    flags = []
    for shape in shapes:
        if not _candidate(shape):
            flags.append((False, False))
            continue
        f = tuned.get(_kind(shape))
        if not (isinstance(f, list) and len(f) == 2 and all(isinstance(b, bool) for b in f)):
            return bounds_flags(spec)
        flags.append((f[0], f[1]))
    return tuple(flags)


def may_use_gemm(spec: Spec) -> bool:
    """Whether the network's kernel file imports the gemm file: under "measure", whether some
    layer is a candidate on a target with AVX2 (whatever tuning chose, so that the next
    network of a sweep, tuned anew, shares the kernel file); else whether some layer uses it."""
    if policy() != "measure":
        return any(any(f) for f in gemm_flags(spec))
    return has_vector_units(target_cpu()[1]) and any(_candidate(s) for s in layer_shapes(spec))


def _kind(shape: tuple[int, int, bool]) -> str:
    """A kind of layer as the tuning names it: units x units_in, "@1" for the first layer
    (which has no backward product to its inputs)."""
    units, units_in, first = shape
    return f"{units}x{units_in}{'@1' if first else ''}"


def _network_key(spec: Spec, target: tuple[str, str], gemm: str | None = None) -> str:
    """The tuned choice's key: the target, the gemm file (its module name `gemm`, else this
    symnet's), the dtype and the network's kinds of layers (not their number or order:
    networks that differ only in depth share it)."""
    if gemm is None:
        from symnet import __version__

        gemm = gemm_source(__version__)[0]
    kinds = " ".join(sorted({_kind(shape) for shape in layer_shapes(spec)}))
    features = hashlib.sha256(target[1].encode()).hexdigest()[:12]
    return f"{gemm} {target[0]} {features} {spec.codegen.dtype} {kinds}"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def tune(spec: Spec, module) -> bool:
    """Under SYMNET_GEMM=measure, on a target with AVX2, for a network with candidate layers
    not tuned on this machine yet (nor one with the same kinds of layers): time the module's
    `fit` with each kind of candidate layer's forward and backward products moved between
    _gemm and np.dot (a coordinate search from the fixed bounds; a kind too small to move the
    step by the margin is not timed), record the fastest in the calibration folder, and leave
    the module's _LAYOUT as it was. Returns whether that choice differs from the module's
    (then the caller builds the module again: `gemm_flags` now returns it). The first `fit`
    compiles the kernels, as the user's own first call would."""
    if policy() != "measure":
        return False
    target = target_cpu()
    if not has_vector_units(target[1]):
        return False
    shapes = layer_shapes(spec)
    kinds: dict[tuple, list[int]] = {}
    for number, shape in enumerate(shapes, start=1):
        if _candidate(shape):
            kinds.setdefault(shape, []).append(number)
    folder = calibration_folder()
    # the gemm file the module imports (this symnet's: the module is current), named without
    # rendering its text, so that a module tuned before costs no template here
    key = _network_key(spec, target, module._kernels._gemm_module.__name__)
    if not kinds or key in _read(folder / TUNED_FILE):
        return False
    # a kind with less than 1 - TUNE_MARGIN of the step's multiply-adds cannot make the step
    # TUNE_MARGIN faster: not timed, it keeps the fixed bounds (a 1-unit output layer, say)
    total = sum(units * units_in for units, units_in, _ in shapes)
    timed = [rows for shape, rows in kinds.items()
             if len(rows) * shape[0] * shape[1] >= (1.0 - TUNE_MARGIN) * total]
    k = module._kernels
    columns = (k.GEMM_FORWARD, k.GEMM_BACKWARD)
    layout = module._LAYOUT
    original = layout.copy()
    try:
        if timed:
            timer = _step_timer(module, spec)
            best = timer()
            for rows in timed:
                for column in columns:
                    layout[rows, column] = 1 - layout[rows, column]
                    trial = timer()
                    if trial < TUNE_MARGIN * best:
                        best = trial
                    else:
                        layout[rows, column] = 1 - layout[rows, column]
        chosen = {_kind(shape): [bool(layout[rows[0], c]) for c in columns]
                  for shape, rows in kinds.items()}
    except (ArithmeticError, ValueError):
        # the random data made the loss not finite (a custom loss outside its domain, say):
        # nothing measured, the fixed bounds stay, and the next compile tries again
        return False
    finally:
        layout[...] = original
    everything = _read(folder / TUNED_FILE)  # again: another process may have added to it
    everything[key] = chosen
    try:
        write_if_changed(folder / TUNED_FILE, json.dumps(everything, indent=1, sort_keys=True)
                         + "\n")
    except OSError:
        return False  # nowhere to remember it: keep the module as it is
    return any([bool(original[rows[0], c]) for c in columns] != chosen[_kind(shape)]
               for shape, rows in kinds.items())


def _step_timer(module, spec: Spec):
    """A function that times the module's full-batch `fit` on ROWS random samples: seconds
    per step, the best of BLOCKS blocks of enough steps to last about BLOCK_SECONDS (from
    fresh parameters each block, at a small learning rate)."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, size=(ROWS, spec.network.inputs)).astype(module.DTYPE)
    T = rng.uniform(0.0, 1.0, size=(ROWS, spec.network.outputs)).astype(module.DTYPE)
    lr = 1e-4

    def run(steps):
        params = module.init_params()
        t0 = time.perf_counter()
        module.fit(params, X, T, steps, lr=lr)
        return time.perf_counter() - t0

    run(1)  # compiles the kernels (or loads them from Numba's cache)
    steps = 1
    while steps < 1 << 12:
        spent = run(steps)
        if spent >= BLOCK_SECONDS:
            break
        steps *= 4 if spent < BLOCK_SECONDS / 8 else 2

    def timer():
        return min(run(steps) for _ in range(BLOCKS)) / steps

    return timer


def load_gemm_file(folder: Path):
    """The gemm file, written into `folder` if it is not there, imported once per process
    (for tests and benchmarks that call _gemm directly)."""
    import importlib.util
    import sys

    from symnet import __version__

    name, text = gemm_source(__version__)
    module = sys.modules.get(name)
    if module is not None:
        return module
    path = Path(folder) / f"{name}.py"
    write_if_changed(path, text)
    where = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(where)
    where.loader.exec_module(module)
    return sys.modules.setdefault(name, module)
