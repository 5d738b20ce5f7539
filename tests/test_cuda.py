"""The CUDA target: the generated source, the spec key and the command line here; the kernels
against the CPU module under Numba's CUDA simulator (tests/cuda_sim_cases.py, in a separate
process); and, marked `gpu`, the real kernels when a GPU is present."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symnet
from symnet.cli import main
from symnet.codegen.cuda import CudaConfig
from symnet.compiler import build
from symnet.errors import SpecError
from symnet.spec import spec_from_dict

ROOT = Path(__file__).resolve().parent.parent
MAZUR = ROOT / "examples" / "mazur.toml"


def _spec(**codegen):
    return {"name": "tiny", "network": {"inputs": 2, "layers": [
        {"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "loss": {"kind": "bce"}, "codegen": codegen}


# -- the kernels, simulated ---------------------------------------------------------------------


SIM_CASES = ROOT / "tests" / "cuda_sim_cases.py"
# the cases' own pytest process needs neither hypothesis's plugin nor xdist's (about 0.6 s of
# each process's start)
_PLUGINS_OFF = ("-p", "no:hypothesispytest", "-p", "no:xdist")
# each case in its own process, so that the test processes share them out
SIMULATED = [node.name for node in ast.parse(SIM_CASES.read_text("utf-8")).body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


@pytest.mark.parametrize("case", SIMULATED)
def test_kernels_match_the_cpu_module_under_the_simulator(case, tmp_path):
    """Runs one case of tests/cuda_sim_cases.py with NUMBA_ENABLE_CUDASIM=1 in its own
    process. There, the CPU module is the reference for a few dozen samples, and it runs as
    Python (NUMBA_DISABLE_JIT=1: the same generated code, interpreted, as the simulator runs
    the GPU's; the main run tests the CPU modules compiled, as users get them): no compile at
    all, where compiling the reference without LLVM's optimizations took half of each case.
    Its matrix products go to np.dot (SYMNET_GEMM=never: _gemm is LLVM IR, which only a
    compile runs) on one thread."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT),
           "NUMBA_DISABLE_JIT": "1", "SYMNET_GEMM": "never", "SYMNET_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_PLUGINS_OFF, "-o",
         "addopts=",
         "--basetemp", str(tmp_path / "sim"), f"{SIM_CASES}::{case}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout and "skipped" not in result.stdout


def test_every_simulated_case_is_run():
    assert len(SIMULATED) >= 7 and "test_lecture_example" in SIMULATED


# -- the kernels, typed and lowered for the CUDA target (no GPU needed) -------------------------


def _lower_for_cuda(module, monkeypatch):
    """Numba's CUDA front end on every kernel of a generated module: typing and lowering to
    LLVM IR for compute capability 8.0, without a driver (only NVVM's PTX step is left out).
    This is what catches a construct that the simulator runs but the CUDA target refuses."""
    import types as pytypes

    from numba import cuda, types

    if cuda.is_available():
        pytest.skip("a GPU is present: the gpu-marked tests compile the kernels for real")
    try:
        import numba.cuda.dispatcher as dispatcher
        from numba.cuda.compiler import compile_cuda
    except ImportError as exc:  # pragma: no cover - numba's layout changed
        pytest.skip(f"numba's CUDA compiler is not where this test expects it ({exc})")
    # device functions ask the (absent) current device for its compute capability
    monkeypatch.setattr(dispatcher, "get_current_device",
                        lambda: pytypes.SimpleNamespace(compute_capability=(8, 0)),
                        raising=True)
    F = getattr(types, module.DTYPE.__name__)
    A1, A2 = types.Array(F, 1, "C"), types.Array(F, 2, "C")
    I1, L1 = types.Array(types.int64, 1, "C"), types.Array(types.float64, 1, "C")
    sigs = {
        "_forward_kernel": (A1, A2, A2) + (A2,) * len(module._FORWARD_SCRATCH_UNITS),
        "_grad_kernel": (A2, A2, A2, I1, types.int64, types.int64, types.boolean, A2, I1, F,
                         L1, types.int64, types.boolean) + (A2,) * len(module._SCRATCH_UNITS),
    }
    if hasattr(module, "_jacobian_kernel"):  # the input derivatives and hvp (loop form, or
        # scalar form with [codegen] derivatives)
        A3 = types.Array(F, 3, "C")
        scratch = (A2,) * len(module._SCRATCH_UNITS)
        sigs["_jacobian_kernel"] = (A1, A2, A3) + scratch
        sigs["_input_grad_kernel"] = (A1, A2, A2, F, A2, A2) + scratch
        sigs["_hvp_kernel"] = (A1, A1, A2, A2, F, A2) + (A2,) * len(module._HVP_SCRATCH_UNITS)
    if hasattr(module, "_reduce_update"):
        sigs["_reduce_update"] = (A2, types.int64, A2, I1, F, types.int64, L1, types.int64,
                                  types.boolean)
    for name, sig in sigs.items():
        compile_cuda(getattr(module, name).py_func, types.void, sig, cc=(8, 0))
    return sorted(sigs)


@pytest.mark.parametrize("case", ["scalar-one-kernel", "scalar32-two-kernels",
                                  "loop-softmax-decay", "loop32-two-kernels",
                                  "loop-one-layer", "loop32-no-bias-step-decay"])
def test_kernels_type_and_lower_for_the_cuda_target(case, tmp_path, monkeypatch):
    wide = {"name": "lw", "network": {"inputs": 5, "layers": [
        {"units": 7, "activation": "tanh"}, {"units": 4, "activation": "relu", "bias": "shared"},
        {"units": 3, "activation": "softmax"}]},
        "loss": {"kind": "cross_entropy", "weight_decay": 0.01},
        "training": {"optimizer": "adam"}, "codegen": {"mode": "loop"}}
    small = {"name": "sw", "network": {"inputs": 3, "layers": [
        {"units": 4, "activation": "gelu"}, {"units": 3, "activation": "softplus"},
        {"units": 2, "activation": "sigmoid"}]}, "loss": {"kind": "bce"},
        "training": {"optimizer": "sgd", "momentum": 0.9, "nesterov": True}}
    one = {"name": "ol", "network": {"inputs": 4, "layers": [
        {"units": 3, "activation": "softmax", "bias": "shared"}]},
        "loss": {"kind": "cross_entropy", "reduction": "sum"}, "codegen": {"mode": "loop"}}
    nobias = {"name": "nb", "network": {"inputs": 3, "layers": [
        {"units": 5, "activation": {"name": "leaky_relu", "alpha": 0.1}, "bias": "none"},
        {"units": 4, "activation": "softsign"},
        {"units": 2, "activation": "linear", "bias": "shared"}]},
        "loss": {"kind": "mae", "weight_decay": 0.001},
        "training": {"optimizer": "adam", "update": ["weights"],
                     "lr_decay": {"kind": "step", "every": 3, "factor": 0.5}},
        "codegen": {"mode": "loop"}}
    spec, dtype, config = {
        "scalar-one-kernel": (small, "float64", None),
        "scalar32-two-kernels": ({**small, "codegen": {"derivatives": True}}, "float32",
                                 CudaConfig(fused_max=0)),
        "loop-softmax-decay": (wide, "float64", None),
        "loop32-two-kernels": (wide, "float32", CudaConfig(fused_max=0,
                                                            reduce_blockwise_max=0)),
        "loop-one-layer": (one, "float64", None),
        "loop32-no-bias-step-decay": (nobias, "float32", None),
    }[case]
    compiled = build(spec, dtype=dtype, target="cuda", cuda_config=config)
    module = symnet.compiler.import_module(symnet.compiler.write(compiled, tmp_path),
                                           compiled.module_name)
    kernels = _lower_for_cuda(module, monkeypatch)
    assert ("_reduce_update" in kernels) == (config is not None)
    # every loop form has the input derivatives and hvp; the scalar form with derivatives
    derivatives = {"_jacobian_kernel", "_input_grad_kernel", "_hvp_kernel"}
    assert derivatives <= set(kernels) or case == "scalar-one-kernel"


# -- the generated source -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["scalar", "loop"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_source_is_python_that_imports_numpy_and_numba_only(mode, dtype):
    compiled = build(_spec(mode=mode, dtype=dtype), target="cuda")
    assert compiled.target == "cuda" and compiled.module_name == "tiny_cuda"
    assert compiled.mode == mode
    src = compiled.source
    compile(src, "tiny_cuda.py", "exec")  # valid Python
    imports = {line.split()[1] for line in src.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"math", "numpy", "numba"}
    assert src.startswith("# tiny_cuda.py: generated by symnet")
    assert "np.exp" not in src and "np.tanh" not in src  # device code calls math.*
    if dtype == "float32":
        assert "from numba import float32 as _KT" in src


def test_scalar_source_keeps_the_lecture_names():
    src = build(MAZUR, target="cuda").source
    assert "w5 = theta[5]  # W2[0, 0]" in src
    assert "b1 = theta[4]  # b1 (shared)" in src
    assert "delta_o1 = dE_dout_o1*out_o1*(1.0 - out_o1)" in src
    assert "# forward, layer 1 (hidden, sigmoid)" in src
    # the update touches the weights only (update = ["weights"]): theta[4] and [9] are biases
    assert "return (0 <= p < 4) or (5 <= p < 9)" in src


def test_loop_form_stages_weights_in_shared_memory_within_the_budget():
    spec = {"name": "w", "network": {"inputs": 30, "layers": [
        {"units": 40, "activation": "relu"}, {"units": 40, "activation": "relu"},
        {"units": 1, "activation": "linear"}]}, "loss": {"kind": "mse"},
        "codegen": {"mode": "loop", "dtype": "float32"}}
    # W1 (1200 floats) and W2 (1600) fit 12 KiB; W3 (40) still fits after them
    src = build(spec, target="cuda", cuda_config=CudaConfig(shared_weights_bytes=12288)).source
    assert "wsh = cuda.shared.array(2840, _KT)" in src
    src = build(spec, target="cuda", cuda_config=CudaConfig(shared_weights_bytes=8000)).source
    assert "wsh = cuda.shared.array(1240, _KT)" in src  # W1 and W3; W2 stays in theta
    assert "theta[1240 + j*40 + i]" in src
    src = build(spec, target="cuda", cuda_config=CudaConfig(shared_weights_bytes=0)).source
    assert "cuda.shared.array(" in src and "wsh" not in src


def test_static_shared_memory_stays_within_48_kib():
    """The weights get what the reduction buffer and the tile's rows leave of a block's 48 KiB
    of static shared memory: W1 (4096 float64s, 32 KiB) does not fit next to the 16 KiB
    buffer, W4 (64) does."""
    spec = {"name": "w64", "network": {"inputs": 64, "layers": [
        {"units": 64, "activation": "relu"}, {"units": 64, "activation": "relu"},
        {"units": 64, "activation": "relu"}, {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"}}
    src = build(spec, target="cuda").source
    assert "wsh = cuda.shared.array(64, _KT)" in src
    assert "red = cuda.shared.array((_CHUNK, THREADS_PER_BLOCK), _KT)" in src
    src = build(spec, dtype="float32", target="cuda").source
    assert "wsh = cuda.shared.array(8192, _KT)" in src  # W1 and W2: 32 KiB


def test_cuda_config_is_checked():
    with pytest.raises(ValueError, match="threads_per_block"):
        CudaConfig(threads_per_block=96)
    with pytest.raises(ValueError, match="reduce_threads"):
        CudaConfig(reduce_threads=0)


# -- the spec key and the command line -----------------------------------------------------------


def test_targets_key():
    assert spec_from_dict(_spec()).codegen.targets == ("cpu",)
    assert spec_from_dict(_spec(targets=["cpu", "cuda"])).codegen.targets == ("cpu", "cuda")
    for bad in (["gpu"], [], "cuda", ["cuda", "cuda"], [1]):
        with pytest.raises(SpecError, match="codegen.targets: expected a non-empty list"):
            spec_from_dict(_spec(targets=bad))
    with pytest.raises(SpecError, match="codegen.targets"):
        build(_spec(), target="tpu")


def test_cli_target_cuda(tmp_path, capsys):
    assert main(["compile", str(MAZUR), "-o", str(tmp_path), "--target", "cuda"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mazur_cuda.py"]
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "mazur_cuda.py")


def test_cli_compiles_every_target_of_the_spec(tmp_path, capsys):
    spec = tmp_path / "both.toml"
    spec.write_text(MAZUR.read_text().replace('name = "mazur"', 'name = "both"')
                    + 'targets = ["cpu", "cuda"]\n')
    out = tmp_path / "out"
    assert main(["compile", str(spec), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["both.py", "both_cuda.py"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [str(out / "both.py"), str(out / "both_cuda.py")]
    # --target picks one of them
    assert main(["compile", str(spec), "-o", str(tmp_path / "one"), "--target", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["both.py"]


def test_cli_bad_targets_write_nothing(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(MAZUR.read_text() + 'targets = ["cpu", "gpu"]\n')
    assert main(["compile", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "codegen.targets: expected" in err
    assert not (tmp_path / "out").exists()


def test_compile_imports_the_cuda_module(tmp_path):
    m = symnet.compile(MAZUR, tmp_path, target="cuda")
    assert m.__name__ == "mazur_cuda" and m.TARGET == "cuda"
    assert (tmp_path / "mazur_cuda.py").exists()
    assert m.PARAM_SHAPES == {"W1": (2, 2), "b1": (), "W2": (2, 2), "b2": ()}
    # the CPU module's constants, with the same values (the kernel file's are the CPU's own)
    cpu = symnet.compile(MAZUR, tmp_path)
    shared = {k for k in dir(cpu) if k.isupper()} - {"KERNEL_MODULE", "KERNEL_DIR",
                                                     "KERNEL_FILE", "CHECKPOINT_PLAN"}
    assert {"REDUCTION", "WEIGHT_DECAY", "LEARNING_RATE", "SPEC_SHA256"} <= shared
    for name in shared:
        assert getattr(m, name) == getattr(cpu, name), name


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-13), ("float32", 1e-5)])
@pytest.mark.parametrize("training", [{"optimizer": "adam"},
                                      {"momentum": 0.9, "nesterov": True, "lr_decay": {
                                          "kind": "step", "every": 2, "factor": 0.5}}],
                         ids=["adam", "nesterov-decay"])
def test_apply_gradients_on_the_host_as_the_cpu_module(dtype, rtol, training, tmp_path):
    """The CUDA module's apply_gradients (host-side NumPy, no GPU needed) takes the CPU
    module's step: parameters in UPDATE only, the state, the decayed learning rate."""
    spec = {"name": f"ag_{dtype}", "network": {"inputs": 3, "layers": [
        {"units": 4, "activation": "tanh"}, {"units": 2, "activation": "sigmoid"}]},
        "loss": {"kind": "mse", "weight_decay": 0.01},
        "training": {"learning_rate": 0.1, "update": ["weights"], **training},
        "codegen": {"dtype": dtype}}
    cpu = symnet.compile(spec, tmp_path)
    gpu = symnet.compile(spec, tmp_path, target="cuda")
    rng = np.random.default_rng(0)
    X, T = rng.normal(size=(7, 3)), rng.random((7, 2))
    a, b, sa, sb = cpu.init_params(), gpu.init_params(), cpu.init_state(), gpu.init_state()
    for k in range(4):
        g = cpu.grad(a, X, T)[1]
        cpu.apply_gradients(a, g, state=sa, epoch=k)
        gpu.apply_gradients(b, g, state=sb, epoch=k)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=rtol, atol=rtol * 1e-2)
    for name in sa:
        np.testing.assert_allclose(sb[name], sa[name], rtol=rtol, atol=rtol * 1e-2)
    assert np.array_equal(b["b1"], gpu.init_params()["b1"])  # not in UPDATE
    with pytest.raises(ValueError, match="grads: missing 'W1'"):
        gpu.apply_gradients(b, {})


# -- on a real GPU -------------------------------------------------------------------------------


def _gpu_or_skip():
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU here (numba.cuda.is_available() is False): the real kernels "
                    "are not run; the simulator test covers their logic")
    return cuda


@pytest.mark.gpu
@pytest.mark.parametrize("mode, dtype", [("scalar", "float64"), ("loop", "float64"),
                                         ("scalar", "float32"), ("loop", "float32")])
def test_real_kernels_match_the_cpu_module(mode, dtype, tmp_path):
    cuda = _gpu_or_skip()
    spec = {"name": f"g_{mode}_{dtype}", "network": {"inputs": 6, "layers": [
        {"units": 5, "activation": "tanh"}, {"units": 4, "activation": "relu"},
        {"units": 2, "activation": "sigmoid"}]}, "loss": {"kind": "bce"},
        "training": {"optimizer": "adam", "learning_rate": 0.01},
        "codegen": {"mode": mode, "dtype": dtype, "derivatives": True}}
    cpu = symnet.compile(spec, tmp_path)
    gpu = symnet.compile(spec, tmp_path, target="cuda")
    rng = np.random.default_rng(0)
    n = 5000  # several blocks, and a partial last block
    X = rng.normal(size=(n, 6)).astype(cpu.DTYPE)
    T = rng.uniform(size=(n, 2)).astype(cpu.DTYPE)
    tol = 1e-9 if dtype == "float64" else 2e-3
    p = cpu.init_params()
    np.testing.assert_allclose(gpu.forward(p, X), cpu.forward(p, X), rtol=tol, atol=tol)
    e_cpu, g_cpu = cpu.grad(p, X, T)
    e_gpu, g_gpu = gpu.grad(p, X, T)
    assert e_gpu == pytest.approx(e_cpu, rel=tol, abs=tol)
    for k in g_cpu:
        np.testing.assert_allclose(g_gpu[k], g_cpu[k], rtol=tol, atol=tol)
    # jacobian, input_grad and hvp at the default launch settings
    np.testing.assert_allclose(gpu.jacobian(p, X), cpu.jacobian(p, X), rtol=tol, atol=tol)
    (e_gpu, x_gpu), (e_cpu, x_cpu) = gpu.input_grad(p, X, T), cpu.input_grad(p, X, T)
    assert e_gpu == pytest.approx(e_cpu, rel=tol, abs=tol)
    np.testing.assert_allclose(x_gpu, x_cpu, rtol=tol, atol=tol)
    V = {k: rng.normal(size=v.shape).astype(cpu.DTYPE) for k, v in p.items()}
    (e_gpu, h_gpu), (e_cpu, h_cpu) = gpu.hvp(p, X, T, V), cpu.hvp(p, X, T, V)
    assert e_gpu == pytest.approx(e_cpu, rel=tol, abs=tol)
    for k in h_cpu:
        np.testing.assert_allclose(h_gpu[k], h_cpu[k], rtol=tol, atol=tol)
    pc, pg = cpu.init_params(), gpu.init_params()
    lc = cpu.fit(pc, X, T, 20, batch_size=1000, seed=1)
    lg = gpu.fit(pg, cuda.to_device(X), cuda.to_device(T), 20, batch_size=1000, seed=1)
    np.testing.assert_allclose(lg, lc, rtol=10 * tol, atol=10 * tol)
    assert lg[-1] < lg[0]


@pytest.mark.gpu
def test_simulated_cases_on_the_real_gpu(tmp_path):
    """Every case of tests/cuda_sim_cases.py (tiny launch settings: several blocks, grid-stride
    loops, padded tiles) on the real GPU instead of the simulator."""
    _gpu_or_skip()
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "SYMNET_CUDA_CASES": "gpu", "PYTHONPATH": path}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_PLUGINS_OFF, "-o",
         "addopts=",
         "--basetemp", str(tmp_path / "real"), str(SIM_CASES)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert f"{len(SIMULATED)} passed" in result.stdout and "skipped" not in result.stdout
