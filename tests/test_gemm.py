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
def module(request, tmp_path_factory):
    return symnet.compile(_narrow(request.param), tmp_path_factory.mktemp(request.param))


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
def measuring(tmp_path, monkeypatch):
    """SYMNET_GEMM=measure with a calibration folder of the test's own; the choices of
    earlier tests forgotten."""
    from symnet.codegen.cpu import gemm

    monkeypatch.setenv("SYMNET_GEMM", "measure")
    monkeypatch.setenv("SYMNET_KERNEL_DIR", str(tmp_path))
    gemm._flags.cache_clear()
    yield gemm
    gemm._flags.cache_clear()


def _spec(dtype="float32", **codegen):
    return symnet.compiler.as_spec(_narrow(dtype, codegen={"dtype": dtype, "mode": "loop",
                                                           **codegen}))


def test_the_measured_choice_follows_the_timings(measuring, tmp_path, monkeypatch):
    """Per layer shape, _gemm where it was faster than np.dot (forward and
    backward apart); the timings are kept in the calibration folder, and a later process (a
    cleared memo) reads them instead of measuring again."""
    timed = []

    def fake(module, dtype, units, units_in, first):
        timed.append((units, units_in, first))
        if units == 32:  # layer 1 (32 x 20): _gemm forward, np.dot backward
            return [1.0, 2.0, 2.0, 1.0]
        if units == 24:  # layer 2: a tie in both: BLAS
            return [1.0, 1.0, 1.0, 1.0]
        return [1.0, 1.5, 1.0, 1.5]  # layer 3: _gemm both ways

    monkeypatch.setattr(measuring, "_time_layer", fake)
    spec = _spec()
    assert measuring.gemm_flags(spec) == ((True, False), (False, False), (True, True))
    assert sorted(timed) == [(16, 24, False), (24, 32, False), (32, 20, True)]
    data = json.loads((tmp_path / measuring.CALIBRATION_FILE).read_text("utf-8"))
    (section,) = data
    assert section.startswith(measuring.gemm_source(symnet.__version__)[0])
    assert data[section]["float32 256x20 -> 32 first"] == [1.0, 2.0, 2.0, 1.0]
    measuring._flags.cache_clear()
    monkeypatch.setattr(measuring, "_time_layer", None)  # not called again
    assert measuring.gemm_flags(spec)[0] == (True, False)
    # another dtype is another measurement
    monkeypatch.setattr(measuring, "_time_layer", fake)
    timed.clear()
    measuring.gemm_flags(_spec("float64"))
    assert len(timed) == 3


def test_wide_layers_and_cpus_without_vector_units_are_not_measured(measuring, tmp_path,
                                                                    monkeypatch):
    """A layer wider than GEMM_MAX keeps np.dot unmeasured; a target without AVX2 and FMA
    (NUMBA_CPU_FEATURES, as Numba reads it) never uses _gemm and measures nothing."""
    monkeypatch.setattr(measuring, "_time_layer", lambda *a: [1.0, 2.0, 1.0, 2.0])
    wide = symnet.compiler.as_spec({
        "name": "wide", "network": {"inputs": 8, "layers": [
            {"units": GEMM_MAX + 1, "activation": "tanh"}, {"units": 8, "activation": "tanh"},
            {"units": 2, "activation": "linear"}]},
        "loss": {"kind": "mse"}, "codegen": {"mode": "loop"}})
    assert measuring.gemm_flags(wide) == ((False, False), (False, False), (True, True))
    monkeypatch.setenv("NUMBA_CPU_NAME", "x86-64")
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+64bit,+sse,+sse2,+avx,-avx2,-fma")
    assert measuring.gemm_flags(wide) == ((False, False),) * 3
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+64bit,+avx,+avx2,+fma")  # haswell-like
    assert measuring.gemm_flags(wide)[2] == (True, True)


def test_the_gemm_policy_is_checked(monkeypatch):
    from symnet.codegen.cpu import gemm

    monkeypatch.setenv("SYMNET_GEMM", "never")
    assert gemm.gemm_flags(_spec()) == ((False, False),) * 3
    monkeypatch.setenv("SYMNET_GEMM", "fastest")
    with pytest.raises(ValueError, match="SYMNET_GEMM: expected one of measure, bounds, never"):
        gemm.gemm_flags(_spec())


def test_measuring_for_real_and_the_module_built_from_it(measuring, tmp_path):
    """The real timing loop on this machine: four positive times per shape; a module compiled
    from whatever it chose trains to the same gradient as the NumPy reference."""
    times = measuring.measured("float64", [(8, 8, False)], tmp_path,
                               measuring.target_cpu())[(8, 8, False)]
    assert len(times) == 4 and all(0 < t < 1e-2 for t in times)
    spec = _narrow("float64")
    m = symnet.compile(spec, tmp_path / "out")
    flags = measuring.gemm_flags(symnet.compiler.as_spec(spec))
    k = m._kernels
    assert [tuple(bool(v) for v in row) for row in
            m._LAYOUT[1:, [k.GEMM_FORWARD, k.GEMM_BACKWARD]]] == list(flags)
    _check_gradient(m, spec, np.random.default_rng(4), batch=9)


def test_the_kernel_file_does_not_depend_on_the_timings(measuring, tmp_path, monkeypatch):
    """Whatever the timings choose, a network with a candidate layer gets the same kernel file
    (it imports the gemm file): the next point of a sweep, whose new shapes are timed anew,
    reuses the compiled kernels; only the module's _LAYOUT differs."""
    builds = []
    for times in ([1.0, 2.0, 1.0, 2.0], [2.0, 1.0, 2.0, 1.0]):  # _gemm faster; np.dot faster
        monkeypatch.setattr(measuring, "_time_layer", lambda *a, t=times: t)
        measuring._flags.cache_clear()
        (tmp_path / measuring.CALIBRATION_FILE).unlink(missing_ok=True)  # measure again
        builds.append(symnet.build(_narrow("float64")))
    (name, text), (other_name, other_text) = builds[0].kernels[0], builds[1].kernels[0]
    assert (name, text) == (other_name, other_text) and "_gemm_file()" in text
    assert builds[0].source != builds[1].source  # the layout's GEMM columns
