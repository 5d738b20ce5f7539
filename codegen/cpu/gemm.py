"""Which of the loop form's matrix products run through `_gemm`, chosen on the machine.

`_gemm` (templates/cpu/gemm.jinja) is the loop form's own matrix product for narrow layers;
np.dot calls BLAS. Which is faster depends on the CPU: on an AVX-512 Xeon `_gemm` wins on
32-wide layers, on an AVX2 CPU BLAS won every product the fixed bounds sent to `_gemm`
(docs/benchmarks.md, sections 9 and 12). So the choice is measured, per layer shape, on the
CPU that Numba compiles for, and remembered:

- Candidates: a layer whose weight matrix has no side over GEMM_MAX (codegen/cpu/config.py);
  wider layers keep BLAS, which blocks for the caches and uses every core.
- Each candidate shape (rows of a representative batch, units, units_in, whether it is the
  first layer) is timed once per machine: its forward product, then its backward ones, each
  through `_gemm` and through np.dot, inside one compiled loop (`_layer_products` in the gemm
  file) that makes an elementwise pass between products as the kernels do, best of several
  blocks, and the faster is chosen. (Timed back to back, without that pass, np.dot came out
  faster than it runs inside a training step; and a margin in BLAS's favour, 95%, sent
  32-wide layers to np.dot where the whole step was then 13% slower: docs/benchmarks.md,
  section 15.)
- The results are kept in the calibration folder (the shared kernel folder, else symnet's
  cache folder) as JSON, keyed by the gemm file's name (its text's hash) and the target CPU
  (NUMBA_CPU_NAME and NUMBA_CPU_FEATURES when set, else the host's), so that a later compile
  on the same machine reads them; another CPU, or another `_gemm`, measures again.
- A target without AVX2 and FMA (an older x86, another architecture) never uses `_gemm`.

SYMNET_GEMM chooses the policy: "measure" (the default), "bounds" (the fixed bounds of
codegen/cpu/config.py, the same on every machine: the test suite's, to exercise `_gemm` on
every CPU), or "never" (np.dot everywhere).

The gemm file holds `_gemm` and the timing loop; its name is its text's hash, and the kernel
files that use `_gemm` import it from their own folder (so that Numba compiles it once per
machine and folder, whatever kinds of networks use it).
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

from ..context import NJIT_OPTIONS
from ..writer import render
from .config import GEMM_MAX, use_gemm
from .context import GemmFileContext

if TYPE_CHECKING:
    from symnet.spec import Spec

GEMM_PREFIX = "symnet_gemm_"
CALIBRATION_FILE = "symnet_gemm_calibration.json"
POLICIES = ("measure", "bounds", "never")
ROWS = 256  # the batch the products are timed at (a spec does not fix its batch size)
BLOCK_SECONDS = 2e-4  # each timed block runs the product this long at least
BLOCKS = 5  # best of this many blocks each way


def policy() -> str:
    """SYMNET_GEMM, checked: "measure" (default), "bounds" or "never"."""
    value = os.environ.get("SYMNET_GEMM", "measure").strip().lower() or "measure"
    if value not in POLICIES:
        raise ValueError(f"SYMNET_GEMM: expected one of {', '.join(POLICIES)}, got {value!r}")
    return value


def gemm_source(version: str) -> tuple[str, str]:
    """The gemm file: (its module name, its text)."""
    text = render("cpu/gemm.py.jinja", GemmFileContext(version=version, njit=NJIT_OPTIONS,
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


def gemm_flags(spec: Spec) -> tuple[tuple[bool, bool], ...]:
    """Per layer 1..L: whether its forward product and its backward ones run through _gemm,
    by the SYMNET_GEMM policy (measured on this machine by default)."""
    return _flags(spec.codegen.dtype, tuple(layer_shapes(spec)), policy(),
                  str(calibration_folder()), target_cpu())


def may_use_gemm(spec: Spec) -> bool:
    """Whether the network's kernel file imports the gemm file: under "measure", whether some
    layer is a candidate on a target with AVX2 (whatever the timings chose, so that the next
    network of a sweep, whose shapes are timed anew, shares the kernel file); else whether
    some layer uses it."""
    how = policy()
    if how != "measure":
        return any(any(f) for f in gemm_flags(spec))
    return has_vector_units(target_cpu()[1]) and any(
        max(units, units_in) <= GEMM_MAX for units, units_in, _ in layer_shapes(spec))


@lru_cache(maxsize=256)
def _flags(dtype, shapes, how, folder, target):
    if how == "never":
        return tuple((False, False) for _ in shapes)
    if how == "bounds":
        return tuple((use_gemm(u, ui, u, dtype), use_gemm(u, ui, ui, dtype))
                     for u, ui, _ in shapes)
    if not has_vector_units(target[1]):
        return tuple((False, False) for _ in shapes)
    candidates = {s for s in shapes if max(s[0], s[1]) <= GEMM_MAX}
    times = measured(dtype, sorted(candidates), Path(folder), target) if candidates else {}
    flags = []
    for shape in shapes:
        if shape not in times:
            flags.append((False, False))
            continue
        g_f, d_f, g_b, d_b = times[shape]
        flags.append((g_f < d_f, g_b < d_b))
    return tuple(flags)


def _key(dtype: str, shape: tuple[int, int, bool]) -> str:
    units, units_in, first = shape
    return f"{dtype} {ROWS}x{units_in} -> {units}{' first' if first else ''}"


def measured(dtype: str, shapes: list[tuple[int, int, bool]], folder: Path,
             target: tuple[str, str]) -> dict:
    """Seconds per call (gemm forward, np.dot forward, gemm backward, np.dot backward) of
    each layer shape on this machine: read from the calibration file, or measured now (and
    added to it). A folder that cannot be written is measured in, but not remembered."""
    from symnet import __version__

    name, text = gemm_source(__version__)
    section = f"{name} {target[0]} {hashlib.sha256(target[1].encode()).hexdigest()[:12]}"
    path = folder / CALIBRATION_FILE
    known = _read(path).get(section, {})
    missing = [s for s in shapes if _key(dtype, s) not in known]
    if missing:
        module = _import_gemm(folder, name, text)
        fresh = {_key(dtype, s): _time_layer(module, dtype, *s) for s in missing}
        everything = _read(path)  # again: another process may have added to it since
        everything.setdefault(section, {}).update(fresh)
        everything[section]["target"] = target[0]
        try:
            write_if_changed(path, json.dumps(everything, indent=1, sort_keys=True) + "\n")
        except OSError:
            pass
        known = {**known, **fresh}
    return {s: tuple(known[_key(dtype, s)]) for s in shapes}


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)
            and all(isinstance(t, list) and len(t) == 4 for n, t in v.items() if n != "target")}


def _import_gemm(folder: Path, name: str, text: str):
    """The gemm file, written into `folder` if it is not there, imported once per process."""
    import importlib.util
    import sys

    module = sys.modules.get(name)
    if module is not None:
        return module
    path = folder / f"{name}.py"
    write_if_changed(path, text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sys.modules.setdefault(name, module)


def _time_layer(module, dtype: str, units: int, units_in: int, first: bool) -> list[float]:
    import numpy as np

    rng = np.random.default_rng(0)

    def array(*shape):
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)

    a, W, b = array(ROWS, units_in), array(units, units_in), array(units)
    net, delta = array(ROWS, units), array(ROWS, units)
    dW, prev = array(units, units_in), array(ROWS, units_in)
    run = module._layer_products
    times = []
    for forward in (True, False):
        args = (a, W, b, net, delta, dW, prev)
        for gemm in (True, False):  # compiles the loop (once per machine), warms the caches
            run(*args, 1, gemm, forward, first)
        reps = 1
        while True:  # enough calls per block to time (about BLOCK_SECONDS)
            t0 = time.perf_counter()
            run(*args, reps, False, forward, first)
            spent = time.perf_counter() - t0
            if spent >= BLOCK_SECONDS or reps >= 1 << 16:
                break
            reps *= 4 if spent < BLOCK_SECONDS / 8 else 2
        best = {True: float("inf"), False: float("inf")}
        for _ in range(BLOCKS):
            for gemm in (True, False):  # interleaved: a slow moment hurts both
                t0 = time.perf_counter()
                run(*args, reps, gemm, forward, first)
                best[gemm] = min(best[gemm], (time.perf_counter() - t0) / reps)
        times += [best[True], best[False]]
    return times
