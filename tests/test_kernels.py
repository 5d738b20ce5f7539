"""The loop form's kernel file: one per kind of network, whatever its widths, depth or
numbers; compiled once and shared by every entry point, and by the next network of the same
kinds without lowering (or importing sympy) again."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _process import REGISTRIES
from _reference import finite_difference_grad
from _reference import loss as ref_loss

import symnet
import symnet.loop

ROOT = Path(__file__).resolve().parents[1]


def _spec(widths, activation="tanh", lr=0.05, name="kinds", **training):
    return {
        "name": name,
        "network": {"inputs": 3, "layers": [{"units": u, "activation": activation}
                                            for u in widths] + [{"units": 2,
                                                                 "activation": "linear"}]},
        "loss": {"kind": "mse", "reduction": "mean"},
        "training": {"optimizer": "sgd", "learning_rate": lr, **training},
        "codegen": {"mode": "loop"},
    }


def test_the_kernel_text_depends_on_the_kinds_only():
    a = symnet.build(_spec([8, 8]))
    b = symnet.build(_spec([5, 7, 6, 9], lr=0.2))
    assert a.kernels[0] == b.kernels[0]  # widths, depth, learning rate: tables
    # the optimizer: its update rule and numbers are in the tables, its step the gemm file's
    c = symnet.build(_spec([8, 8], momentum=0.5))
    d = symnet.build(_spec([5, 7, 6, 9], momentum=0.9, nesterov=True))
    e = symnet.build({**_spec([8, 8]), "training": {"optimizer": "adam", "learning_rate": 0.01}})
    assert a.kernels[0] == c.kernels[0] == d.kernels[0] == e.kernels[0]
    assert a.kernels[1] == e.kernels[1] and a.kernels[1][0].startswith("symnet_gemm_")
    assert symnet.build(_spec([8, 8], "relu")).kernels[0] != a.kernels[0]
    assert symnet.build(_spec([8, 8]), dtype="float32").kernels[0] != a.kernels[0]


def test_what_does_not_depend_on_the_kinds_is_the_gemm_file_s():
    """The layers' products and bias sums, an epoch's shuffle and the workspace's views are
    the gemm file's, compiled once per machine: a kernel file calls them, whatever its kinds
    (with _gemm or without), and Numba compiles only its own formulas for a new kind."""
    import ast

    shared = {"_forward_product", "_backward_products", "_shuffle", "_rows"}
    for spec in (_spec([8, 8]), _spec([5], "relu"), _spec([64, 64], "softplus")):
        (_, text), (_, gemm_text) = symnet.build(spec).kernels
        functions = {f.name: f for f in ast.parse(text).body if isinstance(f, ast.FunctionDef)}
        calls = {name: {ast.unparse(c.func) for c in ast.walk(functions[name])
                        if isinstance(c, ast.Call)}
                 for name in ("_run", "_forward_kept", "_input_derivatives", "_hvp")}
        for name, called in calls.items():
            assert not called & {"np.dot", "_gemm_unit", "_gemm_bias_unit"}, name
        assert shared <= calls["_run"]
        defined = {f.name for f in ast.parse(gemm_text).body if isinstance(f, ast.FunctionDef)}
        assert {"_rows", "_shuffle"} <= defined
        for dtype in ("float32", "float64"):
            for kind in ("_", "_gemm_"):
                assert {f"{f}{kind}{dtype}" for f in shared - {"_rows", "_shuffle"}
                        | {"_back_product"}} <= defined


def test_a_network_of_known_kinds_is_rendered_without_lowering(tmp_path, monkeypatch):
    first = symnet.compile(_spec([8, 8]), tmp_path, kernel_dir=tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("lowered again")

    monkeypatch.setattr(symnet.loop, "lower_loop", refuse)
    spec = _spec([5, 9, 6], lr=0.2, name="kinds2")  # a layer 9 wide: _gemm, as [8, 8]
    second = symnet.compile(spec, tmp_path, kernel_dir=tmp_path)
    assert second.KERNEL_MODULE == first.KERNEL_MODULE
    assert second._kernels is first._kernels  # one module object, one compiled function
    assert len(list(tmp_path.glob("symnet_kernels_*.py"))) == 1
    rng = np.random.default_rng(7)
    params = second.init_params()
    X, T = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    E, g = second.grad(params, X, T)
    assert E == pytest.approx(ref_loss(spec, params, X, T), rel=1e-12)
    fd = finite_difference_grad(spec, params, X, T)
    for name in params:
        np.testing.assert_allclose(g[name], fd[name], rtol=1e-5, atol=1e-9)


def test_wide_layers_take_the_kernel_file_with_gemm_when_it_is_there(tmp_path, monkeypatch):
    """A network too wide for _gemm has a kernel file of its own without it; when only the
    variant of its kinds with _gemm has been compiled (a sweep from 8 units to 65 and 66,
    across GEMM_MAX), it runs that one, every product through np.dot, instead of compiling
    another."""
    narrow = symnet.compile(_spec([8, 8]), tmp_path, kernel_dir=tmp_path)
    assert narrow._LAYOUT[1:, narrow._kernels.GEMM_FORWARD].any()  # it has _gemm

    def refuse(*args, **kwargs):
        raise AssertionError("lowered again")

    monkeypatch.setattr(symnet.loop, "lower_loop", refuse)
    spec = _spec([65, 66], name="wide")
    wide = symnet.compile(spec, tmp_path, kernel_dir=tmp_path)
    assert wide._kernels is narrow._kernels
    assert len(list(tmp_path.glob("symnet_kernels_*.py"))) == 1
    k = wide._kernels
    assert not wide._LAYOUT[:, [k.GEMM_FORWARD, k.GEMM_BACKWARD]].any()  # all np.dot
    rng = np.random.default_rng(5)
    params = wide.init_params()
    X, T = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    E, g = wide.grad(params, X, T)
    assert E == pytest.approx(ref_loss(spec, params, X, T), rel=1e-12)
    entries = {name: rng.choice(v.size, size=min(v.size, 12), replace=False)
               for name, v in params.items()}  # a few of each: the reference is slow
    fd = finite_difference_grad(spec, params, X, T, entries=entries)
    for name in params:
        np.testing.assert_allclose(g[name].reshape(-1)[entries[name]],
                                   fd[name].reshape(-1)[entries[name]], rtol=1e-5, atol=1e-9)
    # without that file, the wide network gets its own kernel file, without _gemm
    monkeypatch.undo()
    alone = tmp_path / "alone"
    other = symnet.compile(spec, alone, kernel_dir=alone)
    assert other.KERNEL_MODULE != wide.KERNEL_MODULE
    # it never calls _gemm and has no team; it imports the gemm file for the optimizer's step
    assert "_gemm_unit(" not in Path(other._kernels.__file__).read_text(encoding="utf-8")
    assert other._kernels._run_team is None
    assert other._kernels._update is other._kernels._gemm_module._update_float64


def _decayed(widths, lam, name):
    spec = _spec(widths, name=name)
    spec["loss"] = {**spec["loss"], "weight_decay": lam}
    return spec


def test_the_weight_decay_is_a_number_in_the_tables(tmp_path, monkeypatch):
    """Networks that differ only in the weight decay's lambda share one kernel file (a search
    over scikit-learn's alpha compiles once), and each trains with its own lambda."""
    assert symnet.build(_decayed([8], 0.01, "d1")).kernels[0] \
        == symnet.build(_decayed([8], 0.3, "d2")).kernels[0] \
        != symnet.build(_spec([8])).kernels[0]
    first = symnet.compile(_decayed([8, 8], 0.01, "d1"), tmp_path, kernel_dir=tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("lowered again")

    monkeypatch.setattr(symnet.loop, "lower_loop", refuse)
    spec = _decayed([5, 9], 0.3, "d2")
    second = symnet.compile(spec, tmp_path, kernel_dir=tmp_path)
    assert second._kernels is first._kernels
    rng = np.random.default_rng(3)
    params = second.init_params()
    X, T = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    E, g = second.grad(params, X, T)
    assert E == pytest.approx(ref_loss(spec, params, X, T), rel=1e-12)
    without = {**spec, "loss": {"kind": "mse", "reduction": "mean"}}
    assert E > ref_loss(without, params, X, T) + 0.01  # lambda 0.3 is in it
    fd = finite_difference_grad(spec, params, X, T)
    for name in params:
        np.testing.assert_allclose(g[name], fd[name], rtol=1e-5, atol=1e-9)
    # (the input derivatives and hvp read the same lam: tests/test_input_derivatives.py)


def test_a_damaged_kernel_info_is_rebuilt(tmp_path):
    symnet.compile(_spec([8, 8]), tmp_path, kernel_dir=tmp_path)
    (info,) = tmp_path.glob("symnet_kinds_*.json")
    info.write_text('{"name": "symnet_kernels_../../evil"}', encoding="utf-8")
    m = symnet.compile(_spec([4], name="kinds3"), tmp_path, kernel_dir=tmp_path)
    assert m.KERNEL_MODULE.startswith("symnet_kernels_") and ".." not in m.KERNEL_MODULE
    assert m.forward(m.init_params(), np.ones((2, 3))).shape == (2, 2)


def test_a_shared_kernel_folder(tmp_path, monkeypatch):
    """Modules written into two folders share one kernel file in a third: the module records
    the folder (KERNEL_DIR), is current while the file is there, and says what is missing
    when it is not."""
    monkeypatch.delenv("SYMNET_KERNEL_DIR", raising=False)
    shared = tmp_path / "kernels"
    a = symnet.compile(_spec([8, 8], name="shared_a"), tmp_path / "a", kernel_dir=shared)
    monkeypatch.setenv("SYMNET_KERNEL_DIR", str(shared))  # the variable: the same folder
    b = symnet.compile(_spec([9], name="shared_b"), tmp_path / "b")
    assert a.KERNEL_DIR == b.KERNEL_DIR == str(shared.resolve())
    assert a.KERNEL_MODULE == b.KERNEL_MODULE
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) in (
        ["shared_b.py"], ["__pycache__", "shared_b.py"])  # no kernel file beside it
    kernel = shared / f"{a.KERNEL_MODULE}.py"
    assert kernel.is_file() and len(list(shared.glob("symnet_kinds_*.json"))) == 1
    assert b.forward(b.init_params(), np.ones((2, 3))).shape == (2, 2)
    spec_b = symnet.compiler.as_spec(_spec([9], name="shared_b"))
    assert symnet.compiler.is_current(tmp_path / "b" / "shared_b.py", spec_b)
    kernel.unlink()
    assert not symnet.compiler.is_current(tmp_path / "b" / "shared_b.py", spec_b)
    module_file = str(tmp_path / "b" / "shared_b.py")
    code = textwrap.dedent(f"""\
        import importlib.util, sys
        where = importlib.util.spec_from_file_location("shared_b", {module_file!r})
        m = importlib.util.module_from_spec(where)
        where.loader.exec_module(m)
        m.forward(m.init_params(), __import__("numpy").ones((2, 3)))
        """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert run.returncode != 0
    assert f"{a.KERNEL_MODULE}.py is neither beside it nor in KERNEL_DIR" in run.stderr
    again = symnet.compile(_spec([9], name="shared_b"), tmp_path / "b")  # written again
    assert kernel.is_file() and again.KERNEL_MODULE == a.KERNEL_MODULE


def test_every_entry_point_runs_one_compiled_function(tmp_path):
    spec = _spec([6, 4], name="entries", momentum=0.9)
    m = symnet.compile(spec, tmp_path)
    # another test in this process may have compiled versions of the same kernel file (the
    # trace's, a team's): count the versions these calls add
    before = set(m._kernels._run.signatures)
    p, state = m.init_params(), m.init_state()
    rng = np.random.default_rng(2)
    X, T = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    m.forward(p, X)
    m.loss(p, X, T)
    m.grad(p, X, T)
    m.train_step(p, X, T, state=state)
    m.fit(p, X, T, 2, state=state)
    m.fit(p, X, T, 2, batch_size=3, seed=1)
    m.fit(p, X, T, 2, validation=(X, T), patience=1)
    m.fit(p, X, T, 2, validation=(X[:4], T[:4]), batch_size=3, seed=1)
    m.forward(p, X.astype(np.float32))  # converted to the module's dtype first
    added = set(m._kernels._run.signatures) - before
    assert len(added) == 1 if not before else len(added) <= 1
    # the trace has one of its own (its arrays, None for the others, prune its code from theirs)
    m.fit(p, X, T, 2, trace=True)
    assert len(set(m._kernels._run.signatures) - before - added) <= 1
    assert len(m._kernels._run.signatures) >= 2


def test_the_next_network_of_a_sweep_needs_no_sympy(tmp_path):
    """In a new process, a network that differs from one compiled before only in its widths,
    depth and learning rate is rendered from the saved KernelInfo: sympy is never imported,
    the templates' code comes from the template cache and the kernel from Numba's cache,
    loaded without Numba's lowering registries (only compiling needs them). The same network
    again reuses its module and its tuning: not even Jinja2 is imported."""
    code = textwrap.dedent("""\
        import sys
        import numpy as np
        import symnet
        compiled = []  # templates compiled in this process (not loaded from the cache)
        if {render}:  # (the reuse imports no jinja2 here: it would hide whether symnet does)
            import jinja2
            original = jinja2.Environment.compile
            jinja2.Environment.compile = lambda *a, **k: compiled.append(1) or original(*a, **k)
        spec = {spec!r}
        m = symnet.compile(spec, {out!r})
        p = m.init_params()
        losses = m.fit(p, np.ones((4, 3)), np.zeros((4, 2)), 2)
        print("sympy" in sys.modules, losses[1] < losses[0], len(compiled) > 0,
              {registries!r} in sys.modules, "jinja2" in sys.modules)
        """)
    # the default policy, which tunes each new network (the suite's is the fixed bounds)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "SYMNET_GEMM": "measure"}
    env.pop("SYMNET_KERNEL_DIR", None)  # the kernel file beside the modules, new to this test
    runs = []
    for widths, lr, render in (([8, 8], 0.05, True), ([5, 9, 6], 0.2, True),
                               ([5, 9, 6], 0.2, False)):
        script = code.format(spec=_spec(widths, lr=lr, name=f"sweep{len(widths)}"),
                             out=str(tmp_path / "out"), render=render, registries=REGISTRIES)
        runs.append(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                   text=True, env=env, timeout=600))
    for run in runs:
        assert run.returncode == 0, run.stderr
    # the first one lowers with sympy, compiles the templates and the kernel file
    assert runs[0].stdout.split() == ["True", "True", "True", "True", "True"]
    assert runs[1].stdout.split() == ["False", "True", "False", "False", "True"]
    assert runs[2].stdout.split() == ["False", "True", "False", "False", "False"]


def test_params_views_into_theta_and_their_copies(tmp_path):
    """init_params' arrays are views into one flat array that the kernels update in place
    without a copy; a deep copy, or a dict with entries swapped, goes through the packing
    path and gets the same numbers."""
    import copy

    spec = _spec([4, 4, 4], name="views")  # W2 and W3 are both 4 x 4: they can be swapped
    m = symnet.compile(spec, tmp_path)
    rng = np.random.default_rng(4)
    X, T = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    p = m.init_params(seed=3)
    assert all(a.base is p.theta for a in p.values())
    q = copy.deepcopy(p)
    plain = {k: v.copy() for k, v in p.items()}
    W1 = p["W1"]
    for params in (p, q, plain):
        m.fit(params, X, T, 3, lr=0.1)
    assert p["W1"] is W1 and not np.array_equal(W1, m.init_params(seed=3)["W1"])
    for k in p:
        np.testing.assert_array_equal(q[k], p[k])
        np.testing.assert_array_equal(plain[k], p[k])
    swapped = m.init_params(seed=3)
    swapped["W2"], swapped["W3"] = swapped["W3"], swapped["W2"]
    E = m.loss(swapped, X, T)
    assert E == pytest.approx(ref_loss(spec, dict(swapped), X, T), rel=1e-12)


def test_every_optimizer_runs_the_one_compiled_kernel(tmp_path):
    """The update rule is a number in the tables: networks that differ only in the optimizer
    share the kernel file and its one compiled _run, and each takes its own rule's steps
    (tests/test_optimizers.py checks each rule's numbers)."""
    rng = np.random.default_rng(4)
    X, T = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    trained, compiled = [], []
    for name, training in (("sgd", {}), ("nesterov", {"momentum": 0.9, "nesterov": True}),
                           ("adam", {"optimizer": "adam"})):
        spec = _spec([6, 4], name=f"rule_{name}", **training)
        m = symnet.compile(spec, tmp_path / name, kernel_dir=tmp_path)
        p = m.init_params()
        m.fit(p, X, T, 3, state=m.init_state())
        trained.append(p["W1"].copy())
        compiled.append(len(m._kernels._run.signatures))  # (another test may have added some)
    assert len(list(tmp_path.glob("symnet_kernels_*.py"))) == 1
    assert compiled[0] == compiled[1] == compiled[2]
    assert not np.allclose(trained[0], trained[1]) and not np.allclose(trained[0], trained[2])
