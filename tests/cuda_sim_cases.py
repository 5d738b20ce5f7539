"""The CUDA module against the CPU module, under Numba's CUDA simulator (or on a real GPU).

Not collected by the main test run (its name does not start with test_): tests/test_cuda.py
runs it in a separate pytest process with NUMBA_ENABLE_CUDASIM=1, because the simulator
replaces numba.cuda for the whole process. The simulator runs every GPU thread as a Python
thread, so the batches and nets are tiny, and the launch settings (CudaConfig) are small
enough that a few dozen samples already span several blocks and several tiles per block.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from symnet.codegen.cuda import CudaConfig
from symnet.compiler import build, import_module, write

# under the simulator, or on a real GPU when SYMNET_CUDA_CASES=gpu (the gpu-marked test)
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" \
        and os.environ.get("SYMNET_CUDA_CASES") != "gpu":  # pragma: no cover
    pytest.skip("run by tests/test_cuda.py with NUMBA_ENABLE_CUDASIM=1 (or SYMNET_CUDA_CASES=gpu)",
                allow_module_level=True)

import sys  # noqa: E402
import threading  # noqa: E402

from numba import cuda  # noqa: E402  (after the check: the simulator must be on)


def _simulate_finely():
    """Two settings of the simulator for this process. Its block manager polls its threads
    in a busy loop, and with CPython's default 5 ms thread switch interval most of a launch
    is that loop (a case took 36 s; with 20 us, 18 s). Finer switching also interleaves the
    simulated threads more finely, so a missing syncthreads shows sooner. It also exposes a
    race in the simulator itself: cuda.shared.array checks and then fills its table of
    arrays per source line without a lock, so two threads could each make their own
    "shared" array; the allocation is made under a lock here."""
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    sys.setswitchinterval(2e-5)
    lock = threading.Lock()
    dynamic = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype):
        if shape == 0:  # dynamic shared memory: one buffer, no table
            return dynamic(self, shape, dtype)
        caller = sys._getframe(1)  # the simulator's key: the calling line
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                if isinstance(dtype, types.Type):
                    dtype = numpy_support.as_dtype(dtype)
                found = self._allocations[key] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array


if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    _simulate_finely()

# 8 threads a block and at most 2 blocks: 20 samples are 3 tiles, so the grid-stride loop,
# several blocks' partials and the padding of the last tile are all exercised. A step is one
# kernel (the last block reduces; small nets) ...
SMALL = CudaConfig(threads_per_block=8, max_blocks=2, reduce_chunk=4)
# ... or two: the reduction kernel with one thread per parameter (wide nets) ...
THREADWISE = CudaConfig(threads_per_block=8, max_blocks=2, fused_max=0, reduce_threads=32,
                        reduce_blockwise_max=0)
# ... or one block per parameter; and no weights in shared memory
BLOCKWISE = CudaConfig(threads_per_block=8, max_blocks=3, fused_max=0, reduce_threads=4,
                       reduce_blockwise_max=4096, shared_weights_bytes=0)


def _pair(spec, tmp_path, config=SMALL, **overrides):
    cpu = build(spec, **overrides)
    gpu = build(spec, target="cuda", cuda_config=config, **overrides)
    return (import_module(write(cpu, tmp_path), cpu.module_name),
            import_module(write(gpu, tmp_path), gpu.module_name))


def _data(m, n=20, seed=3, kind="uniform"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m.N_INPUTS))
    if kind == "onehot":
        T = np.eye(m.N_OUTPUTS)[rng.integers(0, m.N_OUTPUTS, n)]
    else:
        T = rng.uniform(size=(n, m.N_OUTPUTS))
    return X.astype(m.DTYPE), T.astype(m.DTYPE)


def _close(a, b, tol):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _params_close(p, q, tol):
    assert set(p) == set(q)
    for k in p:
        _close(p[k], q[k], tol)


def _check_all(cpu, gpu, X, T, tol, epochs=2, batch_size=7):
    """forward, loss, grad, train_step (with state), full-batch and minibatch fit."""
    assert gpu.PARAM_SHAPES == cpu.PARAM_SHAPES and gpu.STATE_SHAPES == cpu.STATE_SHAPES
    assert gpu.TARGET == "cuda" and gpu.MODE == cpu.MODE and gpu.OPTIMIZER == cpu.OPTIMIZER
    p = cpu.init_params()
    for k, v in gpu.init_params().items():
        np.testing.assert_array_equal(v, p[k])
    _close(gpu.forward(p, X), cpu.forward(p, X), tol)
    _close(gpu.loss(p, X, T), cpu.loss(p, X, T), tol)
    e_cpu, g_cpu = cpu.grad(p, X, T)
    e_gpu, g_gpu = gpu.grad(p, X, T)
    _close(e_gpu, e_cpu, tol)
    _params_close(g_gpu, g_cpu, tol)
    for k in g_cpu:
        assert g_gpu[k].shape == cpu.PARAM_SHAPES[k] and g_gpu[k].dtype == cpu.DTYPE

    pc, pg = cpu.init_params(), gpu.init_params()
    sc, sg = cpu.init_state(), gpu.init_state()
    for _ in range(2):
        _close(gpu.train_step(pg, X, T, state=sg), cpu.train_step(pc, X, T, state=sc), tol)
    _params_close(pg, pc, tol)
    _params_close(sg, sc, tol)

    lc = cpu.fit(pc, X, T, epochs, state=sc)
    lg = gpu.fit(pg, X, T, epochs, state=sg)
    assert lg.dtype == cpu.DTYPE and lg.shape == (epochs,)
    _close(lg, lc, tol)
    _params_close(pg, pc, tol)
    _params_close(sg, sc, tol)

    # minibatches: the CUDA module visits the samples in the CPU module's shuffled order
    lc = cpu.fit(pc, X, T, epochs, batch_size=batch_size, seed=11, state=sc)
    lg = gpu.fit(pg, X, T, epochs, batch_size=batch_size, seed=11, state=sg)
    _close(lg, lc, tol)
    _params_close(pg, pc, tol)
    _params_close(sg, sc, tol)
    return pc, pg


MAZUR = "examples/mazur.toml"


def test_lecture_example(tmp_path):
    """The lecture's 2-2-2 network: its first step's numbers, and everything against the CPU."""
    cpu, gpu = _pair(MAZUR, tmp_path)
    p = gpu.init_params()
    X, T = np.array([[0.05, 0.10]]), np.array([[0.01, 0.99]])
    E, g = gpu.grad(p, X, T)
    assert abs(E - 0.298371109) < 1e-9  # the lecture's E_total
    assert abs(g["W2"][0, 0] - 0.082167041) < 1e-9  # dE/dw5
    assert abs(g["W1"][0, 0] - 0.000438568) < 1e-9  # dE/dw1
    gpu.train_step(p, X, T)
    assert abs(p["W2"][0, 0] - 0.35891648) < 1e-8  # w5+
    assert p["b1"] == 0.35 and p["b2"] == 0.60  # update = ["weights"]
    _check_all(cpu, gpu, *_data(cpu), tol=1e-10)
    _check_argument_errors(cpu, gpu)
    # predict (two sigmoid outputs: the outputs), and a file saved by one loaded by the other
    Xs = _data(cpu, n=5)[0]
    _close(gpu.predict(p, Xs), cpu.predict(p, Xs), 1e-12)
    gpu.save(tmp_path / "p.npz", p)
    q = cpu.load(tmp_path / "p.npz")
    for k in p:
        np.testing.assert_array_equal(q[k], p[k])


def _scalar_spec(name, **extra):
    spec = {
        "name": name,
        "network": {"inputs": 3, "layers": [
            {"units": 4, "activation": "gelu"},
            {"units": 3, "activation": {"name": "elu", "alpha": 0.7}},
            {"units": 2, "activation": "sigmoid", "bias": "shared"}]},
        "loss": {"kind": "bce", "reduction": "sum", "weight_decay": 0.01},
        "training": {"optimizer": "adam", "learning_rate": 0.02, "update": ["weights", "biases"],
                     "lr_decay": {"kind": "step", "every": 2, "factor": 0.5}},
        "init": {"seed": 5},
        "codegen": {"mode": "scalar", "derivatives": True},
    }
    spec.update(extra)
    return spec


def _check_derivatives(cpu, gpu, X, T, tol):
    """jacobian, input_grad and hvp (either form's kernels) against the CPU module's, with
    numpy inputs and with device inputs (jacobian and input_grad return device arrays then)."""
    rng = np.random.default_rng(5)
    p = {k: (v + 0.2 * rng.normal(size=v.shape)).astype(cpu.DTYPE)
         for k, v in cpu.init_params().items()}
    V = {k: rng.normal(size=v.shape).astype(cpu.DTYPE) for k, v in p.items()}
    _close(gpu.jacobian(p, X), cpu.jacobian(p, X), tol)
    _close(gpu.jacobian(p, cuda.to_device(X)).copy_to_host(), cpu.jacobian(p, X), tol)
    (e_gpu, g_gpu), (e_cpu, g_cpu) = gpu.input_grad(p, X, T), cpu.input_grad(p, X, T)
    _close(e_gpu, e_cpu, tol)
    _close(g_gpu, g_cpu, tol)
    e_dev, g_dev = gpu.input_grad(p, cuda.to_device(X), cuda.to_device(T))
    _close(g_dev.copy_to_host(), g_cpu, tol)
    (e_gpu, h_gpu), (e_cpu, h_cpu) = gpu.hvp(p, X, T, V), cpu.hvp(p, X, T, V)
    _close(e_gpu, e_cpu, tol)
    _params_close(h_gpu, h_cpu, tol)


def test_scalar_adam_weight_decay_float64(tmp_path):
    """erf, expm1 and the fused bce; the sum reduction's weight decay (on the first sample of
    each batch: the minibatches must number their samples as the CPU does); Adam; step decay;
    the input derivatives and the Hessian-vector product."""
    cpu, gpu = _pair(_scalar_spec("sc64"), tmp_path)
    X, T = _data(cpu)
    _check_all(cpu, gpu, X, T, tol=1e-10)
    _check_derivatives(cpu, gpu, X, T, tol=1e-10)


def test_scalar_momentum_float32(tmp_path):
    spec = _scalar_spec("sc32", training={"optimizer": "sgd", "learning_rate": 0.1,
                                          "momentum": 0.9, "nesterov": True,
                                          "lr_decay": {"kind": "exponential", "rate": 0.9}})
    spec["loss"] = {"kind": "mse"}
    spec["codegen"] = {"mode": "scalar", "dtype": "float32", "derivatives": True}
    cpu, gpu = _pair(spec, tmp_path, config=THREADWISE)
    X, T = _data(cpu)
    pc, pg = _check_all(cpu, gpu, X, T, tol=2e-4)
    assert pg["W1"].dtype == np.float32
    _check_derivatives(cpu, gpu, X, T, tol=2e-4)


def test_scalar_recompute(tmp_path):
    spec = {"name": "rec", "network": {"inputs": 2, "layers": [
        {"units": 3, "activation": "tanh"}, {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mae"}, "codegen": {"strategy": "recompute"}}
    cpu, gpu = _pair(spec, tmp_path)
    assert gpu.STRATEGY == "recompute"
    X, T = _data(cpu)
    p = cpu.init_params()
    _close(gpu.forward(p, X), cpu.forward(p, X), 1e-12)
    _params_close(gpu.grad(p, X, T)[1], cpu.grad(p, X, T)[1], 1e-10)


def _loop_spec(name, **extra):
    spec = {
        "name": name,
        "network": {"inputs": 5, "layers": [
            {"units": 7, "activation": "tanh"},
            {"units": 4, "activation": "relu", "bias": "shared"},
            {"units": 3, "activation": "softmax"}]},
        "loss": {"kind": "cross_entropy", "weight_decay": 0.01},
        "training": {"optimizer": "adam", "learning_rate": 0.01},
        "codegen": {"mode": "loop"},
    }
    spec.update(extra)
    return spec


def test_loop_softmax_weight_decay_adam(tmp_path):
    """The loop form: several hidden layers, a shared bias, softmax and cross-entropy, weight
    decay once per batch, Adam; weights staged in shared memory; the input derivatives and
    the Hessian-vector product (tanh's f'', relu's none, the softmax block's R{delta})."""
    cpu, gpu = _pair(_loop_spec("lp64"), tmp_path)
    assert cpu.MODE == gpu.MODE == "loop"
    X, T = _data(cpu, kind="onehot")
    _check_all(cpu, gpu, X, T, tol=1e-10)
    _check_derivatives(cpu, gpu, X, T, tol=1e-10)
    _check_device_inputs(cpu, gpu)
    _check_validation(cpu, gpu, *_data(cpu, kind="onehot"), tol=1e-10)


def test_loop_blockwise_reduction_unstaged(tmp_path):
    """The other reduction kernel (one block per parameter) and weights read from global
    memory, with SGD and no bias on the output layer; the derivatives under the sum
    reduction, through sigmoid's f''."""
    spec = _loop_spec("lpbw", training={"optimizer": "sgd", "learning_rate": 0.05,
                                        "momentum": 0.5})
    # a smaller net: the simulator runs one block per parameter and step
    spec["network"] = {"inputs": 3, "layers": [
        {"units": 3, "activation": "sigmoid"},
        {"units": 2, "activation": "linear", "bias": "none"}]}
    spec["loss"] = {"kind": "sse", "reduction": "sum"}
    cpu, gpu = _pair(spec, tmp_path, config=BLOCKWISE)
    X, T = _data(cpu)
    _check_all(cpu, gpu, X, T, tol=1e-10, epochs=1)
    _check_derivatives(cpu, gpu, X, T, tol=1e-10)


def test_loop_float32(tmp_path):
    spec = _loop_spec("lp32", codegen={"mode": "loop", "dtype": "float32"})
    cpu, gpu = _pair(spec, tmp_path, config=THREADWISE)
    X, T = _data(cpu, kind="onehot")
    _check_all(cpu, gpu, X, T, tol=2e-4)
    _check_derivatives(cpu, gpu, X, T, tol=2e-4)


def _check_validation(cpu, gpu, X, T, tol):
    """fit with validation data and early stopping: the same history and parameters."""
    Xv, Tv = X[:6], T[:6]
    pc, pg = cpu.init_params(), gpu.init_params()
    hc = cpu.fit(pc, X, T, 4, validation=(Xv, Tv), patience=1, min_delta=1e-3)
    hg = gpu.fit(pg, X, T, 4, validation=(Xv, Tv), patience=1, min_delta=1e-3)
    assert hg.keys() == hc.keys() and hg["epochs"] == hc["epochs"]
    assert (hg["best_epoch"], hg["stopped_epoch"]) == (hc["best_epoch"], hc["stopped_epoch"])
    for key in ("loss", "val_loss") + (("val_accuracy",) if "val_accuracy" in hc else ()):
        _close(hg[key], hc[key], tol)
    _params_close(pg, pc, tol)


def _check_device_inputs(cpu, gpu):
    """X and T already on the device are used in place: the results are those of numpy X and
    T, and forward returns a device array."""
    X, T = _data(cpu, kind="onehot")
    Xd, Td = cuda.to_device(X), cuda.to_device(T)
    p = cpu.init_params()
    Y = gpu.forward(p, Xd)
    assert not isinstance(Y, np.ndarray)
    _close(Y.copy_to_host(), cpu.forward(p, X), 1e-12)
    pg, pc = gpu.init_params(), cpu.init_params()
    # 2 epochs of 3 minibatches, the last one short (the simulator's launches are slow)
    _close(gpu.fit(pg, Xd, Td, 2, batch_size=8, seed=2), cpu.fit(pc, X, T, 2, batch_size=8,
                                                                  seed=2), 1e-10)
    _params_close(pg, pc, 1e-10)
    with pytest.raises(ValueError, match="X: expected a float64 device array"):
        gpu.forward(p, cuda.to_device(X.astype(np.float32)))


def _check_argument_errors(cpu, gpu):
    """The CUDA module refuses what the CPU module refuses, with the same message."""
    X, T = _data(cpu, n=4)
    p = cpu.init_params()
    bad = [
        lambda m: m.forward([1, 2], X),
        lambda m: m.forward({k: v for k, v in p.items() if k != "b1"}, X),
        lambda m: m.forward({**p, "W9": p["W1"]}, X),  # an unexpected key
        lambda m: m.loss({**p, "b1": p["b1"] + 1j}, X, T),  # not real numbers
        lambda m: m.loss(p, X[:, :1], T),
        lambda m: m.grad(p, X, T[:3]),
        lambda m: m.train_step({**p, "W1": p["W1"].astype(np.float32)}, X, T),
        lambda m: m.train_step(p, X, T, lr=-1.0),
        lambda m: m.fit(p, X, T, -1),
        lambda m: m.fit(p, X, T, 2, batch_size=0),
        lambda m: m.fit(p, X, T, 2, seed=-3),
    ]
    for call in bad:
        with pytest.raises(ValueError) as want:
            call(cpu)
        with pytest.raises(ValueError) as got:
            call(gpu)
        assert str(got.value) == str(want.value)
    assert gpu.fit(p, X, T, 0).shape == (0,)
