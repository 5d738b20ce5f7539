"""The machine a benchmark runs on, named with every figure, and the AVX2 stand-in.

Speed on these CPUs depends on their vector units: an AVX-512 machine can build and time the
AVX2 code paths of every contender by `--avx2` (`emulate_avx2()`, before numba, torch or jax is
imported): Numba compiles for haswell (NUMBA_CPU_NAME and NUMBA_CPU_FEATURES, which symnet's
choice of `_gemm` follows too), OpenBLAS runs its Haswell kernels (OPENBLAS_CORETYPE), PyTorch
its AVX2 ones (ATEN_CPU_CAPABILITY for ATen's own kernels, MKL_ENABLE_INSTRUCTIONS for the MKL
that runs its matrix products, DNNL_MAX_CPU_ISA for oneDNN) and XLA compiles for AVX2 at most
(--xla_cpu_max_isa).
An approximation of an AVX2 CPU: the same instructions and register count, this machine's
caches and clocks. Figures from a real AVX2 CPU are better; say which they are.
"""

from __future__ import annotations

import compileall
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# haswell's features, as LLVM names them (no AVX-512)
AVX2_FEATURES = ("+64bit,+avx,+avx2,+cmov,+cx16,+f16c,+fma,+fxsr,+mmx,+popcnt,+sse,+sse2,+sse3,"
                 "+sse4.1,+sse4.2,+ssse3,+xsave,+bmi,+bmi2,+lzcnt,+movbe")


def emulate_avx2() -> None:
    """Every contender compiles for, and runs, AVX2 code (call before importing them)."""
    os.environ["NUMBA_CPU_NAME"] = "haswell"
    os.environ["NUMBA_CPU_FEATURES"] = AVX2_FEATURES
    os.environ["OPENBLAS_CORETYPE"] = "Haswell"
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
    os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"  # PyTorch's matrix products (MKL's sgemm)
    os.environ["DNNL_MAX_CPU_ISA"] = "AVX2"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=AVX2").strip()


def emulating_avx2() -> bool:
    return os.environ.get("NUMBA_CPU_NAME") == "haswell"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vector_flags() -> list[str]:
    """The vector extensions /proc/cpuinfo lists (avx2, fma, avx512f, ...): which code paths
    the CPU itself can run."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw",
                                "avx512vl", "avx512_vnni") if f in flags]
    return []


def cpu_description() -> str:
    """One line: the model, its vector flags, the core count, and the AVX2 stand-in if on."""
    line = f"{cpu_model()} [{' '.join(vector_flags()) or 'flags unknown'}], {os.cpu_count()} CPUs"
    if emulating_avx2():
        line += "; compiled for AVX2 (haswell) by --avx2: an approximation of an AVX2 CPU"
    return line


def as_installed(env: dict) -> dict:
    """The environment for a worker process that imports symnet from this checkout as a user
    imports an installed symnet: its packages' bytecode compiled first (pip compiles it when it
    installs a package, as it did JAX's and scikit-learn's, whichever way
    PYTHONDONTWRITEBYTECODE is set), and Python's default of writing the bytecode of the
    modules symnet generates (PYTHONDONTWRITEBYTECODE, which containers often set, removed).
    Without this a checkout compiles symnet's sources again in every new process (about
    0.03 s) where its peers read theirs compiled."""
    for folder in ("symnet", "codegen", "templates"):
        compileall.compile_dir(ROOT / folder, quiet=1)
    env = dict(env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env
