"""Each pipeline stage on its own: lowering, differentiation, scheduling, printing, writing."""

import ast
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symnet
from symnet import functions
from symnet.autodiff import _inverts, adjoint_name, chain_comment, differentiate
from symnet.codegen.printer import NumbaPrinter
from symnet.errors import SymnetError
from symnet.files import write_if_changed
from symnet.layers import fused_loss
from symnet.lower import lower
from symnet.program import Edge
from symnet.schedule import RECOMPUTE_MAX_OPS, schedule

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("i1", "i2", "t1", "t2", "w1", "w2", "w5", "b1", "b2", "net_h1", "out_h1", "net_o1",
         "out_o1", "delta_o1", "dE_dout_o1")
S = {n: sp.Symbol(n, real=True) for n in NAMES}


def _two_layer(act="sigmoid", loss="sse", out_act=None):
    return symnet.spec_from_dict({
        "name": "n",
        "network": {"inputs": 2, "layers": [
            {"units": 2, "activation": act, "bias": "shared"},
            {"units": 2, "activation": out_act or act, "bias": "shared"}]},
        "loss": {"kind": loss},
    })


def _defs(block):
    return {a.lhs: a.rhs for a in block}


def test_lowering_uses_the_lecture_names_and_numbering():
    prog = lower(symnet.load_spec(EXAMPLES / "mazur.toml"))
    d = _defs(prog.forward)
    assert d[S["net_h1"]] == S["w1"] * S["i1"] + S["w2"] * S["i2"] + S["b1"]
    assert d[S["out_h1"]] == 1 / (1 + sp.exp(-S["net_h1"]))
    w5 = next(p for p in prog.params if p.symbol.name == "w5")
    assert (w5.array, w5.index) == ("W2", (0, 0))
    w7 = next(p for p in prog.params if p.symbol.name == "w7")
    assert (w7.array, w7.index) == ("W2", (1, 0))
    assert [p.array for p in prog.params][:5] == ["W1"] * 4 + ["b1"]
    assert [o.name for o in prog.outputs] == ["out_o1", "out_o2"]


@pytest.mark.parametrize("act, banned", [("sigmoid", sp.exp), ("tanh", sp.tanh)])
def test_derivatives_are_written_in_the_stored_output(act, banned):
    prog = differentiate(lower(_two_layer(act)))
    deltas = [a for a in prog.backward if a.role == "delta"]
    assert deltas
    for a in deltas:
        assert not a.rhs.has(banned), a  # f'(net) written with out, not recomputed
        assert not any(s.name.startswith("net_") for s in a.rhs.free_symbols)
    d = _defs(prog.backward)
    out = S["out_o1"]
    local = sp.simplify(d[S["delta_o1"]] / S["dE_dout_o1"])
    want = out * (1 - out) if act == "sigmoid" else 1 - out ** 2
    assert sp.simplify(local - want) == 0


def test_bce_on_sigmoid_gives_delta_y_minus_t():
    prog = differentiate(lower(_two_layer("tanh", "bce", out_act="sigmoid")))
    d = _defs(prog.backward)
    assert sp.expand(d[S["delta_o1"]] - (S["out_o1"] - S["t1"])) == 0


def test_reverse_mode_records_each_edge_and_builds_the_backward_from_it():
    prog = differentiate(lower(symnet.load_spec(EXAMPLES / "mazur.toml")))
    local = {(e.value, e.arg): e for e in prog.edges}
    out, net = S["out_o1"], S["net_o1"]
    assert local[(out, net)] == Edge(out, net, out * (1 - out), 2)  # in the stored output
    assert local[(net, S["w5"])].local == S["out_h1"]
    assert local[(prog.loss, out)].local == out - S["t1"]
    assert (net, S["i1"]) not in local  # inputs and targets are not differentiated
    value_of = {adjoint_name(a.lhs): a.lhs for a in prog.forward}
    value_of.update({g.name: p for p, g in prog.grads.items()})
    for a in prog.backward:  # each adjoint: the sum over the edges into its value
        v = value_of[a.lhs.name]
        into = [e for e in prog.edges if e.arg == v]
        terms = [e.local if e.value == prog.loss else sp.Symbol(adjoint_name(e.value),
                                                               real=True) * e.local
                 for e in into]
        assert sp.expand(a.rhs - sp.Add(*terms)) == 0, a
        assert a.comment == chain_comment(v, into, prog.loss)
    assert local[(S["out_h1"], S["net_h1"])].layer == 1


def test_the_record_holds_the_edges_that_do_not_reach_the_loss():
    # bce after sigmoid is computed from net_o1: out_o1 gets no adjoint, but its edge is there
    prog = differentiate(lower(_two_layer("tanh", "bce", out_act="sigmoid")))
    assert "dE_dout_o1" not in {a.lhs.name for a in prog.backward}
    local = {(e.value, e.arg): e.local for e in prog.edges}
    assert local[(S["out_o1"], S["net_o1"])] == S["out_o1"] * (1 - S["out_o1"])
    step = differentiate(lower(_two_layer("step")))
    assert local_of(step, "out_h1", "net_h1") == 0  # recorded, and nothing flows through it
    assert "delta_h1" not in {a.lhs.name for a in step.backward}


def local_of(prog, value, arg):
    return next(e.local for e in prog.edges if (e.value.name, e.arg.name) == (value, arg))


def test_a_derivative_partly_in_the_stored_output_keeps_its_net():
    """x*exp(x): f' = f + exp(x) is rewritten to out + exp(net), in the unit's own net (it
    once kept the registry's x, a name the generated code does not define)."""
    spec = symnet.spec_from_dict({"name": "n", "network": {"inputs": 1, "layers": [
        {"units": 1, "activation": {"expr": "x*exp(x)"}}, {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"}})
    prog = differentiate(lower(spec))
    net, out = S["net_h1"], S["out_h1"]
    assert local_of(prog, "out_h1", "net_h1") == out + sp.exp(net)
    assert all(e.local.free_symbols <= set(prog.definitions()) | set(prog.param_symbols)
               | set(prog.inputs) | set(prog.targets) for e in prog.edges)


def test_only_a_true_inverse_rewrites_a_derivative_in_the_output():
    """sympy.solve's own check of its solutions is off (it imports half of sympy): a
    candidate net = f^-1(out) must give f(net) = out back, numerically."""
    x, y = functions.x, functions.y
    sigmoid, softplus = (functions.ACTIVATIONS[n].expr(x) for n in ("sigmoid", "softplus"))
    assert _inverts(sigmoid, sp.log(y / (1 - y)))
    assert _inverts(softplus, sp.log(sp.exp(y) - 1))
    assert not _inverts(sigmoid, sp.log(y))
    assert not _inverts(softplus, -sp.log(sp.exp(y) - 1))
    assert not _inverts(sigmoid, sp.log(y / (1 - y)) + sp.Symbol("alpha"))  # not a number


@pytest.mark.parametrize("loss", [name for name, lo in functions.LOSSES.items()
                                  if lo.fused_with("sigmoid")])
def test_a_fused_loss_is_in_the_form_sympy_simplify_gives(loss):
    """bce (and nll) on a sigmoid, computed from the net: the stable softplus form, as
    sympy.simplify writes it (fused_loss gets there without simplify)."""
    x, y, t = functions.x, functions.y, functions.t
    per_unit, sigmoid = functions.LOSSES[loss].expr(y, t, 1), functions.ACTIVATIONS["sigmoid"]
    want = sp.expand_log(sp.simplify(per_unit.xreplace({y: sigmoid.expr(x)})), force=True)
    got = fused_loss(per_unit, sigmoid.expr(x))
    assert got == want
    assert got.has(sp.log(sp.exp(x) + 1)) and not got.has(sp.exp(-x))


def test_relu_derivative_is_a_step_in_net():
    prog = differentiate(lower(_two_layer("relu")))
    d = _defs(prog.backward)
    rhs = d[sp.Symbol("delta_h1", real=True)]
    assert rhs.has(sp.Piecewise)
    dE = sp.Symbol("dE_dout_h1", real=True)
    net = S["net_h1"]
    assert rhs.subs({net: 2.0, dE: 3.0}) == 3.0
    assert rhs.subs({net: -2.0, dE: 3.0}) == 0


def test_a_new_registry_entry_is_differentiated_by_sympy(monkeypatch):
    """One registry entry is all an activation needs: its derivative is derived."""
    softsign = functions.ActivationDef("softsign", lambda v: v / (1 + sp.Abs(v)))
    monkeypatch.setitem(functions.ACTIVATIONS, "softsign", softsign)
    prog = differentiate(lower(_two_layer("softsign")))
    d = _defs(prog.backward)
    x = sp.Symbol("x", real=True)
    want = sp.diff(x / (1 + sp.Abs(x)), x)
    local = d[sp.Symbol("delta_h1", real=True)] / sp.Symbol("dE_dout_h1", real=True)
    for value in (-1.7, 0.4, 2.5):
        got = local.subs(S["net_h1"], value).subs(S["out_h1"], value / (1 + abs(value)))
        assert float(got) == pytest.approx(float(want.subs(x, value)))


def _in_dependency_order(block, prog):
    known = set(prog.inputs) | set(prog.targets) | set(prog.param_symbols)
    for a in block:
        assert a.rhs.free_symbols <= known, (a, a.rhs.free_symbols - known)
        known.add(a.lhs)


@pytest.mark.parametrize("strategy", ["store", "recompute"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_schedules_are_in_dependency_order(strategy, act):
    prog = differentiate(lower(_two_layer(act)))
    sched = schedule(prog, strategy)
    for block in (sched.forward, sched.loss, sched.grad):
        _in_dependency_order(block, prog)
    produced = {a.lhs for a in sched.grad}
    assert set(prog.grads.values()) <= produced and prog.loss in produced


def test_store_and_recompute_figures():
    prog = differentiate(lower(symnet.load_spec(EXAMPLES / "mazur.toml")))
    store, recompute = schedule(prog, "store"), schedule(prog, "recompute")
    assert recompute.counts.temporaries == 0
    assert store.counts.temporaries > 0
    assert store.counts.backward_ops * 10 < recompute.counts.backward_ops
    assert store.counts.total_ops <= store.before_cse.total_ops
    # store and recompute compute the same function: compare at a random point
    rng = np.random.default_rng(0)
    point = {s: float(rng.normal()) for s in prog.inputs + prog.targets + prog.param_symbols}

    def evaluate(block):
        env = dict(point)
        for a in block:
            env[a.lhs] = float(a.rhs.xreplace(env))
        return env

    e1, e2 = evaluate(store.grad), evaluate(recompute.grad)
    for g in prog.grads.values():
        assert e1[g] == pytest.approx(e2[g], rel=1e-12)


def test_recompute_refuses_what_would_not_compile_in_time():
    # 18 parameters (under the parameter limit) but thousands of inlined operations
    spec = symnet.spec_from_dict({
        "name": "deep", "network": {"inputs": 2, "layers": [
            {"units": 2, "activation": "tanh"}, {"units": 2, "activation": "tanh"},
            {"units": 2, "activation": "tanh"}]},
        "loss": {"kind": "mse"}})
    with pytest.raises(SymnetError, match=f"limit is {RECOMPUTE_MAX_OPS}"):
        schedule(differentiate(lower(spec)), "recompute")


def _run(code, **env):
    return eval(code, {"np": np}, env)  # the printed code of a trusted test expression


def test_printer_prints_numbers_in_the_kernel_dtype():
    x = sp.Symbol("x")
    expr = sp.Rational(1, 2) * x + 1 - 3 * x ** 2
    p64, p32 = NumbaPrinter("float64"), NumbaPrinter("float32")
    assert "np.float32(0.5)" in p32.doprint(expr) and "np.float32(3.0)" in p32.doprint(expr)
    assert "np.float32" not in p64.doprint(expr)
    value = _run(p32.doprint(expr), x=np.float32(1.5))
    assert isinstance(value, np.float32)
    assert _run(p64.doprint(expr), x=1.5) == pytest.approx(0.75 + 1 - 6.75)


def test_printer_softplus_is_stable():
    x, t = sp.symbols("x t")
    expr = sp.log(1 + sp.exp(x)) - t * x
    code = NumbaPrinter().doprint(expr)
    assert "logaddexp" in code
    assert _run(code, x=1e4, t=1.0) == pytest.approx(0.0, abs=1e-9)
    assert _run(code, x=-1e4, t=0.0) == pytest.approx(0.0, abs=1e-9)
    assert _run(code, x=0.3, t=0.2) == pytest.approx(np.log1p(np.exp(0.3)) - 0.06)


@pytest.mark.parametrize("expr, point", [
    ("x**2/y", {"x": 1.5, "y": -0.7}),
    ("1/(x*y**3)", {"x": 1.5, "y": -0.7}),
    ("x**(-2) + sqrt(y)", {"x": 1.5, "y": 0.7}),
    ("x**7 - y**(3/2)", {"x": 1.1, "y": 0.7}),
    ("tanh(x)*exp(-y)/(1 + exp(-x))", {"x": 1.1, "y": 0.7}),
    ("Piecewise((x, x > 0), (0.2*x, True))", {"x": -1.1}),
    ("Piecewise((x, x > 0), (0.2*x, True))", {"x": 1.1}),
])
def test_printed_code_evaluates_like_sympy(expr, point):
    e = sp.sympify(expr)  # a fixed expression written in this test, not user input
    syms = {s.name: s for s in e.free_symbols}
    want = float(e.xreplace({syms[k]: v for k, v in point.items() if k in syms}))
    assert _run(NumbaPrinter().doprint(e), **point) == pytest.approx(want, rel=1e-14)


def test_writer_is_atomic_and_skips_identical_text(tmp_path):
    path = tmp_path / "m.py"
    assert write_if_changed(path, "a = 1\n") is True
    os.utime(path, (1_000_000, 1_000_000))
    assert write_if_changed(path, "a = 1\n") is False
    assert path.stat().st_mtime == 1_000_000
    assert write_if_changed(path, "a = 2\n") is True
    assert path.read_text() == "a = 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]  # no temporary left


def test_the_garbage_collector_is_paused_while_numba_compiles_the_module(tmp_path):
    """While Numba compiles a generated module's function, the cyclic garbage collector is
    off (a tenth of the compile time); it is on again after, and a compile of anyone else's
    function leaves it alone."""
    import gc

    from numba import njit
    from numba.core import event

    seen = []  # (function, whether the collector was on) as each compile starts and ends

    class Watch(event.Listener):
        def on_start(self, ev):
            seen.append((ev.data["dispatcher"].py_func.__name__, "start", gc.isenabled()))

        def on_end(self, ev):
            seen.append((ev.data["dispatcher"].py_func.__name__, "end", gc.isenabled()))

    m = symnet.compile(EXAMPLES / "mazur.toml", tmp_path)  # registers the pause on import
    watch = Watch()
    event.register("numba:compile", watch)
    try:
        assert gc.isenabled()
        m.forward(m.init_params(), np.ones((3, 2)))  # compiles _forward

        @njit
        def someone_elses(x):
            return x + 1

        someone_elses(1)
    finally:
        event.unregister("numba:compile", watch)
    assert ("_forward", "start", False) in seen  # (its listener ends before this one)
    assert ("someone_elses", "start", True) in seen
    assert gc.isenabled()


def test_generated_module_is_standalone_and_says_where_it_came_from(tmp_path):
    spec_path = EXAMPLES / "mazur.toml"
    compiled = symnet.build(symnet.load_spec(spec_path))
    tree = ast.parse(compiled.source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    # beside Python's standard library, numpy and numba only
    assert imported - set(sys.stdlib_module_names) == {"numpy", "numba"}
    kernels = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.decorator_list]
    assert {f.name for f in kernels} >= {"_forward", "_loss", "_grad", "_train_step", "_fit",
                                         "_fit_minibatch"}
    for f in kernels:
        assert ast.unparse(f.decorator_list[0]).startswith("njit(cache=True")
    head = "\n".join(compiled.source.splitlines()[:3])
    assert symnet.__version__ in head and "mazur.toml" in head
    assert hashlib.sha256(spec_path.read_bytes()).hexdigest() in head
    for name in ("net_h1", "out_o2", "delta_o1", "dE_dw5", "dE_dout_h1"):
        assert f"{name} = " in compiled.source


def test_spec_file_name_cannot_inject_code(tmp_path):
    bad = tmp_path / 'x".toml'
    bad.write_bytes((EXAMPLES / "mazur.toml").read_bytes())
    compiled = symnet.build(symnet.load_spec(bad))
    ast.parse(compiled.source)  # still valid Python
    assert 'SPEC_FILE = \'x".toml\'' in compiled.source


def test_printer_maps_functions_to_numpy_or_refuses():
    x = sp.Symbol("x")
    assert NumbaPrinter().doprint(sp.sin(x) * sp.cosh(x)) == "np.sin(x)*np.cosh(x)"
    with pytest.raises(ValueError, match="no NumPy equivalent"):
        NumbaPrinter().doprint(sp.gamma(x))


# ----------------------------------------------------------------------------------------
# the package's layout: dependencies run one way


ROOT = Path(__file__).resolve().parent.parent


def _imported(path: Path, package: str) -> set[str]:
    """The absolute names of the modules a source file of `package` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return names


def test_only_the_backend_registry_imports_the_code_generators():
    """symnet.codegen imports the pipeline's representations; of the rest of symnet, only
    symnet.backends imports symnet.codegen."""
    importers = sorted(path.name for path in (ROOT / "symnet").glob("*.py")
                       if any(n == "symnet.codegen" or n.startswith("symnet.codegen.")
                              for n in _imported(path, "symnet")))
    assert importers == ["backends.py"]
    # and the spec stage does without the checkpoint planner
    assert "symnet.checkpoint" not in _imported(ROOT / "symnet" / "spec.py", "symnet")


def test_import_symnet_imports_no_generator_sympy_or_numba():
    code = ("import sys, symnet; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sympy', 'numba', 'jinja2', 'matplotlib', 'codegen', 'templates') or "
            "m.startswith(('symnet.codegen', 'symnet.templates', 'symnet.checkpoint'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert run.stdout.strip() == "[]"


def test_the_command_line_starts_without_sympy_numba_or_dask():
    """`symnet --version`, `symnet train` with a current module, `symnet sweep`'s checks: none
    of them pays for importing sympy (about 0.2 s) before it needs it."""
    code = ("import sys, symnet.cli; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'sympy', 'numba', 'jinja2', 'dask', 'distributed', 'scipy'}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert run.stdout.strip() == "[]"
