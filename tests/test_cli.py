"""The command line, run as users run it: `python -m symnet ...` in a subprocess.

`compile` only renders and writes the module (no Numba compilation). Each subprocess still
pays for importing sympy, so the whole bad-spec corpus goes through `python -m symnet`'s
code in this process (runpy) and a sample of it through real subprocesses.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAZUR = ROOT / "examples" / "mazur.toml"
BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"


def symnet(*args, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m symnet ARGS` run in `cwd`, where a test looks for stray writes."""
    return subprocess.run([sys.executable, "-m", "symnet", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stderr.endswith("\n")
    return lines[0]


def ints(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


# ----------------------------------------------------------------------------------------
# The runs that need no set-up between them, started together (each costs an interpreter
# start and a sympy import).

# 8-8-1 with per-unit biases: 64 + 8 + 8 + 1 = 81 parameters, and it asks for recompute.
WIDE = """name = "wide"
[network]
inputs = 8
[[network.layers]]
units = 8
activation = "tanh"
[[network.layers]]
units = 1
activation = "linear"
[loss]
kind = "mse"
[codegen]
strategy = "recompute"
"""

# a sample of the corpus, one per kind of failure, also run as real processes
SAMPLE = ("invalid_toml_nested_too_deeply", "not_utf8", "unknown_key_with_newline",
          "network_too_large")
SAMPLE_INSPECT = ("invalid_toml", "unknown_key_layer")


class Runs(dict):
    """name -> CompletedProcess; `dirs[name]` is that run's own scratch directory."""

    dirs: dict[str, Path]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    base = tmp_path_factory.mktemp("cli")
    commands: dict[str, tuple] = {}
    dirs: dict[str, Path] = {}

    def add(name, *args):
        dirs[name] = base / name.replace(":", "-")
        dirs[name].mkdir()
        commands[name] = tuple(a(dirs[name]) if callable(a) else a for a in args)

    add("compile", "compile", MAZUR, "-o", lambda d: d / "out")  # out/ not there yet
    add("override", "compile", MAZUR, "-o", lambda d: d, "--strategy", "recompute",
        "--dtype", "float32")
    (dirs["override"] / "mazur.py").write_text("stale\n", encoding="utf-8")
    add("inspect", "inspect", MAZUR)
    add("latex", "inspect", "--latex", MAZUR)
    add("wide", "inspect", lambda d: d / "wide.toml")
    (dirs["wide"] / "wide.toml").write_text(WIDE, encoding="utf-8")
    for command in ("compile", "inspect"):
        add(f"missing:{command}", command, lambda d: d / "missing.toml",
            *(("-o", lambda d: d / "out") if command == "compile" else ()))
    add("bogus", "compile", MAZUR, "-o", lambda d: d / "out", "--strategy", "bogus")
    add("out-is-a-file", "compile", MAZUR, "-o", lambda d: d / "blocker")
    add("out-under-a-file", "compile", MAZUR, "-o", lambda d: d / "blocker" / "sub")
    for name in ("out-is-a-file", "out-under-a-file"):
        (dirs[name] / "blocker").write_text("not a directory\n", encoding="utf-8")
    for stem in SAMPLE:
        add(f"bad:{stem}", "compile", BAD_SPECS / f"{stem}.toml", "-o", lambda d: d)
    for stem in SAMPLE_INSPECT:
        add(f"bad-inspect:{stem}", "inspect", BAD_SPECS / f"{stem}.toml")

    # each command runs in its own scratch directory: what a test finds there (or not) is
    # what that command wrote into its working directory
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
        done = dict(zip(commands, pool.map(lambda name: symnet(*commands[name],
                                                                cwd=dirs[name]), commands)))
    result = Runs(done)
    result.dirs = dirs
    return result


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# ----------------------------------------------------------------------------------------
# compile


def test_compile_writes_the_module(runs):
    proc, out = runs["compile"], runs.dirs["compile"] / "out"
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines()[0] == str(out / "mazur.py")  # named after `name`
    assert listing(out) == ["mazur.py"]  # and nothing else (no temporary file left)
    text = (out / "mazur.py").read_text(encoding="utf-8")
    compile(text, "mazur.py", "exec")  # valid Python
    for function in ("forward", "loss", "grad", "train_step", "fit"):
        assert re.search(rf"^def {function}\(", text, re.MULTILINE), function


def test_compile_summary(runs):
    summary = runs["compile"].stdout
    # 2-2-2 with one shared bias per layer: 4 + 1 + 4 + 1 parameters
    assert re.search(r"\b10 parameters\b", summary)
    assert "2-2-2" in summary
    assert "store" in summary and "float64" in summary  # the spec's [codegen]
    ops = [line for line in summary.splitlines() if "CSE" in line]
    assert len(ops) == 1, summary
    before_fwd, before_bwd, after_fwd, after_bwd = ints(ops[0])
    assert 0 < after_fwd <= before_fwd
    assert 0 < after_bwd <= before_bwd  # CSE never adds operations


def test_compile_summary_matches_inspect(runs):
    ops = next(line for line in runs["compile"].stdout.splitlines() if "CSE" in line)
    after_fwd, after_bwd = ints(ops)[2:]
    assert inspect_table(runs["inspect"].stdout)["store"][:2] == [after_fwd, after_bwd]


def test_compile_options_override_the_spec(runs):
    proc = runs["override"]
    assert proc.returncode == 0, proc.stderr
    assert "recompute" in proc.stdout and "float32" in proc.stdout
    stored = next(line for line in proc.stdout.splitlines() if "temporaries" in line)
    assert ints(stored) == [0]  # recompute keeps nothing
    text = (runs.dirs["override"] / "mazur.py").read_text(encoding="utf-8")
    assert text != "stale\n"  # a module with other text is replaced
    assert "float32" in text
    assert "recompute" in text


def test_compile_twice_does_not_rewrite(runs):
    first = runs["compile"]
    out = runs.dirs["compile"] / "out"
    path = out / "mazur.py"
    text = path.read_text(encoding="utf-8")
    # backdate the file: a rewrite, however fast, would give it a new mtime
    old = path.stat().st_mtime_ns - 10_000_000_000
    os.utime(path, ns=(old, old))
    inode = path.stat().st_ino
    second = symnet("compile", MAZUR, "-o", out, cwd=runs.dirs["compile"])
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert path.stat().st_mtime_ns == old
    assert path.stat().st_ino == inode
    assert path.read_text(encoding="utf-8") == text
    assert listing(out) == ["mazur.py"]
    assert listing(runs.dirs["compile"]) == ["out"]  # and nothing in its working directory


# ----------------------------------------------------------------------------------------
# inspect


def inspect_table(stdout: str) -> dict[str, list[int]]:
    """The store-versus-recompute table: {strategy: [forward, backward, total, stored]}."""
    rows = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] in ("store", "recompute") and len(words) == 5:
            rows[words[0]] = [int(w) for w in words[1:]]
    return rows


def test_inspect_forward_formulas(runs):
    proc = runs["inspect"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    lhs = {line.split(" = ")[0].strip() for line in lines if " = " in line}
    # the lecture's names: net and out of hidden units h1, h2 and output units o1, o2; E
    for unit in ("h1", "h2", "o1", "o2"):
        assert {f"net_{unit}", f"out_{unit}"} <= lhs, unit
    assert "E" in lhs
    # net_h1 = w1*i1 + w2*i2 + b1 (Mazur's worked example)
    net_h1 = next(line for line in lines if line.startswith("net_h1 = "))
    assert set(re.findall(r"[a-z]+\d", net_h1.split(" = ")[1])) == {"w1", "w2", "i1", "i2", "b1"}
    assert listing(runs.dirs["inspect"]) == []


def test_inspect_store_versus_recompute(runs):
    table = inspect_table(runs["inspect"].stdout)
    assert set(table) == {"store", "recompute"}
    for forward, backward, total, _ in table.values():
        assert total == forward + backward
    assert table["recompute"][3] == 0  # recompute stores nothing
    assert table["store"][3] > 0
    assert table["recompute"][1] > table["store"][1]  # and pays for it in the backward pass


def test_inspect_latex(runs):
    proc = runs["latex"]
    assert proc.returncode == 0, proc.stderr
    assert "\\frac" in proc.stdout
    assert not re.search(r"^\s*-{3,}\s*$", proc.stdout, re.MULTILINE)  # no ASCII-art bars
    assert inspect_table(proc.stdout).keys() == {"store", "recompute"}


def test_inspect_a_network_too_wide_for_recompute(runs):
    # inspect still shows the formulas and the store row; the recompute row says why not
    proc = runs["wide"]
    assert proc.returncode == 0, proc.stderr
    assert set(inspect_table(proc.stdout)) == {"store"}
    assert re.search(r"^recompute\s+\S", proc.stdout, re.MULTILINE)


# ----------------------------------------------------------------------------------------
# errors: one line, exit status 2, no traceback, nothing written


def run_main_in_process(monkeypatch, capsys, *args) -> tuple[object, str, str]:
    """What `python -m symnet ARGS` does, without a new interpreter: (exit code, out, err)."""
    monkeypatch.setattr(sys, "argv", ["symnet", *map(str, args)])
    with pytest.raises(SystemExit) as info:  # anything else escaping is a traceback
        runpy.run_module("symnet", run_name="__main__", alter_sys=True)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_bad_spec_compile(bad_spec, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the working directory too is where a stray write would show
    code, out, err = run_main_in_process(monkeypatch, capsys, "compile", bad_spec.path,
                                         "-o", tmp_path)
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert str(bad_spec.path) in lines[0]
    for text in bad_spec.expected:
        assert text in lines[0]
    assert listing(tmp_path) == []


@pytest.mark.parametrize("stem", SAMPLE)
def test_bad_spec_compile_process(stem, runs):
    path = BAD_SPECS / f"{stem}.toml"
    line = assert_one_line_error(runs[f"bad:{stem}"])
    assert runs[f"bad:{stem}"].stdout == ""
    assert str(path) in line
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.removeprefix("# error: ") in line
    assert listing(runs.dirs[f"bad:{stem}"]) == []


@pytest.mark.parametrize("stem", SAMPLE_INSPECT)
def test_bad_spec_inspect(stem, runs):
    line = assert_one_line_error(runs[f"bad-inspect:{stem}"])
    assert str(BAD_SPECS / f"{stem}.toml") in line


def test_bad_spec_creates_no_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "not" / "there"
    code, _, _ = run_main_in_process(monkeypatch, capsys, "compile",
                                     BAD_SPECS / "network_too_large.toml", "-o", out)
    assert code == 2
    assert listing(tmp_path) == []


@pytest.mark.parametrize("command", ["compile", "inspect"])
def test_missing_spec_file(command, runs):
    line = assert_one_line_error(runs[f"missing:{command}"])
    assert str(runs.dirs[f"missing:{command}"] / "missing.toml") in line
    assert listing(runs.dirs[f"missing:{command}"]) == []


def test_bad_option_is_an_argparse_error(runs):
    proc = runs["bogus"]
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "bogus" in proc.stderr
    assert listing(runs.dirs["bogus"]) == []


@pytest.mark.parametrize("name", ["out-is-a-file", "out-under-a-file"])
def test_out_dir_that_cannot_be_a_directory(name, runs):
    line = assert_one_line_error(runs[name])
    blocker = runs.dirs[name] / "blocker"
    assert str(blocker) in line
    assert blocker.read_text(encoding="utf-8") == "not a directory\n"
    assert listing(runs.dirs[name]) == ["blocker"]
