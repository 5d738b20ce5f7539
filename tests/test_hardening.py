"""Hardening: hostile formulas and names, reuse of a generated module only when it is current,
concurrent compiles, the wrappers' argument checks, numerics at extreme pre-activations, and
fit stopping on a loss that is not finite.

References are independent of the code under test: closed-form gradients evaluated with
mpmath at 50 digits, and plain Python or NumPy loops.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import mpmath
import numpy as np
import pytest

import symnet
from symnet import compiler
from symnet.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent


def small(name="small", **codegen):
    """A 2-3-2 network (tanh, sigmoid, sse): 17 parameters, quick to compile."""
    return {
        "name": name,
        "network": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"},
                                            {"units": 2, "activation": "sigmoid"}]},
        "loss": {"kind": "sse"},
        "training": {"learning_rate": 0.5},
        "codegen": dict(codegen),
    }


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# ----------------------------------------------------------------------------------------
# hostile formulas: refused with a SpecError, nothing runs, no RecursionError


HUGE_OR_DEEP = [
    ("x**99999999", "exponents must be at most 64"),
    ("9**9**9", "exponents must be at most 64"),
    ("2**2**2**2**2**2", "exponents must be at most 64"),
    ("x**(10**10)", "exponents must be at most 64"),
    ("exp(x)**1e300", "at most 1e+15 in magnitude"),
    ("(" * 10_000 + "x" + ")" * 10_000, "at most 1000 characters"),
    ("(" * 499 + "x" + ")" * 499, "not a valid formula"),
    ("-" * 999 + "x", "nested more than 50 deep"),
    ("exp(" * 199 + "x" + ")" * 199, "nested more than 50 deep"),
    ("x+" * 499 + "x", "nested more than 50 deep"),
    ("x" * 1_000_000, "at most 1000 characters"),
    ("x*" * 5_000_000 + "x", "at most 1000 characters"),
    ("[" * 999, "found '['"),
    ("__import__('os')" * 1000, "at most 1000 characters"),
]


@pytest.mark.parametrize("text, reason", HUGE_OR_DEEP,
                         ids=[str(i) for i in range(len(HUGE_OR_DEEP))])
@pytest.mark.parametrize("where", ["activation", "loss"])
def test_huge_or_deep_formulas_are_refused(text, reason, where):
    if where == "activation":
        parse = symnet.functions.parse_activation
    else:
        parse = symnet.functions.parse_loss
        text = re.sub(r"\bx\b", "y", text)
    with pytest.raises(SpecError) as info:
        parse(text, "spec.toml", "expr")
    message = str(info.value)
    assert reason in message
    assert message.isprintable() and len(message) < 600


def test_refusing_deep_nesting_does_not_depend_on_the_recursion_limit():
    """Each bound is checked before any recursion: a low recursion limit still gives a
    SpecError, never a RecursionError."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        for text, _ in HUGE_OR_DEEP:
            with pytest.raises(SpecError):
                symnet.functions.parse_activation(text)
    finally:
        sys.setrecursionlimit(old)


PAYLOADS = [
    "__import__('pathlib').Path('{marker}').touch()",
    "open('{marker}', 'w')",
    "__import__(pathlib).Path(pwned).touch()",
    "exec(open_pwned)",
    "eval(x)",
    "x.__class__.__init__.__globals__['__builtins__']['open']('{marker}', 'w')",
    "(lambda: __import__('os').system('touch {marker}'))()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "getattr(x, '__class__')",
    "sigmoid.__globals__",
    "__builtins__.open",
    "x if __import__('os').system('touch {marker}') else x",
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=[str(i) for i in range(len(PAYLOADS))])
def test_a_payload_in_a_spec_file_runs_nothing(payload, tmp_path, monkeypatch):
    """Through load_spec, build, compile and the CLI: each refused, no file appears."""
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    text = payload.format(marker=marker).replace("\\", "\\\\").replace('"', '\\"')
    spec = tmp_path / "spec.toml"
    spec.write_text(textwrap.dedent(f"""\
        name = "payload"
        [network]
        inputs = 1
        [[network.layers]]
        units = 2
        activation = {{ expr = "{text}" }}
        [[network.layers]]
        units = 1
        activation = "linear"
        [loss]
        kind = "custom"
        expr = "{text}"
        """), encoding="utf-8")
    for call in (symnet.load_spec, symnet.build,
                 lambda p: symnet.compile(p, tmp_path / "out")):
        with pytest.raises(SpecError) as info:
            call(spec)
        assert info.value.key == "network.layers[0].activation.expr"
    proc = subprocess.run([sys.executable, "-m", "symnet", "compile", str(spec), "-o",
                           str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)  # where a stray write would show
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert not marker.exists()
    assert listing(tmp_path) == ["spec.toml"]


# ----------------------------------------------------------------------------------------
# names reaching generated code


@pytest.mark.parametrize("name", ["../x", "a; import os", "x/../../y", "a.b", "/abs", "a\nb",
                                  "", "__init__", "os", "import", "ａ", "x" * 101, 3, None])
def test_names_that_are_not_module_names_are_refused(name, tmp_path):
    data = small()
    data["name"] = name
    with pytest.raises(SpecError) as info:
        symnet.compile(data, tmp_path / "out")
    assert info.value.key == "name"
    assert str(info.value).isprintable()
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name", ["templates", "codegen"])
def test_a_network_may_be_named_like_a_folder_of_the_checkout(name, tmp_path):
    """symnet installs one top-level package: its code generators and templates are
    symnet.codegen and symnet.templates, so `templates` and `codegen` are free for a
    network, whose module then takes that name in sys.modules, and rendering still finds
    symnet's templates."""
    try:
        m = symnet.compile(small(name), tmp_path)
        assert m.__name__ == name and sys.modules[name] is m
        assert (tmp_path / f"{name}.py").is_file()
        p = m.init_params()
        assert m.forward(p, np.array([[0.3, -0.2]])).shape == (1, 2)
        other = symnet.compile(small("after_" + name, mode="loop"), tmp_path / "other")
        assert other.forward(other.init_params(), np.array([[0.3, -0.2]])).shape == (1, 2)
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("name", ["../escaped", "sub/x", "a; import os"])
def test_a_hand_made_spec_cannot_write_outside_its_directory(name, tmp_path):
    """A Spec built by hand bypasses the loader's checks: write and compile check again."""
    spec = dataclasses.replace(symnet.spec_from_dict(small()), name=name)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SpecError, match="name: expected a Python identifier"):
        symnet.compile(spec, out)
    with pytest.raises(SpecError, match="name: expected a Python identifier"):
        compiler.write(dataclasses.replace(symnet.build(small()), spec=spec), out)
    assert listing(tmp_path) == ["out"] and listing(out) == []


# ----------------------------------------------------------------------------------------
# reuse: a module is reused only when its header matches the spec and this symnet


def test_a_current_module_is_reused_without_building(tmp_path, monkeypatch):
    first = symnet.compile(small(), tmp_path)
    path = tmp_path / "small.py"
    stat = path.stat()

    def refuse(*args, **kwargs):
        raise AssertionError("built again")

    from symnet import autodiff, loop, lower, schedule

    monkeypatch.setattr(compiler, "build", refuse)
    for module, stage in ((lower, "lower"), (autodiff, "differentiate"),
                          (schedule, "schedule"), (loop, "lower_loop")):
        monkeypatch.setattr(module, stage, refuse)
    again = symnet.compile(small(), tmp_path)
    assert again is not first and again.SPEC_SHA256 == first.SPEC_SHA256
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    # and it works: the same numbers as the first import
    p = first.init_params()
    X = np.array([[0.3, -0.2]])
    np.testing.assert_array_equal(again.forward(p, X), first.forward(p, X))


def test_the_header_records_what_reuse_compares(tmp_path):
    m = symnet.compile(small(), tmp_path)
    spec = symnet.spec_from_dict(small())
    assert m.SYMNET_VERSION == symnet.__version__
    assert m.SPEC_SHA256 == spec.sha256 and len(m.SPEC_SHA256) == 64
    assert len(m.GENERATOR_SHA256) == 64
    assert (m.STRATEGY, m.MODE, m.DTYPE) == ("store", "scalar", np.float64)
    assert compiler.is_current(tmp_path / "small.py", spec)


def test_a_spec_file_is_reused_by_its_bytes(tmp_path, monkeypatch):
    spec = tmp_path / "mazur.toml"
    spec.write_bytes((ROOT / "examples" / "mazur.toml").read_bytes())
    builds = []
    real_build = compiler.build
    monkeypatch.setattr(compiler, "build", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    symnet.compile(spec, tmp_path / "out")
    symnet.compile(spec, tmp_path / "out")
    assert builds == [1]
    # a change of the file, even a comment, changes its sha256: the module is rebuilt
    spec.write_bytes(spec.read_bytes() + b"# a comment\n")
    m = symnet.compile(spec, tmp_path / "out")
    assert builds == [1, 1]
    assert m.SPEC_SHA256 == symnet.load_spec(spec).sha256


@pytest.mark.parametrize("change", ["learning_rate", "layer", "dtype", "mode", "strategy"])
def test_a_changed_spec_or_override_rebuilds(change, tmp_path):
    base = symnet.compile(small(), tmp_path)
    data, kw = small(), {}
    if change == "learning_rate":
        data["training"]["learning_rate"] = 0.25
    elif change == "layer":
        data["network"]["layers"][0]["units"] = 4
    else:
        kw = {"dtype": "float32", "mode": "loop", "strategy": "recompute"}
        kw = {change: kw[change]}
    m = symnet.compile(data, tmp_path, **kw)
    files = listing(tmp_path)
    if change == "mode":  # the loop form's kernel file and its KernelInfo: in the shared
        shared = Path(m.KERNEL_DIR)  # kernel folder of the run ($SYMNET_KERNEL_DIR)
        assert (shared / f"{m.KERNEL_MODULE}.py").is_file()
        assert any(shared.glob("symnet_kinds_*.json"))
    assert files == ["__pycache__", "small.py"] or files == ["small.py"]
    if change == "learning_rate":
        assert (base.LEARNING_RATE, m.LEARNING_RATE) == (0.5, 0.25)
    elif change == "layer":
        assert m.PARAM_SHAPES["W1"] == (4, 2)
    elif change == "dtype":
        assert m.DTYPE is np.float32
    elif change == "mode":
        assert m.MODE == "loop"
    else:
        assert m.STRATEGY == "recompute"
    assert m.SPEC_SHA256 != base.SPEC_SHA256 or change in ("dtype", "mode", "strategy")
    # and back: the first spec again is a rebuild too, never the module just written
    assert symnet.compile(small(), tmp_path).LEARNING_RATE == 0.5


@pytest.mark.parametrize("constant, value", [
    ("SYMNET_VERSION", '"0.0.1"'),
    ("GENERATOR_SHA256", '"' + "0" * 64 + '"'),
    ("SPEC_SHA256", '"' + "f" * 64 + '"'),
    ("SPEC_FILE", "'other.toml'"),
    ("DTYPE", "np.float32"),
    ("MODE", '"loop"'),
])
def test_a_module_recording_anything_else_is_rebuilt(constant, value, tmp_path):
    symnet.compile(small(), tmp_path)
    path = tmp_path / "small.py"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{constant} = "))
    lines[at] = f"{constant} = {value}\n"
    stale = "".join(lines)
    path.write_text(stale, encoding="utf-8")
    assert not compiler.is_current(path, symnet.spec_from_dict(small()))
    m = symnet.compile(small(), tmp_path)
    assert path.read_text(encoding="utf-8") != stale
    assert compiler.is_current(path, symnet.spec_from_dict(small()))
    assert m.SYMNET_VERSION == symnet.__version__


def test_a_new_version_rebuilds(tmp_path, monkeypatch):
    symnet.compile(small(), tmp_path)
    monkeypatch.setattr(compiler, "__version__", "9.9.9")
    m = symnet.compile(small(), tmp_path)
    assert m.SYMNET_VERSION == "9.9.9"


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"\xff\xfe not utf-8",
                                     b"SYMNET_VERSION = \n", b"raise SystemExit(3)\n"])
def test_a_broken_file_is_rebuilt_not_imported(content, tmp_path):
    (tmp_path / "small.py").write_bytes(content)
    m = symnet.compile(small(), tmp_path)
    assert m.SPEC_SHA256 == symnet.spec_from_dict(small()).sha256


def test_concurrent_compiles_each_import_a_complete_module(tmp_path):
    """Two processes compile the same spec into the same directory at once (over a stale
    module), both in their write at the same time; both import a complete module, and no
    temporary file is left."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "small.py").write_text("stale = True\n", encoding="utf-8")
    spec = tmp_path / "small.toml"
    spec.write_text(textwrap.dedent("""\
        name = "small"
        [network]
        inputs = 2
        [[network.layers]]
        units = 3
        activation = "tanh"
        [[network.layers]]
        units = 2
        activation = "sigmoid"
        [loss]
        kind = "sse"
        """), encoding="utf-8")
    # The race, made certain: each process, once it has found the module stale and built its
    # own, waits at the write until the other has got there too; then both write and import.
    # Each reports the window it spent in write (time.monotonic: one clock for the machine),
    # and the two windows must overlap.
    script = textwrap.dedent(f"""\
        import os, sys, time
        import numpy as np
        import symnet
        import symnet.compiler as compiler
        me, other = sys.argv[1], sys.argv[2]
        real_write = compiler.write

        def write(compiled, out_dir):
            start = time.monotonic()
            open(me, "w").close()
            deadline = start + 240
            while not os.path.exists(other):
                if time.monotonic() > deadline:
                    sys.exit("the other process never reached its write")
                time.sleep(0.002)
            path = real_write(compiled, out_dir)
            print("built", start, time.monotonic())
            return path

        compiler.write = write
        m = symnet.compile({str(spec)!r}, {str(out)!r})
        p = m.init_params()
        print(repr(m.forward(p, np.array([[0.5, -0.25]])).tolist()), m.SPEC_SHA256)
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    marks = [str(tmp_path / "a.ready"), str(tmp_path / "b.ready")]
    procs = [subprocess.Popen([sys.executable, "-c", script, marks[i], marks[1 - i]],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
             for i in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    windows = []
    for proc, (stdout, stderr) in zip(procs, results):
        assert proc.returncode == 0, stderr
        # both found the module stale, built it and wrote it (the later of the two may find
        # the file already holding its text, and leave it: write_if_changed)
        line = stdout.splitlines()[0]
        assert line.startswith("built "), stdout
        start, end = map(float, line.split()[1:])
        windows.append((start, end))
    # they raced: each was inside its write while the other was inside its own
    assert max(s for s, _ in windows) < min(e for _, e in windows), windows
    outputs = [stdout.splitlines()[1] for stdout, _ in results]
    assert outputs[0] == outputs[1]
    assert outputs[0].split()[-1] == symnet.load_spec(spec).sha256
    assert [n for n in listing(out) if n != "__pycache__"] == ["small.py"]
    assert compiler.is_current(out / "small.py", symnet.load_spec(spec))


# ----------------------------------------------------------------------------------------
# the wrappers' argument checks, in both forms


@pytest.fixture(scope="module", params=["scalar", "loop"])
def net(request, run_folder):
    return symnet.compile(small(f"checks_{request.param}", mode=request.param),
                          run_folder(f"checks_{request.param}"))


X2 = np.array([[0.5, -0.25], [0.1, 0.2], [-0.3, 0.4]])
T2 = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])


def _all_calls(m, params, X=X2, T=T2):
    """Each public function on the same arguments."""
    return {
        "forward": lambda: m.forward(params, X),
        "loss": lambda: m.loss(params, X, T),
        "grad": lambda: m.grad(params, X, T),
        "train_step": lambda: m.train_step(params, X, T),
        "fit": lambda: m.fit(params, X, T, 2),
    }


@pytest.mark.parametrize("X, message", [
    (np.zeros((3, 3)), r"X: expected shape \(batch, 2\) with batch >= 1, got \(3, 3\)"),
    (np.zeros(2), r"X: expected shape \(batch, 2\) with batch >= 1, got \(2,\)"),
    (np.zeros((0, 2)), r"X: expected shape \(batch, 2\) with batch >= 1, got \(0, 2\)"),
    (np.zeros((1, 3, 2)), r"X: expected shape"),
    (X2 + 0j, r"X: expected an array of real numbers \(bool, integer or float; converted to "
              r"float64\), got a complex128 array of shape \(3, 2\)"),
    (np.array([["a", "b"]]), r"X: expected an array of real numbers .*got a <U1 array"),
    (np.array([[object(), 1]]), r"X: expected an array of real numbers .*got a object array"),
    ([[1.0, 2.0], [3.0]], r"X: expected an array of real numbers .*got list"),
    ("0.5, 0.25", r"X: expected an array of real numbers .*got a <U9 array of shape \(\)"),
])
def test_bad_inputs_are_refused(net, X, message):
    params = net.init_params()
    before = {k: v.copy() for k, v in params.items()}
    for call in _all_calls(net, params, X=X).values():
        with pytest.raises(ValueError, match=message):
            call()
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


@pytest.mark.parametrize("T, message", [
    (T2[:2], r"T: expected shape \(3, 2\) to match X, got \(2, 2\)"),
    (T2[:, :1], r"T: expected shape \(3, 2\) to match X, got \(3, 1\)"),
    (T2.ravel(), r"T: expected shape \(3, 2\) to match X, got \(6,\)"),
    (T2 * 1j, r"T: expected an array of real numbers .*got a complex128 array"),
])
def test_bad_targets_are_refused(net, T, message):
    params = net.init_params()
    calls = _all_calls(net, params, T=T)
    del calls["forward"]
    for call in calls.values():
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("kind", ["int", "bool", "float32", "fortran", "strided", "read-only",
                                  "list"])
def test_inputs_of_other_real_dtypes_and_layouts_are_converted(net, kind):
    """X and T are only read: any real dtype and any layout is accepted, and gives exactly
    what the float64, C-contiguous array gives."""
    X = np.array([[1, 0], [0, 1], [1, 1]])
    T = np.array([[1, 0], [0, 1], [1, 1]])
    want_X, want_T = X.astype(np.float64), T.astype(np.float64)
    if kind == "int":
        X, T = X.astype(np.int32), T.astype(np.int64)
    elif kind == "bool":
        X, T = X.astype(bool), T.astype(bool)
    elif kind == "float32":
        X, T = X.astype(np.float32), T.astype(np.float32)
    elif kind == "fortran":
        X, T = np.asfortranarray(want_X), np.asfortranarray(want_T)
    elif kind == "strided":
        X = np.repeat(want_X, 2, axis=0)[::2]
        T = np.repeat(want_T, 2, axis=1)[:, ::2]
        assert not X.flags.c_contiguous and not T.flags.c_contiguous
    elif kind == "read-only":
        X, T = want_X.copy(), want_T.copy()
        X.flags.writeable = T.flags.writeable = False
    else:
        X, T = X.tolist(), T.tolist()
    p = net.init_params()
    np.testing.assert_array_equal(net.forward(p, X), net.forward(p, want_X))
    assert net.loss(p, X, T) == net.loss(p, want_X, want_T)
    q = {k: v.copy() for k, v in p.items()}
    net.train_step(p, X, T)
    net.train_step(q, want_X, want_T)
    for k in p:
        np.testing.assert_array_equal(p[k], q[k])


def _bad_param(m, kind):
    p = m.init_params()
    W = p["W1"]
    if kind == "missing":
        del p["b1"]
        return p, r"params: missing 'b1' \(expected keys \['W1', 'b1', 'W2', 'b2'\]\)"
    if kind == "extra":
        p["W3"] = np.zeros((2, 2))
        return p, r"params: unexpected key 'W3' \(expected keys \['W1', 'b1', 'W2', 'b2'\]\)"
    if kind == "not a dict":
        return list(p.values()), r"params: expected a dict of arrays keyed"
    if kind == "shape":
        p["W1"] = np.zeros((2, 3))
        return p, r"params\['W1'\]: expected .*shape \(3, 2\)"
    if kind == "complex":
        p["W1"] = W + 1j
        return p, r"params\['W1'\]: expected a"
    if kind == "strings":
        p["b2"] = np.array(["0.1", "0.2"])
        return p, r"params\['b2'\]: expected a"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "extra", "not a dict", "shape", "complex",
                                  "strings"])
def test_bad_params_are_refused_everywhere(net, kind):
    params, message = _bad_param(net, kind)
    for call in _all_calls(net, params).values():
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("kind, message", [
    ("float32", r"params\['W1'\]: expected a float64 array of shape \(3, 2\) \(updated in "
                r"place\), got a float32 array of shape \(3, 2\)"),
    ("int", r"params\['W1'\]: expected a float64 array .*got a int64 array"),
    ("list", r"params\['W1'\]: expected a float64 array .*got list"),
    ("fortran", r"params\['W1'\]: expected a C-contiguous, writeable array \(updated in place\)"),
    ("strided", r"params\['W1'\]: expected a C-contiguous, writeable array"),
    ("read-only", r"params\['W1'\]: expected a C-contiguous, writeable array"),
])
def test_params_updated_in_place_must_be_exact(net, kind, message):
    """train_step and fit write into params: anything but a C-contiguous, writeable array of
    DTYPE and the exact shape is refused (forward, loss and grad, which only read, convert)."""
    p = net.init_params()
    W = p["W1"]
    p["W1"] = {"float32": lambda: W.astype(np.float32), "int": lambda: W.astype(np.int64),
               "list": W.tolist, "fortran": lambda: np.asfortranarray(W),
               "strided": lambda: np.repeat(W, 2, axis=1)[:, ::2],
               "read-only": lambda: np.require(W.copy(), requirements="C")}[kind]()
    if kind == "read-only":
        p["W1"].flags.writeable = False
    before = {k: np.array(v, copy=True) for k, v in p.items()}
    for name in ("train_step", "fit"):
        with pytest.raises(ValueError, match=message):
            _all_calls(net, p)[name]()
    for k in p:  # nothing was updated, not even the parameters checked before W1's
        np.testing.assert_array_equal(np.asarray(p[k]), before[k])
    # reading them is fine: forward, loss and grad convert
    want = net.loss({**p, "W1": np.array(p["W1"], dtype=np.float64)}, X2, T2)
    assert net.loss(p, X2, T2) == want


def test_float32_module_converts_float64_inputs(tmp_path):
    m = symnet.compile(small("f32"), tmp_path, dtype="float32")
    p = m.init_params()
    Y = m.forward(p, X2)
    assert Y.dtype == np.float32
    np.testing.assert_array_equal(Y, m.forward(p, X2.astype(np.float32)))
    with pytest.raises(ValueError, match=r"expected a float32 array .*got a float64 array"):
        m.train_step({**p, "W1": p["W1"].astype(np.float64)}, X2, T2)


# ----------------------------------------------------------------------------------------
# numerics at pre-activations of +-1e4, against closed forms evaluated with mpmath

DIGITS = 50  # mpmath's working precision in these references (set per call, not globally)
BIG = [1e4, -1e4, 30.0, -30.0, 0.5]  # the inputs; each net is a weight times one of them


def _sig(v):
    return 1 / (1 + mpmath.exp(-v))


def _softplus(v):
    return mpmath.log1p(mpmath.exp(v))


def _hidden_reference(act, dact, x, t, a, c):
    """Inputs 1 -> 1 unit `act` (no bias) -> 1 unit linear (no bias), sse: (E, dE/da, dE/dc)."""
    net = a * x
    h = act(net)
    y = c * h
    return (y - t) ** 2 / 2, (y - t) * c * dact(net) * x, (y - t) * h


def _bce_reference(x, t, a):
    net = a * x
    return _softplus(net) - t * net, (_sig(net) - t) * x


def _softmax(nets):
    m = max(nets)
    e = [mpmath.exp(n - m) for n in nets]
    s = sum(e)
    return [v / s for v in e]


def _ce_reference(x, t, a):
    nets = [ak * x for ak in a]
    s = _softmax(nets)
    m = max(nets)
    lse = m + mpmath.log(sum(mpmath.exp(n - m) for n in nets))
    E = sum(tk * (lse - n) for tk, n in zip(t, nets))
    return E, [(sk - tk) * x for sk, tk in zip(s, t)]


def _softmax_sse_reference(x, t, a):
    nets = [ak * x for ak in a]
    s = _softmax(nets)
    E = sum((sk - tk) ** 2 for sk, tk in zip(s, t)) / 2
    delta = [sum((s[k] - t[k]) * s[k] * ((1 if k == j else 0) - s[j]) for k in range(len(s)))
             for j in range(len(s))]
    return E, [d * x for d in delta]


def _mean(rows):
    """Mean over the batch of per-sample (E, grads...) tuples of mpf or lists of mpf."""
    n = len(rows)
    out = []
    for parts in zip(*rows):
        if isinstance(parts[0], list):
            out.append([float(sum(p[k] for p in parts) / n) for k in range(len(parts[0]))])
        else:
            out.append(float(sum(parts) / n))
    return out


CASES = {
    "sigmoid": ([{"units": 1, "activation": "sigmoid", "bias": "none"},
                 {"units": 1, "activation": "linear", "bias": "none"}], {"kind": "sse"}),
    "softplus": ([{"units": 1, "activation": "softplus", "bias": "none"},
                  {"units": 1, "activation": "linear", "bias": "none"}], {"kind": "sse"}),
    "bce": ([{"units": 1, "activation": "sigmoid", "bias": "none"}], {"kind": "bce"}),
    "cross_entropy": ([{"units": 3, "activation": "softmax", "bias": "none"}],
                      {"kind": "cross_entropy"}),
    "softmax": ([{"units": 3, "activation": "softmax", "bias": "none"}], {"kind": "sse"}),
}


def _reference(case, X, T, W):
    with mpmath.workdps(DIGITS):
        return _reference_rows(case, X, T, W)


def _reference_rows(case, X, T, W):
    rows = []
    for x, t in zip(X[:, 0].tolist(), T.tolist()):
        x = mpmath.mpf(x)
        if case in ("sigmoid", "softplus"):
            act, dact = (_sig, lambda v: _sig(v) * (1 - _sig(v))) if case == "sigmoid" \
                else (_softplus, _sig)
            E, ga, gc = _hidden_reference(act, dact, x, mpmath.mpf(t[0]),
                                          mpmath.mpf(W["W1"][0, 0]), mpmath.mpf(W["W2"][0, 0]))
            rows.append((E, ga, gc))
        elif case == "bce":
            rows.append(_bce_reference(x, mpmath.mpf(t[0]), mpmath.mpf(W["W1"][0, 0])))
        else:
            ref = _ce_reference if case == "cross_entropy" else _softmax_sse_reference
            rows.append(ref(x, [mpmath.mpf(v) for v in t],
                            [mpmath.mpf(v) for v in W["W1"][:, 0].tolist()]))
    return _mean(rows)


@pytest.fixture(scope="module")
def numerics_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("numerics")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["scalar", "loop"])
@pytest.mark.parametrize("case", list(CASES))
def test_extreme_pre_activations_stay_finite_and_accurate(case, mode, dtype, numerics_dir):
    layers, loss = CASES[case]
    m = symnet.compile({"name": f"n_{case}_{mode}_{dtype}",
                        "network": {"inputs": 1, "layers": layers}, "loss": loss,
                        "codegen": {"mode": mode, "dtype": dtype}}, numerics_dir)
    dt = np.dtype(dtype)
    X = np.array(BIG)[:, None]
    n_out = m.N_OUTPUTS
    if n_out == 1:
        T = np.array([[1.0], [0.0], [1.0], [0.0], [1.0]])
        W = {"W1": np.array([[1.0]], dtype=dt)}
        if "W2" in m.PARAM_SHAPES:
            W["W2"] = np.array([[0.75]], dtype=dt)
    else:
        T = np.eye(3)[[1, 0, 2, 1, 0]]
        W = {"W1": np.array([[1.0], [-1.0], [0.5]], dtype=dt)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Y = m.forward(W, X)
        E, g = m.grad(W, X, T)
        assert m.loss(W, X, T) == pytest.approx(E, rel=4 * float(np.finfo(dt).eps))
    ref = _reference(case, X, T, {k: v.astype(np.float64) for k, v in W.items()})
    assert np.isfinite(Y).all() and np.isfinite(E)
    assert all(np.isfinite(v).all() for v in g.values())
    # float64: to a few ulp of the largest term; float32: the same in float32 ulp
    eps = float(np.finfo(dt).eps)
    scale = 1e4  # the largest pre-activation, and so the largest term in E and its gradients
    assert E == pytest.approx(ref[0], rel=8 * eps, abs=8 * eps * scale)
    if case in ("sigmoid", "softplus"):
        want = {"W1": [ref[1]], "W2": [ref[2]]}
    else:
        want = {"W1": ref[1] if isinstance(ref[1], list) else [ref[1]]}
    for k, v in want.items():
        np.testing.assert_allclose(g[k].ravel(), v, rtol=8 * eps, atol=8 * eps * scale)


@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_bce_is_accurate_relative_to_its_value(mode, tmp_path):
    """bce in its fused form: relative accuracy wherever no term cancels (t = 0, or t = 1
    with net <= 0), and absolute accuracy eps*|net| where it does (t = 1, net > 0)."""
    m = symnet.compile({"name": f"bce_rel_{mode}", "network": {"inputs": 1, "layers": [
        {"units": 1, "activation": "sigmoid", "bias": "none"}]}, "loss": {"kind": "bce"},
        "codegen": {"mode": mode}}, tmp_path)
    W = {"W1": np.array([[1.0]])}
    eps = np.finfo(np.float64).eps
    for x in (-700.0, -30.0, -5.0, 0.0, 5.0, 30.0, 700.0):
        for t in (0.0, 1.0):
            E, g = m.grad(W, np.array([[x]]), np.array([[t]]))
            with mpmath.workdps(DIGITS):
                ref_E, ref_g = _bce_reference(mpmath.mpf(x), mpmath.mpf(t), 1)
            if t == 1.0 and x > 0:
                assert abs(E - float(ref_E)) <= 2 * eps * x
            else:
                assert E == pytest.approx(float(ref_E), rel=4 * eps)
            assert g["W1"][0, 0] == pytest.approx(float(ref_g), rel=4 * eps, abs=4 * eps * abs(x))


# ----------------------------------------------------------------------------------------
# fit stops on a loss that is not finite


def _diverging(mode, dtype):
    return {"name": f"diverge_{mode}_{dtype}", "network": {"inputs": 1, "layers": [
        {"units": 1, "activation": "linear", "bias": "none"}]},
        "loss": {"kind": "sse"}, "training": {"learning_rate": 10.0},
        "init": {"W1": [[0.5]]}, "codegen": {"mode": mode, "dtype": dtype}}


def _reference_steps(w, x, t, lr, dtype, steps):
    """Plain SGD on E = (w*x - t)^2/2 in `dtype`: the losses before each step, and w."""
    w, x, t, lr = (dtype(v) for v in (w, x, t, lr))
    losses = []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            r = w * x - t
            E = dtype(0.5) * r * r
            losses.append(E)
            if not np.isfinite(E):
                return losses, w
            w = w - lr * (r * x)
    return losses, w


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_fit_stops_at_the_first_step_whose_loss_is_not_finite(mode, dtype, tmp_path):
    m = symnet.compile(_diverging(mode, dtype), tmp_path)
    dt = np.dtype(dtype).type
    X, T = np.array([[10.0]]), np.array([[1.0]])
    losses, w = _reference_steps(0.5, 10.0, 1.0, 10.0, dt, 1000)
    k = len(losses) - 1
    assert not np.isfinite(losses[k]) and 5 < k < 1000
    p = m.init_params()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FloatingPointError) as info:
            m.fit(p, X, T, 1000)
    err = info.value
    assert f"fit: the loss is {float(losses[k])} at step {k}, counting from 0" in str(err)
    assert err.step == err.epoch == k
    np.testing.assert_allclose(err.losses, losses[:k], rtol=1e-5 if dtype == "float32" else 1e-12)
    # the parameters are the ones that gave the non-finite loss: no step was taken from it
    assert p["W1"][0, 0] == pytest.approx(float(w), rel=1e-5 if dtype == "float32" else 1e-12)
    assert np.isfinite(p["W1"]).all()
    # fewer epochs than that: no error, and the reference's losses
    q = m.init_params()
    np.testing.assert_allclose(m.fit(q, X, T, k), losses[:k],
                               rtol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_minibatch_fit_names_the_epoch_and_minibatch(mode, tmp_path):
    m = symnet.compile(_diverging(mode, "float64"), tmp_path)
    X = np.array([[10.0], [10.0], [10.0]])  # identical samples: any order diverges alike
    T = np.array([[1.0], [1.0], [1.0]])
    losses, _ = _reference_steps(0.5, 10.0, 1.0, 10.0, np.float64, 1000)
    k = len(losses) - 1  # the global step whose loss is not finite
    p = m.init_params()
    with pytest.raises(FloatingPointError) as info:
        m.fit(p, X, T, 1000, batch_size=2)  # two minibatches an epoch: sizes 2 and 1
    err = info.value
    assert (err.epoch, err.step) == (k // 2, k)
    assert f"at epoch {k // 2}, minibatch {k % 2} (step {k})" in str(err)
    # each epoch's figure: the mean of its two minibatches' losses, the reference's steps
    # 2e and 2e + 1 (a minibatch of identical samples steps as one sample does)
    np.testing.assert_allclose(err.losses, [(losses[2 * e] + losses[2 * e + 1]) / 2
                                            for e in range(k // 2)], rtol=1e-12)


def test_train_step_refuses_a_non_finite_loss_and_leaves_params(tmp_path):
    m = symnet.compile(small("nan_step"), tmp_path)
    p = m.init_params()
    before = {k: v.copy() for k, v in p.items()}
    with pytest.raises(FloatingPointError, match="train_step: the loss is nan; no step was taken"):
        m.train_step(p, np.array([[np.nan, 0.0]]), np.array([[0.0, 1.0]]))
    for k in p:
        np.testing.assert_array_equal(p[k], before[k])
    with pytest.raises(FloatingPointError, match="fit: the loss is nan at step 0"):
        m.fit(p, np.array([[np.nan, 0.0]]), np.array([[0.0, 1.0]]), 3)
