"""The loop form's vector matrix product (_gemm, templates/cpu/gemm.jinja) against NumPy, and
which products the generator sends to it rather than to np.dot."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from _reference import finite_difference_grad
from _reference import loss as ref_loss
from numba import njit

import symnet
from symnet.codegen.cpu.config import GEMM_MAX, use_gemm

# (n, k, m): tiles of 8 rows by 2 vectors, with every kind of remainder: fewer rows than a
# tile, a partial last vector, a product narrower than one vector, k = 1, and an empty batch
SHAPES = [(256, 32, 32), (8, 16, 32), (7, 5, 3), (1, 256, 32), (33, 17, 40), (9, 1, 70),
          (250, 30, 31), (3, 64, 1), (0, 4, 16)]


def _narrow(dtype, **extra):
    return {
        "name": f"narrow_{dtype}",
        "network": {"inputs": 20, "layers": [
            {"units": 32, "activation": "tanh"},
            {"units": 24, "activation": "relu"},
            {"units": 16, "activation": "linear"}]},
        "loss": {"kind": "mse", "reduction": "mean"},
        "codegen": {"dtype": dtype, "mode": "loop"},
        **extra,
    }


@pytest.fixture(scope="module", params=["float32", "float64"])
def module(request, run_folder):
    return symnet.compile(_narrow(request.param), run_folder(f"gemm_{request.param}"))


def _close(got, want, dtype):
    rtol, atol = (2e-5, 2e-5) if dtype == np.float32 else (1e-13, 1e-13)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("n,k,m", SHAPES)
def test_gemm_matches_numpy(module, n, k, m):
    dt = module.DTYPE
    rng = np.random.default_rng(n * 1000 + k * 10 + m)
    A = rng.normal(size=(n, k)).astype(dt)
    B = rng.normal(size=(k, m)).astype(dt)
    want = A.astype(np.float64) @ B.astype(np.float64)
    C = np.full((n, m), np.nan, dtype=dt)  # every element must be written
    module._kernels._gemm(A, B, C)
    _close(C, want, dt)
    # A transposed (the weight gradient's delta.T): strided rows and columns
    AT = np.ascontiguousarray(A.T).T
    C[:] = np.nan
    module._kernels._gemm(AT, B, C)
    _close(C, want, dt)
    # with a bias added to every row
    b = rng.normal(size=m).astype(dt)
    C[:] = np.nan
    module._kernels._gemm_bias(A, B, b, C)
    _close(C, want + b, dt)


# every path np.dot(A, B, C) takes: ?gemm, ?gemv with A one row or B one column, ?dot, and an
# empty sum (k = 0: zeros) or an empty batch
BLAS_SHAPES = [(7, 5, 3), (64, 300, 130), (1, 256, 32), (33, 64, 1), (1, 9, 1), (5, 0, 4),
               (0, 4, 16)]


@pytest.mark.parametrize("n,k,m", BLAS_SHAPES)
def test_blas_computes_what_np_dot_does(module, n, k, m):
    """_blas (the products that do not run through _gemm: BLAS called as np.dot calls it,
    lowered in place) on operands C-contiguous, F-contiguous (a transposed view, as delta.T
    and W.T are) and neither (a strided view: copied first)."""
    dt = module.DTYPE
    blas_ir = module._kernels._gemm_module._blas
    blas = njit(lambda A, B, C: blas_ir(A, B, C))
    rng = np.random.default_rng(n * 1000 + k * 10 + m)
    A = rng.normal(size=(n, k)).astype(dt)
    B = rng.normal(size=(k, m)).astype(dt)
    want = A.astype(np.float64) @ B.astype(np.float64)
    strided = (np.repeat(A, 2, axis=1)[:, ::2], np.repeat(B, 2, axis=1)[:, ::2])
    for a, b in ((A, B), (np.asfortranarray(A), B), (A, np.asfortranarray(B)), strided):
        C = np.full((n, m), np.nan, dtype=dt)  # every element must be written
        blas(a, b, C)
        _close(C, want, dt)


def test_gemm_strided_operands_take_the_loop_path(module):
    dt = module.DTYPE
    rng = np.random.default_rng(3)
    A = rng.normal(size=(10, 6)).astype(dt)
    big = rng.normal(size=(6, 14)).astype(dt)
    B = big[:, ::2]  # column stride of two elements: no vector loads
    C = np.empty((10, 7), dtype=dt)
    module._kernels._gemm(A, B, C)
    _close(C, A.astype(np.float64) @ B, dt)
    out = np.zeros((10, 14), dtype=dt)
    module._kernels._gemm(A, B, out[:, ::2])
    _close(out[:, ::2], A.astype(np.float64) @ B, dt)
    assert not out[:, 1::2].any()  # nothing written between the strided columns


def test_gemm_leaves_the_operands_alone(module):
    dt = module.DTYPE
    rng = np.random.default_rng(4)
    A, B = rng.normal(size=(20, 12)).astype(dt), rng.normal(size=(12, 40)).astype(dt)
    A0, B0 = A.copy(), B.copy()
    base = np.zeros((21, 40), dtype=dt)
    module._kernels._gemm(A, B, base[:20])  # a row past the end that must stay zero
    assert np.array_equal(A, A0) and np.array_equal(B, B0)
    assert not base[20].any()
    _close(base[:20], A.astype(np.float64) @ B, dt)


def _check_gradient(m, spec, rng, batch):
    """The module's loss equals the NumPy reference's, and its gradient the reference's finite
    differences."""
    params = m.init_params()
    X = rng.normal(size=(batch, m.N_INPUTS))
    T = rng.normal(size=(batch, m.N_OUTPUTS))
    E, g = m.grad(params, X, T)
    assert E == pytest.approx(ref_loss(spec, params, X, T), rel=1e-12)
    fd = finite_difference_grad(spec, params, X, T)
    for name in params:
        np.testing.assert_allclose(g[name], fd[name], rtol=1e-5, atol=1e-8)


def test_which_products_use_the_vector_kernel():
    # float32: a 512-bit vector holds 16 values, float64 8
    assert use_gemm(32, 32, 32, "float32")
    assert not use_gemm(1, 32, 1, "float32")  # a product one column wide: np.dot
    assert use_gemm(1, 32, 32, "float32")  # the same layer's backward products
    assert not use_gemm(10, 32, 10, "float32") and use_gemm(10, 32, 10, "float64")
    assert use_gemm(GEMM_MAX, GEMM_MAX, GEMM_MAX, "float32")
    assert not use_gemm(GEMM_MAX + 1, 16, 16, "float32")  # wide layers keep BLAS


def test_wide_and_narrow_layers_in_one_network(tmp_path):
    """A layer wider than GEMM_MAX keeps np.dot; the narrow ones around it use _gemm. The
    gradient of the mix matches finite differences of the NumPy reference."""
    spec = {
        "name": "mixed",
        "network": {"inputs": 12, "layers": [
            {"units": GEMM_MAX + 8, "activation": "tanh"},
            {"units": 16, "activation": "sigmoid", "bias": "shared"},
            {"units": 9, "activation": "tanh", "bias": "none"},
            {"units": 2, "activation": "linear"}]},
        "loss": {"kind": "mse", "reduction": "sum"},
        "codegen": {"mode": "loop"},
    }
    m = symnet.compile(spec, tmp_path)
    k = m._kernels
    # layer 1, (GEMM_MAX + 8) x 12, and layer 2, 16 x (GEMM_MAX + 8): wide, np.dot; layer 3,
    # 9 x 16 in float64 (9 columns >= one 512-bit vector): _gemm; the output layer, 2 x 9:
    # its forward product is 2 columns wide (np.dot), its backward ones 9 (_gemm)
    assert m._LAYOUT[1:, k.GEMM_FORWARD].tolist() == [0, 0, 1, 0]
    assert m._LAYOUT[1:, k.GEMM_BACKWARD].tolist() == [0, 0, 1, 1]
    _check_gradient(m, spec, np.random.default_rng(11), batch=13)


def test_narrow_network_trains_like_its_steps(module):
    """fit (the compiled loop) and repeated train_step agree, and the loss goes down."""
    rng = np.random.default_rng(9)
    X, T = rng.normal(size=(37, 20)), rng.normal(size=(37, 16))
    a, b = module.init_params(), module.init_params()
    losses = module.fit(a, X, T, 5, lr=0.05)
    stepped = [module.train_step(b, X, T, lr=0.05) for _ in range(5)]
    np.testing.assert_allclose(losses, stepped, rtol=1e-5 if module.DTYPE == np.float32 else 1e-12)
    assert losses[-1] < losses[0]


def test_checkpoint_kernel_uses_gemm_for_narrow_layers(tmp_path):
    """The table-driven kernel of checkpoint schedules picks _gemm or np.dot per layer from
    the GEMM columns of its layout table; its gradient equals finite differences of the
    NumPy reference."""
    spec = {
        "name": "ck_gemm",
        "network": {"inputs": 10, "layers": [
            {"units": 16, "activation": "tanh"},
            {"units": 12, "activation": "sigmoid", "bias": "shared"},
            {"units": 9, "activation": "softplus", "bias": "none"},
            {"units": 3, "activation": "linear"}]},
        "loss": {"kind": "mse", "reduction": "mean", "weight_decay": 0.01},
        "codegen": {"mode": "loop"},
    }
    m = symnet.compile(spec, tmp_path, strategy="budget:1")
    assert m._LAYOUT[:, m._kernels.GEMM_FORWARD].tolist() == [0, 1, 1, 1, 0]  # 3-wide: np.dot
    assert m._LAYOUT[:, m._kernels.GEMM_BACKWARD].tolist() == [0, 1, 1, 1, 1]
    _check_gradient(m, spec, np.random.default_rng(12), batch=11)


@pytest.mark.parametrize("vector_bytes", [64, 32])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_with_each_vector_width(dtype, vector_bytes, tmp_path, monkeypatch):
    """The vector width follows the CPU (_VECTOR_BYTES: 64 with AVX-512, else 32): each
    width is forced here on a fresh copy of the kernel file before its first call compiles
    _gemm, whatever this CPU has (LLVM splits 512-bit vectors on a CPU without them), so
    both paths are tested on every machine."""
    m = symnet.compile(_narrow(dtype), tmp_path)
    # fresh copies of the gemm file and of the kernel file that imports it, under other
    # names (the module's own are shared and maybe compiled already, and Numba's cache is
    # keyed by the file, not by _VECTOR_BYTES)
    gemm = m._kernels._gemm_module
    name = f"fresh_gemm_{dtype}_{vector_bytes}"
    (tmp_path / f"{name}.py").write_text(Path(gemm.__file__).read_text("utf-8"), "utf-8")
    copy = tmp_path / f"fresh_kernels_{dtype}_{vector_bytes}.py"
    copy.write_text(Path(m.KERNEL_FILE).read_text(encoding="utf-8").replace(
        gemm.__name__, name), encoding="utf-8")
    where = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
    g = importlib.util.module_from_spec(where)
    where.loader.exec_module(g)
    g._VECTOR_BYTES = vector_bytes
    g._TILE_ROWS = 8 if vector_bytes == 64 else 4  # as the file picks for that target
    monkeypatch.setitem(sys.modules, name, g)  # what the kernel file's copy imports
    where = importlib.util.spec_from_file_location(copy.stem, copy)
    k = importlib.util.module_from_spec(where)
    where.loader.exec_module(k)
    assert k._gemm_module is g
    for n, kk, cols in SHAPES:
        rng = np.random.default_rng(n + kk + cols)
        A = rng.normal(size=(n, kk)).astype(m.DTYPE)
        B = rng.normal(size=(kk, cols)).astype(m.DTYPE)
        b = rng.normal(size=cols).astype(m.DTYPE)
        want = A.astype(np.float64) @ B.astype(np.float64)
        C = np.full((n, cols), np.nan, dtype=m.DTYPE)  # every element must be written
        k._gemm_bias(A, B, b, C)
        _close(C, want + b, m.DTYPE)
        C[:] = np.nan  # and without a bias, A transposed (strided rows and columns)
        k._gemm(np.ascontiguousarray(A.T).T, B, C)
        _close(C, want, m.DTYPE)
    # the code compiled is that width's: vectors of 64 or 32 bytes, whatever this CPU has
    size = np.dtype(m.DTYPE).itemsize
    lanes = f"v{vector_bytes // size}f{8 * size}"  # e.g. v16f32: 16 float32 lanes
    for kernel in (k._gemm_bias, k._gemm):
        assert _vector_types(kernel) == {lanes}, (kernel, lanes)
    if dtype == "float64":  # and the whole gradient through that kernel file, against the
        # NumPy reference's finite differences (float64: tight enough to tell)
        monkeypatch.setattr(m, "_kernels", k)
        _check_gradient(m, _narrow(dtype), np.random.default_rng(vector_bytes), batch=7)
        assert _vector_types(k._gemm_unit) == {lanes}  # what the kernels called


def _vector_types(kernel) -> set[str]:
    """The vector types of the fused multiply-adds in a compiled function's LLVM IR, e.g.
    {"v16f32"}: 16 float32 lanes, a 512-bit vector."""
    ir = "\n".join(kernel.inspect_llvm().values())
    assert ir, kernel  # compiled in this process, not loaded from a cache without its IR
    return set(re.findall(r"@llvm\.fmuladd\.(v\d+f\d+)\(", ir))


def test_the_vector_width_follows_numbas_target(module, monkeypatch):
    """_VECTOR_BYTES follows the features Numba compiles for: NUMBA_CPU_FEATURES when set
    (say, haswell's on an AVX-512 machine), else the host's."""
    from numba.core import config

    has = module._kernels._gemm_module._target_has_avx512
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx,+avx2,+fma,+sse4.2")
    assert has() is False
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2, +fma, +avx512f, +avx512bw")
    assert has() is True
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    from llvmlite import binding as llvm

    assert has() == bool(llvm.get_host_cpu_features().get("avx512f", False))


# ---------------------------------------------------------------------------------------------
# which products run through _gemm on this machine (codegen/cpu/gemm.py, SYMNET_GEMM=measure)


@pytest.fixture
def measuring(monkeypatch):
    """SYMNET_GEMM=measure (the tuned choices go to the run's shared kernel folder: each test
    below uses widths of its own)."""
    from symnet.codegen.cpu import gemm

    monkeypatch.setenv("SYMNET_GEMM", "measure")
    return gemm


def _tunable(name, widths, dtype="float64"):
    return {"name": name, "network": {"inputs": widths[0], "layers": [
        {"units": w, "activation": "tanh"} for w in widths[1:-1]]
        + [{"units": widths[-1], "activation": "linear"}]},
        "loss": {"kind": "mse"}, "codegen": {"dtype": dtype, "mode": "loop"}}


def _fake_timer(prefer, calls):
    """A step timer that prefers, per layer, the (forward, backward) choice in `prefer` (the
    step costs one unit per layer column that differs): tuning must find it."""

    def make(module, spec):
        k = module._kernels

        def timer():
            calls.append(module._LAYOUT[1:, [k.GEMM_FORWARD, k.GEMM_BACKWARD]].tolist())
            got = module._LAYOUT[1:, [k.GEMM_FORWARD, k.GEMM_BACKWARD]]
            return 1.0 + float((got != np.array(prefer, dtype=got.dtype)).sum())

        return timer

    return make


def _gemm_columns(m):
    k = m._kernels
    return [[bool(v) for v in row] for row in m._LAYOUT[1:, [k.GEMM_FORWARD, k.GEMM_BACKWARD]]]


def test_tuning_keeps_what_makes_the_step_faster(measuring, tmp_path, monkeypatch):
    """symnet.compile times the module's step with each kind of candidate layer moved between
    _gemm and np.dot (forward and backward apart) and writes the module again with the
    fastest; the choice is remembered, so the next compile (another folder, another process)
    builds it at once and times nothing."""
    spec = _tunable("tuned_a", [20, 32, 32, 32, 5])  # kinds: first 32x20, 32x32 (twice), 5x32
    # the fixed bounds: _gemm for every product 8+ float64 wide; preferred: np.dot for the
    # 32x32 layers' forward products, _gemm for the output layer's 5-wide forward product
    prefer = [[True, True], [False, True], [False, True], [True, True]]
    calls = []
    monkeypatch.setattr(measuring, "_step_timer", _fake_timer(prefer, calls))
    m = symnet.compile(spec, tmp_path / "a")
    assert _gemm_columns(m) == prefer
    assert 1 + 2 * 3 == len(calls)  # the start, then each of 3 kinds forward and backward
    assert calls[0] == [[1, 1], [1, 1], [1, 1], [0, 1]]  # from the fixed bounds
    tuned = json.loads((measuring.calibration_folder() / measuring.TUNED_FILE).read_text("utf-8"))
    (key,) = [k for k in tuned if k.endswith(" float64 32x20@1 32x32 5x32")]
    assert tuned[key] == {"32x20@1": [True, True], "32x32": [False, True], "5x32": [True, True]}
    calls.clear()
    again = symnet.compile(spec, tmp_path / "b")
    assert _gemm_columns(again) == prefer and calls == []
    assert measuring.gemm_flags(symnet.compiler.as_spec(spec)) == tuple(map(tuple, prefer))
    # the same kinds of layers, deeper (a sweep over depth): the choice per kind, no timing
    deeper = symnet.compile(_tunable("tuned_a2", [20, 32, 32, 32, 32, 32, 5]), tmp_path / "c")
    assert _gemm_columns(deeper) == [prefer[0]] + [prefer[1]] * 4 + [prefer[3]]
    assert calls == []


def test_a_kind_too_small_to_move_the_step_is_not_timed(measuring, tmp_path, monkeypatch):
    """A kind of layer with under 1 - TUNE_MARGIN of the step's multiply-adds (here the 1-unit
    output layer: 32 of 3,104 per sample) keeps the fixed bounds without being timed."""
    spec = _tunable("tuned_small", [32, 32, 32, 32, 1])
    calls = []
    monkeypatch.setattr(measuring, "_step_timer", _fake_timer([[True, True]] * 4, calls))
    symnet.compile(spec, tmp_path)
    assert len(calls) == 1 + 2 * 2  # the start, then the first and the hidden kind
    tuned = json.loads((measuring.calibration_folder() / measuring.TUNED_FILE).read_text("utf-8"))
    (key,) = [k for k in tuned if k.endswith(" float64 1x32 32x32 32x32@1")]
    assert tuned[key]["1x32"] == list(measuring.bounds_flags(symnet.compiler.as_spec(spec))[3])


def test_tuning_keeps_the_bounds_unless_the_step_gets_faster(measuring, tmp_path, monkeypatch):
    """A change that does not make the step TUNE_MARGIN faster is undone (the fixed bounds
    stay); the module is not written again."""
    spec = _tunable("tuned_b", [20, 24, 3])
    calls = []
    monkeypatch.setattr(measuring, "_step_timer", lambda module, spec: lambda: calls.append(1)
                        or 1.0)
    m = symnet.compile(spec, tmp_path)
    assert _gemm_columns(m) == [list(f) for f in measuring.bounds_flags(
        symnet.compiler.as_spec(spec))]
    assert len(calls) == 1 + 2 * 2


def test_cpus_without_vector_units_and_wide_layers_are_not_tuned(measuring, tmp_path,
                                                                 monkeypatch):
    """A target without AVX2 and FMA (NUMBA_CPU_FEATURES, as Numba reads it) gets np.dot
    everywhere, and a kernel file without _gemm; a network with no candidate layer (all wider
    than GEMM_MAX) is not tuned either."""
    monkeypatch.setattr(measuring, "_step_timer", None)  # never called
    spec = symnet.compiler.as_spec(_tunable("no_avx2", [12, 16, 2]))
    monkeypatch.setenv("NUMBA_CPU_NAME", "x86-64")
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+64bit,+sse,+sse2,+avx,-avx2,-fma")
    assert measuring.gemm_flags(spec) == ((False, False), (False, False))
    text = symnet.build(spec).kernels[0][1]  # it imports the gemm file for the optimizer only
    assert "_gemm_unit(" not in text and "_gemm_bias_unit(" not in text and "_meet(" not in text
    monkeypatch.delenv("NUMBA_CPU_NAME")
    monkeypatch.delenv("NUMBA_CPU_FEATURES")
    wide = _tunable("wide_only", [GEMM_MAX + 1, GEMM_MAX + 2, GEMM_MAX + 3])
    m = symnet.compile(wide, tmp_path)
    assert _gemm_columns(m) == [[False, False], [False, False]]


def test_the_gemm_policy_is_checked(monkeypatch):
    from symnet.codegen.cpu import gemm

    monkeypatch.setenv("SYMNET_GEMM", "never")
    assert gemm.gemm_flags(_spec()) == ((False, False),) * 3
    monkeypatch.setenv("SYMNET_GEMM", "fastest")
    with pytest.raises(ValueError, match="SYMNET_GEMM: expected one of measure, bounds, never"):
        gemm.gemm_flags(_spec())


def test_the_kernel_file_does_not_depend_on_the_tuning(measuring, tmp_path, monkeypatch):
    """Whatever tuning chooses, a network with a candidate layer keeps the same kernel file (it
    imports the gemm file): the next point of a sweep, tuned anew, reuses the compiled
    kernels; only the module's _LAYOUT differs."""
    modules = []
    for i, prefer in enumerate(([[True, True], [True, True]], [[False, False], [False, False]])):
        monkeypatch.setattr(measuring, "_step_timer", _fake_timer(prefer, []))
        modules.append(symnet.compile(_tunable(f"tuned_c{i}", [6 + i, 40, 9]), tmp_path))
    assert modules[0].KERNEL_MODULE == modules[1].KERNEL_MODULE
    assert _gemm_columns(modules[0]) != _gemm_columns(modules[1])


def test_tuning_for_real(measuring, tmp_path):
    """The real timer on this machine: the module compiled from whatever it chose computes the
    NumPy reference's gradient."""
    spec = _tunable("tuned_real", [20, 32, 24, 3])
    m = symnet.compile(spec, tmp_path)
    assert Path(measuring.calibration_folder() / measuring.TUNED_FILE).is_file()
    _check_gradient(m, spec, np.random.default_rng(4), batch=9)


def _spec(dtype="float32"):
    return symnet.compiler.as_spec(_narrow(dtype))


def test_a_step_that_fails_on_the_tuning_data_leaves_the_bounds(measuring, tmp_path,
                                                                monkeypatch):
    """Tuning runs fit on random data; where that fails (a loss that is not finite there),
    the module compiles with the fixed bounds and nothing is remembered."""

    def failing(module, spec):
        raise FloatingPointError("fit: the loss before step 0 is nan")

    monkeypatch.setattr(measuring, "_step_timer", failing)
    spec = _tunable("tuned_fails", [7, 24, 2])
    m = symnet.compile(spec, tmp_path)
    assert _gemm_columns(m) == [list(f) for f in measuring.bounds_flags(
        symnet.compiler.as_spec(spec))]
    tuned = measuring._read(measuring.calibration_folder() / measuring.TUNED_FILE)
    assert not any(k.endswith(" 7-24-2") for k in tuned)


def test_compile_without_tuning_takes_what_is_remembered(measuring, tmp_path, monkeypatch):
    """tune=False (symnet.sklearn's short fits) times nothing: the fixed bounds for a network
    not tuned yet, the remembered choice for one that was."""
    spec = _tunable("untuned", [9, 20, 3])
    monkeypatch.setattr(measuring, "_step_timer", None)  # never called
    m = symnet.compile(spec, tmp_path / "a", tune=False)
    bounds = [list(f) for f in measuring.bounds_flags(symnet.compiler.as_spec(spec))]
    assert _gemm_columns(m) == bounds
    prefer = [[False, True], [True, True]]
    monkeypatch.setattr(measuring, "_step_timer", _fake_timer(prefer, []))
    assert _gemm_columns(symnet.compile(spec, tmp_path / "b")) == prefer
    monkeypatch.setattr(measuring, "_step_timer", None)
    assert _gemm_columns(symnet.compile(spec, tmp_path / "c", tune=False)) == prefer
