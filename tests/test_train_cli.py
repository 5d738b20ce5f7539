"""`symnet train SPEC --data FILE.npz`: end to end, its files, its errors, and the chunked
training behind its progress bar (which must equal one long fit)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symnet
from symnet import cli
from symnet.train import _chunks, train

ROOT = Path(__file__).resolve().parent.parent
MAZUR = ROOT / "examples" / "mazur.toml"


def run(*args):
    return subprocess.run([sys.executable, "-m", "symnet", "train", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    return proc.stderr


def test_train_writes_trace_and_params(tmp_path):
    """The whole command without the plot extra: the lecture's numbers in the trace, the
    parameters file, the summary line, and no plot or progress bar asked for."""
    data = tmp_path / "d.npz"
    np.savez(data, X=np.array([[0.05, 0.10]]), T=np.array([[0.01, 0.99]]))
    out = run(MAZUR, "--data", data, "--epochs", 30, "--trace-out", tmp_path / "tr.npz",
              "--params-out", tmp_path / "p.npz", "--save", tmp_path / "run.npz",
              "-o", tmp_path / "build", "--no-progress")
    assert out.returncode == 0, out.stderr
    tr = np.load(tmp_path / "tr.npz")
    assert tr["loss"].shape == (30,) and tr["W2"].shape == (30, 2, 2)
    # the lecture: the loss before the first step and after it; w5 after one step
    assert tr["loss"][:2] == pytest.approx([0.298371109, 0.2910277737], abs=5e-10)
    assert tr["W2"][1, 0, 0] == pytest.approx(0.35891648, abs=5e-9)
    assert np.all(np.diff(tr["loss"]) < 0)
    p = np.load(tmp_path / "p.npz")
    assert p["b1"] == 0.35  # update = ["weights"]
    assert not np.allclose(p["W2"], tr["W2"][0])
    assert "30 epochs on 1 samples" in out.stdout
    assert sorted(f.name for f in tmp_path.iterdir()) == ["build", "d.npz", "p.npz", "run.npz",
                                                          "tr.npz"]
    net = symnet.compile(MAZUR, tmp_path / "build")  # the module train compiled, reused
    saved = net.load(tmp_path / "run.npz")
    for k in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(saved[k], p[k])


@pytest.mark.extra
def test_train_draws_the_loss_plot_and_a_progress_bar(tmp_path):
    """The plot extra (matplotlib) and the progress extra (tqdm)."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")
    data = tmp_path / "d.npz"
    np.savez(data, X=np.array([[0.05, 0.10]]), T=np.array([[0.01, 0.99]]))
    out = run(MAZUR, "--data", data, "--epochs", 30, "--plot", tmp_path / "loss.png",
              "-o", tmp_path / "build")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "30/30" in out.stderr and "epoch" in out.stderr  # tqdm's bar, on stderr


@pytest.mark.parametrize("arrays, expected", [
    ({"X": np.zeros((3, 2))}, "d.npz: missing T (expected arrays X (samples, 2) and T "
                              "(samples, 2))"),
    ({"X": np.zeros((3, 3)), "T": np.zeros((3, 2))}, "d.npz: X: expected shape (samples, 2), "
                                                     "got (3, 3)"),
    ({"X": np.zeros((3, 2)), "T": np.zeros((4, 2))}, "expected as many samples in T as in X"),
])
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, arrays, expected, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, **arrays)
    status = cli.main(["train", str(MAZUR), "--data", str(data), "--trace-out",
                       str(tmp_path / "tr.npz"), "-o", str(tmp_path / "build")])
    err = capsys.readouterr().err
    assert status == 2 and expected in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_plot_without_matplotlib_is_refused_before_training(tmp_path, monkeypatch, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, X=np.zeros((2, 2)), T=np.zeros((2, 2)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    status = cli.main(["train", str(MAZUR), "--data", str(data), "--plot",
                       str(tmp_path / "p.png"), "-o", str(tmp_path / "build")])
    assert status == 2 and "needs matplotlib" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_missing_data_file_subprocess(tmp_path):
    err = one_line_error(run(MAZUR, "--data", tmp_path / "nope.npz"))
    assert "nope.npz" in err


def test_chunks_respect_step_decay():
    assert sum(_chunks(1000, ())) == 1000 and len(_chunks(1000, ())) == 50
    sizes = _chunks(1000, ("step", 30, 0.5))
    assert sum(sizes) == 1000 and all(s % 30 == 0 for s in sizes[:-1])


@pytest.mark.parametrize("decay", [{"kind": "step", "every": 7, "factor": 0.5},
                                   {"kind": "exponential", "rate": 0.97}])
def test_chunked_training_equals_one_fit(tmp_path, decay):
    spec = symnet.compiler.as_spec({
        "name": "chunked",
        "network": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"},
                                            {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"},
        "training": {"optimizer": "adam", "learning_rate": 0.05, "lr_decay": decay},
        "init": {"scheme": "xavier_uniform", "seed": 1},
    })
    m = symnet.compile(spec, tmp_path)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(8, 2))
    T = np.sin(X[:, :1])
    p, q = m.init_params(), m.init_params()
    losses = m.fit(p, X, T, 120)  # one call
    tr = train(m, q, X, T, 120, spec=spec, progress=True)  # 120 / 50 -> chunks of 3 or 7
    np.testing.assert_allclose(tr["loss"], losses, rtol=1e-12)
    for name in p:
        np.testing.assert_allclose(q[name], p[name], rtol=1e-12)


def _two_class_data(path, n=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    T = np.where((X[:, :1] > 0), [[0.99, 0.01]], [[0.01, 0.99]])
    np.savez(path, X=X, T=T)
    return X, T


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("build")  # one compiled module for the tests below


def test_train_with_a_validation_fraction_stops_early(tmp_path, build_dir, capsys):
    data = tmp_path / "d.npz"
    _two_class_data(data)
    status = cli.main(["train", str(MAZUR), "--data", str(data), "--epochs", "3000",
                       "--validation-fraction", "0.25", "--patience", "3", "--min-delta",
                       "1e-3", "--save", str(tmp_path / "run.npz"), "-o", str(build_dir),
                       "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert "on 30 samples" in out  # 10 of the 40 held out
    line = next(s for s in out.splitlines() if "validation:" in s)
    assert line.startswith("  validation: 10 samples; best epoch ") and "stopped early" in line
    stopped = int(line.rsplit(" ", 1)[1])
    best = int(line.split("best epoch ")[1].split(",")[0])
    assert stopped == best + 3 < 3000
    assert (tmp_path / "run.npz").is_file()


def test_train_with_a_validation_file(tmp_path, build_dir, capsys):
    data, val = tmp_path / "d.npz", tmp_path / "v.npz"
    _two_class_data(data)
    _two_class_data(val, n=12)
    status = cli.main(["train", str(MAZUR), "--data", str(data), "--epochs", "20",
                       "--validation", str(val), "-o", str(build_dir), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert "20 epochs on 40 samples" in out and "validation: 12 samples" in out


@pytest.mark.parametrize("extra, expected", [
    (["--patience", "3"], "--patience: needs validation data"),
    (["--validation-fraction", "1.5"], "--validation-fraction: expected a fraction in (0, 1)"),
    (["--validation-fraction", "0.5", "--validation", "d.npz"],
     "--validation-fraction: not with --validation"),
    (["--validation-fraction", "0.5", "--trace-out", "tr.npz"],
     "--trace-out: not with validation data"),
    (["--validation-fraction", "0.5", "--patience", "0"],
     "--patience: expected a positive integer"),
    (["--validation", "missing.npz"], "--validation: expected an .npz file"),
])
def test_bad_validation_flags_are_one_line_and_write_nothing(tmp_path, extra, expected,
                                                            capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _two_class_data(tmp_path / "d.npz")
    status = cli.main(["train", str(MAZUR), "--data", "d.npz", "-o", "build", *extra])
    err = capsys.readouterr().err
    assert status == 2 and expected in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]
