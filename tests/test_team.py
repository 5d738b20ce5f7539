"""fit in a team of threads: each batch's rows shared out, the gradients summed, one step; the
same training as on one thread (to rounding: the sums over the rows are added in another
order), with minibatches, validation and early stopping, a diverging run, and a thread that
fails."""

from __future__ import annotations

import os

import numpy as np
import pytest

import symnet


def _spec(name, out_units=2, out_act="linear", loss="mse", units=8):
    # 8 float64 units: a layer narrow enough for _gemm, so a kernel file with the team (4: the
    # kinds of test_validation.py's net, a kernel file without)
    return {
        "name": name,
        "network": {"inputs": 2, "layers": [{"units": units, "activation": "tanh"},
                                            {"units": out_units, "activation": out_act}]},
        "loss": {"kind": loss},
        "training": {"optimizer": "adam", "learning_rate": 0.05},
        "codegen": {"mode": "loop"},
    }


@pytest.fixture(scope="module")
def net(run_folder):
    return symnet.compile(_spec("team"), run_folder("team"))  # one kernel file for the file


@pytest.fixture
def team(net, monkeypatch):
    """team(threads): fit of `net` runs in a team of that many threads (one row each at
    least, so that small batches show it)."""
    def make(threads):
        monkeypatch.setattr(net._kernels, "TEAM_MIN_ROWS", 1)
        monkeypatch.setattr(net, "THREADS", threads)
    return make


def _classes(rng, n):
    X = rng.normal(size=(n, 2))
    label = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return X, np.eye(3)[label]


RNG = np.random.default_rng(11)
X, T = _classes(RNG, 41)
XV, TV = _classes(RNG, 15)
T, TV = T[:, :2], TV[:, :2]  # two of the classes' indicators, fitted by least squares


def _fit(net, threads, team, **kw):
    team(threads)
    p, s = net.init_params(seed=3), net.init_state()
    out = net.fit(p, X, T, 9, state=s, seed=2, **kw)
    return out, p, s


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("batch_size", [None, 10])  # 10: the last batch of 1 row
def test_a_team_trains_as_one_thread(net, team, threads, batch_size):
    want, p1, s1 = _fit(net, 1, team, batch_size=batch_size)
    got, p2, s2 = _fit(net, threads, team, batch_size=batch_size)
    assert net._team(X.shape[0] if batch_size is None else batch_size) == threads
    assert (os.getpid(), threads - 1) in net._kernels._pools  # it ran in a team
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for k in p1:
        np.testing.assert_allclose(p2[k], p1[k], rtol=1e-11, atol=1e-14)
    for k in s1:
        np.testing.assert_allclose(s2[k], s1[k], rtol=1e-11, atol=1e-14)
    assert not np.array_equal(p2["W1"], net.init_params(seed=3)["W1"])  # it trained


@pytest.mark.parametrize("patience", [None, 2])
def test_validation_and_early_stopping_in_a_team(net, team, patience):
    kw = {"batch_size": 8, "validation": (XV, TV), "patience": patience, "lr": 0.3}
    want, p1, _ = _fit(net, 1, team, **kw)
    got, p2, _ = _fit(net, 3, team, **kw)
    assert got["epochs"] == want["epochs"] and got["best_epoch"] == want["best_epoch"]
    assert got["stopped_epoch"] == want["stopped_epoch"]
    if patience:
        assert want["stopped_epoch"] is not None  # it stopped early (lr 0.3 overshoots)
    assert "val_accuracy" not in got  # a linear output: no accuracy
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12)
    for k in p1:  # the best epoch's parameters, restored
        np.testing.assert_allclose(p2[k], p1[k], rtol=1e-11, atol=1e-14)


def test_a_diverging_run_stops_the_team_at_the_same_step(net, team):
    errors = []
    for threads in (1, 2):
        team(threads)
        with pytest.raises(FloatingPointError) as info:
            net.fit(net.init_params(), X, T * 1e10, 50, lr=1e200, batch_size=16, seed=1)
        errors.append(info.value)
    assert str(errors[1]) == str(errors[0]) and errors[1].step == errors[0].step >= 1
    np.testing.assert_array_equal(errors[1].losses[:errors[0].step],
                                  errors[0].losses[:errors[0].step])


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_thread_lets_the_others_go_and_its_error_is_raised(net, team, monkeypatch,
                                                                       failing):
    """The member's error (thread 1) after the leader waited for it at the first barrier, or
    the leader's (thread 0) while the member waits for it: raised, nothing left waiting."""
    compiled = net._kernels._run

    def run(*args):
        if args[-4] == failing:  # tid
            raise MemoryError(f"thread {failing}")
        return compiled(*args)

    team(2)
    monkeypatch.setattr(net._kernels, "_run", run)
    with pytest.raises(MemoryError, match=f"thread {failing}"):
        net.fit(net.init_params(), X, T, 5, batch_size=None)
    monkeypatch.setattr(net._kernels, "_run", compiled)
    net.fit(net.init_params(), X, T, 2)  # the pool's thread is free again


def test_how_many_threads_share_a_batch(net, monkeypatch):
    monkeypatch.setattr(net, "THREADS", 4)
    least = net._kernels.TEAM_MIN_ROWS
    assert net._team(2 * least - 1) == 1
    assert net._team(2 * least) == 2
    assert net._team(100 * least) == 4
    # OpenBLAS runs a product of m * n * k multiply-adds on one thread up to 4 * 65536; the
    # widest left on np.dot is the output layer's, 2 x 8 (results 2 columns wide: too narrow
    # for _gemm)
    assert net._TEAM_ROWS_MAX == 4 * 65536 // 16
    assert net._team(4 * net._TEAM_ROWS_MAX) == 4
    assert net._team(4 * net._TEAM_ROWS_MAX + 4) == 1
    monkeypatch.setattr(net, "THREADS", 1)
    assert net._team(100 * least) == 1


def test_symnet_threads_sets_the_most_threads(net, monkeypatch):
    monkeypatch.setenv("SYMNET_THREADS", "3")
    assert net._kernels._cpus() == 3
    monkeypatch.delenv("SYMNET_THREADS")
    assert 1 <= net._kernels._cpus() <= 8
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SYMNET_THREADS", bad)
        with pytest.raises(ValueError, match="SYMNET_THREADS: expected a positive integer"):
            net._kernels._cpus()


def test_a_kernel_file_without_gemm_has_no_team(net, monkeypatch):
    """A network whose layers are all too narrow for _gemm's vectors (4 float64 units) gets a
    kernel file without the team (its barrier is the gemm file's, which that file does not
    import), and fit runs on one thread there."""
    text = symnet.build(_spec("team_narrow", units=4)).kernels[0][1]
    assert "_run_team = None" in text and "_meet" not in text and "THREADS = 1" in text
    monkeypatch.setattr(net, "THREADS", 4)
    assert net._team(1000) == 4
    monkeypatch.setattr(net._kernels, "_run_team", None)
    assert net._team(1000) == 1


def test_one_thread_compiles_a_version_without_the_team(net, team):
    """Where the kernel file's THREADS is 1 (the suite's SYMNET_THREADS=1), every op passes
    sync None, and the version of _run they share has no barrier; a team's fit compiles the
    version with it."""
    assert net._kernels.THREADS == 1 and net._kernels._ALONE is None
    net.grad(net.init_params(), X, T)
    _fit(net, 2, team)

    def calls_meet(none):  # per compiled version (other tests may have added some: a trace)
        found = [sig for sig in net._kernels._run.signatures
                 if (str(sig[-3]) == "none") == none]
        assert found
        return {"_meet" in net._kernels._run.inspect_llvm(sig) for sig in found}

    assert calls_meet(True) == {False}
    assert calls_meet(False) == {True}
