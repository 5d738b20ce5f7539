"""The module of a residual loss (physics-informed terms, issue 16): its loss against an
independent NumPy evaluation of the terms (the derivatives by finite differences of `forward`),
its gradient against finite differences of its loss, its training entry points against each
other, float32 against float64, its checks, the command line, and the 1D Poisson example to
the accuracy the issue asks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from _process import run_module

import symnet
from symnet.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent

# two outputs, two sets of points, first, second and mixed derivatives, a shared bias, weight
# decay and the sum reduction: every path of the kernels on one small network. "inner" carries
# one channel per second-order pair (its terms read u_xx + u_yy and v_xy); "edge" one channel
# for the one combination its terms read, u_xx + 2 u_xy + u_yy. Layers of 16 units: some
# products run through _gemm (the suite's SYMNET_GEMM=bounds), the others np.dot
MIXED = {
    "name": "mixed_residuals",
    "network": {"inputs": 2, "layers": [
        {"units": 16, "activation": "tanh"},
        {"units": 16, "activation": "sigmoid", "bias": "shared"},
        {"units": 2, "activation": "softplus"}]},
    "loss": {"kind": "residuals", "reduction": "sum", "weight_decay": 0.01,
             "outputs": ["u", "v"], "terms": [
                 {"name": "a", "points": "inner",
                  "residual": "u_xx + u_yy - v_xy * x + u * v_x"},
                 {"name": "b", "points": "edge", "residual": "v - sin(y)", "weight": 3.0},
                 {"name": "c", "points": "inner", "residual": "u_y**2 - exp(-x)",
                  "weight": 0.5},
                 {"name": "d", "points": "edge", "weight": 40.0,
                  "residual": "(u_xx + 2*u_xy + u_yy) * (1 + y) - v_x"}]},
}


@pytest.fixture(scope="module")
def mixed(run_folder):
    return symnet.compile(MIXED, run_folder("residuals"))


def _params(m, seed=0):
    rng = np.random.default_rng(seed)
    return {k: np.asarray(v + 0.3 * rng.normal(size=v.shape), dtype=m.DTYPE)
            for k, v in m.init_params().items()}


def _points(seed=1):
    rng = np.random.default_rng(seed)
    return {"inner": rng.uniform(0, 1, (9, 2)), "edge": rng.uniform(0, 1, (6, 2))}


def _reference_loss(m, params, points):
    """The loss from the spec's formulas written in NumPy, every derivative of the outputs by
    central differences of forward: nothing of the module's derivative channels."""
    h = 1e-4

    def f(X):
        return m.forward(params, X)

    def shift(X, dx, dy):
        return X + np.array([dx, dy])

    def derivatives(X):
        U = f(X)
        dx = (f(shift(X, h, 0)) - f(shift(X, -h, 0))) / (2 * h)
        dy = (f(shift(X, 0, h)) - f(shift(X, 0, -h))) / (2 * h)
        dxx = (f(shift(X, h, 0)) - 2 * U + f(shift(X, -h, 0))) / h ** 2
        dyy = (f(shift(X, 0, h)) - 2 * U + f(shift(X, 0, -h))) / h ** 2
        dxy = (f(shift(X, h, h)) - f(shift(X, h, -h)) - f(shift(X, -h, h))
               + f(shift(X, -h, -h))) / (4 * h ** 2)
        return U, dx, dy, dxx, dyy, dxy

    u, v = 0, 1
    X = points["inner"]
    U, dx, dy, dxx, dyy, dxy = derivatives(X)
    a = dxx[:, u] + dyy[:, u] - dxy[:, v] * X[:, 0] + U[:, u] * dx[:, v]
    c = dy[:, u] ** 2 - np.exp(-X[:, 0])
    B = points["edge"]
    U, dx, dy, dxx, dyy, dxy = derivatives(B)
    b = U[:, v] - np.sin(B[:, 1])
    d = (dxx[:, u] + 2 * dxy[:, u] + dyy[:, u]) * (1 + B[:, 1]) - dx[:, v]
    decay = 0.01 * sum(float((params[k] ** 2).sum()) for k in params if k.startswith("W"))
    return float((a ** 2).sum() + 3.0 * (b ** 2).sum() + 0.5 * (c ** 2).sum()
                 + 40.0 * (d ** 2).sum() + decay)


def test_the_loss_is_the_terms_with_derivatives_of_the_outputs(mixed):
    assert mixed._CHANNELS == {"inner": ("v", "d0", "d1", "d0d0", "d0d1", "d1d1"),
                               "edge": ("v", "d0", "d1", "dd")}
    params, points = _params(mixed), _points()
    assert mixed.loss(params, points) == pytest.approx(_reference_loss(mixed, params, points),
                                                       rel=1e-6)


def test_the_gradient_is_the_derivative_of_the_loss(mixed):
    params, points = _params(mixed, 2), _points(3)
    E, g = mixed.grad(params, points)
    assert set(g) == set(params) and all(g[k].shape == params[k].shape for k in params)
    h = 1e-6
    for name, p in params.items():
        for idx in np.ndindex(p.shape):
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[name][idx] += h
            down[name][idx] -= h
            fd = (mixed.loss(up, points) - mixed.loss(down, points)) / (2 * h)
            assert g[name][idx] == pytest.approx(fd, rel=1e-6, abs=1e-8), (name, idx)


def test_the_products_run_through_gemm_and_np_dot(mixed):
    text = Path(mixed.__file__).read_text()
    assert "_gemm_unit(A1, np.ascontiguousarray(W2.T), N2)" in text  # 16 x 16: _gemm
    assert "_dot_into(A2, W3.T, N3)" in text  # 2 outputs: too narrow for _gemm, np.dot
    assert mixed.THREADS >= 1 and mixed.PARALLEL_MIN_POINTS == 2 * mixed._BLOCK


def test_points_shared_out_over_threads_take_the_steps_of_one_thread(mixed, monkeypatch):
    """The same loss, gradient and training steps when every set's points are shared out over
    three threads (each its own gradient arrays, summed) as on one, to rounding."""
    points = _points(6)
    monkeypatch.setattr(mixed, "PARALLEL_MIN_POINTS", 1)
    results = {}
    for threads in (1, 3):
        monkeypatch.setattr(mixed, "THREADS", threads)
        assert mixed._threads(mixed._points(points)) == threads
        params, state = _params(mixed, 7), mixed.init_state()
        E, g = mixed.grad(params, points)
        losses = mixed.fit(params, points, 3, lr=0.01, state=state)
        results[threads] = E, g, losses, params, state
    assert (os.getpid(), 2) in mixed._pools  # three threads: the caller and two of the pool's
    (E1, g1, l1, p1, s1), (E3, g3, l3, p3, s3) = results[1], results[3]
    assert E3 == pytest.approx(E1, rel=1e-13)
    np.testing.assert_allclose(l3, l1, rtol=1e-12)
    for k in g1:
        np.testing.assert_allclose(g3[k], g1[k], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(p3[k], p1[k], rtol=1e-11, atol=1e-14)
    for k in s1:
        np.testing.assert_allclose(s3[k], s1[k], rtol=1e-10, atol=1e-14)


def test_one_thread_calls_the_kernels_through_pointers(mixed, monkeypatch):
    """_run takes the sets' kernels and _close as function pointers, so that LLVM does not
    optimize their code again inside it, and the threads' path calls the very versions of
    them that _run calls: each kernel compiles once."""
    from numba import types

    points, params = _points(5), _params(mixed, 2)
    monkeypatch.setattr(mixed, "THREADS", 1)
    mixed.grad(params, points)
    mixed.fit(params, points, 2, lr=0.01, state=mixed.init_state())
    pointers = len(mixed._SETS) + 1
    assert mixed._run.signatures
    for signature in mixed._run.signatures:
        assert all(isinstance(t, types.FunctionType) for t in signature[:pointers])
    kernels = (*mixed._SETS, mixed._close)
    compiled = [len(k.signatures) for k in kernels]
    monkeypatch.setattr(mixed, "PARALLEL_MIN_POINTS", 1)
    monkeypatch.setattr(mixed, "THREADS", 2)
    mixed.fit(params, points, 2, lr=0.01, state=mixed.init_state())
    assert [len(k.signatures) for k in kernels] == compiled


def _grad_in_child(module, points, out):
    out.put(module.grad(_params(module, 7), points)[0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # forking with threads (3.12+)
def test_a_forked_process_shares_out_its_points_on_threads_of_its_own(mixed, monkeypatch):
    """After fork the pool's threads are gone from the child: it makes its own (the pools are
    kept per process) instead of waiting on the parent's forever."""
    import multiprocessing

    points = _points(6)
    monkeypatch.setattr(mixed, "PARALLEL_MIN_POINTS", 1)
    monkeypatch.setattr(mixed, "THREADS", 2)
    want = mixed.grad(_params(mixed, 7), points)[0]  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_grad_in_child, args=(mixed, points, out))
    child.start()
    child.join(120)
    if child.is_alive():  # waiting on threads that are not there
        child.kill()
    assert child.exitcode == 0
    assert out.get(timeout=10) == pytest.approx(want, rel=1e-13)


def test_a_new_process_loads_the_kernels_numba_compiled_here(mixed, tmp_path):
    """The module imported from its file alone in a new process runs the kernels compiled
    here, loaded from Numba's cache without Numba's lowering registries (only compiling needs
    them), and gets the same loss and gradient."""
    params, points = _params(mixed, 3), _points(3)
    want, grads = mixed.grad(params, points)  # compiled (or loaded) here, saved to the cache
    np.savez(tmp_path / "arrays.npz", **{f"p_{k}": v for k, v in params.items()},
             **{f"x_{k}": v for k, v in points.items()})
    words = run_module(mixed, f"""\
        a = np.load({str(tmp_path / "arrays.npz")!r})
        params = {{k[2:]: a[k] for k in a.files if k.startswith("p_")}}
        points = {{k[2:]: a[k] for k in a.files if k.startswith("x_")}}
        E, g = m.grad(params, points)
        print(repr(float(E)), repr(float(g["W1"][0, 0])))
        """)
    assert float(words[0]) == pytest.approx(want, rel=1e-13)
    assert float(words[1]) == pytest.approx(grads["W1"][0, 0], rel=1e-12)
    assert words[2] == "False"  # nothing compiled: the registries never loaded

def test_fit_takes_the_steps_train_step_takes(mixed):
    points = _points(4)
    a, b = _params(mixed, 5), _params(mixed, 5)
    sa, sb = mixed.init_state(), mixed.init_state()
    losses = mixed.fit(a, points, 4, lr=0.01, state=sa)
    stepped = [mixed.train_step(b, points, lr=0.01, state=sb) for _ in range(4)]
    np.testing.assert_allclose(losses, stepped, rtol=1e-12)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12)
    assert losses[-1] < losses[0]


def test_points_are_checked(mixed):
    params, points = _params(mixed), _points()
    with pytest.raises(ValueError, match=r"points: missing the set 'edge' \(expected \['inner', "
                                         r"'edge'\]\)"):
        mixed.grad(params, {"inner": points["inner"]})
    with pytest.raises(ValueError, match="points: unexpected set 'wall'"):
        mixed.grad(params, {**points, "wall": points["edge"]})
    with pytest.raises(ValueError, match=r"points\['inner'\]: X: expected shape \(n, 2\)"):
        mixed.grad(params, {**points, "inner": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="points: expected a dict of arrays"):
        mixed.fit(params, [points["inner"]], 2)


def test_float32_follows_float64(mixed, tmp_path):
    spec = {**MIXED, "name": "mixed_residuals32", "codegen": {"dtype": "float32"}}
    m32 = symnet.compile(spec, tmp_path)
    params, points = _params(mixed, 6), _points(7)
    E64, g64 = mixed.grad(params, points)
    E32, g32 = m32.grad({k: v.astype(np.float32) for k, v in params.items()},
                        {k: v.astype(np.float32) for k, v in points.items()})
    assert E32 == pytest.approx(E64, rel=1e-4)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=2e-3, atol=2e-4 * np.abs(g64[k]).max())


def test_targets_and_strategies_without_residual_kernels_are_refused():
    with pytest.raises(SpecError, match=r'codegen.targets: expected "cpu" for a residual loss'):
        symnet.build(MIXED, target="cuda")
    with pytest.raises(SpecError, match=r'codegen.strategy: expected "store" for a residual'):
        symnet.build(MIXED, strategy="recompute")


def test_the_command_line_compiles_and_inspects_it(tmp_path, capsys):
    from symnet.cli import main

    spec = ROOT / "examples" / "poisson1d.toml"
    assert main(["compile", str(spec), "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "poisson1d.py").is_file()
    assert 'form        residuals (2 terms on the points "interior", "boundary"' in out
    gemm = sorted(tmp_path.glob("symnet_gemm_*.py"))  # 16-unit layers: _gemm's file beside it
    assert len(gemm) == 1 and f"imports     {gemm[0]} (_gemm" in out
    assert main(["inspect", str(spec)]) == 0
    out = capsys.readouterr().out
    # the jet map of tanh on the second-order channel, derived by sympy
    assert 'points "interior": channels v, d0 (d/dx), d0d0 (d/dx d/dx)' in out
    assert "a_d0d0 =" in out and "tanh" in out
    assert "dr/du_xx = 1" in out
    # a Laplacian: one channel for u_xx + u_yy, and tanh's jet map on it
    assert main(["inspect", str(ROOT / "examples" / "poisson2d.toml")]) == 0
    out = capsys.readouterr().out
    assert ('points "interior": channels v, d0 (d/dx), d1 (d/dy), dd (d2/dx2 + d2/dy2)'
            in out)
    assert "a_dd =" in out and "a_d0d0" not in out
    # symnet train takes inputs and targets: refused in one line, exit 2, nothing written
    assert main(["train", str(spec), "--data", str(tmp_path / "none.npz")]) == 2
    assert "a residual loss trains on its sets of points" in capsys.readouterr().err


def test_the_1d_poisson_example_reaches_the_accuracy(tmp_path):
    """u'' = -pi^2 sin(pi x), u(0) = u(1) = 0: within 1e-3 of sin(pi x) (relative L2)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import pinn

    error, losses = pinn.run("poisson1d", tmp_path, plot=False, log=lambda *a: None)
    assert error < 1e-3
    assert losses[-1] < 1e-2 * losses[0]
