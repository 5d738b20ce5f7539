"""symnet.dask on a LocalCluster of 2 worker processes on the loopback address: data-parallel
training equal to the single-process fit, searches (grid, divergence, a worker killed in the
middle), scikit-learn's GridSearchCV under joblib's Dask backend, and `symnet sweep`."""

from __future__ import annotations

import os
import signal
import threading
import time
import tomllib

import numpy as np
import pytest

# needs Dask distributed: CI's extras step runs it (.ci/run), all in one test process
pytestmark = [pytest.mark.extra, pytest.mark.xdist_group("dask")]
pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install "
                                          "'symnet[scale]')")

import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import symnet  # noqa: E402
import symnet.dask as sd  # noqa: E402
from symnet import SymnetError  # noqa: E402
from symnet.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    with Client(cluster) as c:
        yield c
    cluster.close()


def _net(mode, optimizer, name, weight_decay=0.0, reduction="mean", decay=None):
    training = {"learning_rate": 0.05, **optimizer}
    if decay:
        training["lr_decay"] = decay
    return {"name": name, "codegen": {"mode": mode},
            "network": {"inputs": 3, "layers": [{"units": 4, "activation": "tanh"},
                                                 {"units": 2, "activation": "sigmoid"}]},
            "loss": {"kind": "mse", "reduction": reduction, "weight_decay": weight_decay},
            "training": training}


def _data(n=203, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.random((n, 2))


# Adam with weight decay and a step decay (loop form); SGD with Nesterov momentum and a sum
# reduction (scalar form): the update's state, the decayed rate and the reduction all count.
CASES = [
    ("loop", {"optimizer": "adam"}, 1e-3, "mean", {"kind": "step", "every": 2, "factor": 0.5}),
    ("scalar", {"optimizer": "sgd", "momentum": 0.9, "nesterov": True}, 0.0, "sum", None),
]


@pytest.mark.parametrize("mode, optimizer, weight_decay, reduction, decay", CASES,
                         ids=["loop-adam", "scalar-nesterov"])
@pytest.mark.parametrize("batch_size, rows_per_call", [(None, 8192), (40, 8192), (None, 16)],
                         ids=["full", "minibatch", "full-in-calls-of-16-rows"])
def test_data_parallel_fit_equals_the_single_process_fit(client, tmp_path, mode, optimizer,
                                                         weight_decay, reduction, decay,
                                                         batch_size, rows_per_call):
    module = symnet.compile(_net(mode, optimizer, f"dp_{mode}", weight_decay, reduction,
                                 decay), tmp_path)
    X, T = _data()
    expected, state = module.init_params(), module.init_state()
    losses = module.fit(expected, X, T, 5, batch_size=batch_size, seed=11, state=state)
    # three uneven chunks on two workers
    Xd, Td = da.from_array(X, chunks=(90, 3)), da.from_array(T, chunks=(50, 2))
    params, dstate = module.init_params(), module.init_state()
    got = sd.fit(module, params, Xd, Td, 5, batch_size=batch_size, seed=11, state=dstate,
                 client=client, rows_per_call=rows_per_call)
    np.testing.assert_allclose(got, losses, rtol=1e-10)
    for name in params:
        np.testing.assert_allclose(params[name], expected[name], rtol=1e-10, atol=1e-13)
    for name in state:
        np.testing.assert_allclose(dstate[name], state[name], rtol=1e-10, atol=1e-13)
    assert not np.allclose(params["W1"], module.init_params()["W1"])  # it trained


def test_local_steps_train_but_are_not_the_single_process_fit(client, tmp_path):
    module = symnet.compile(_net("loop", {"optimizer": "adam"}, "dp_loop"), tmp_path)
    X, T = _data()
    params = module.init_params()
    start = module.loss(params, X, T)
    losses = sd.fit(module, params, X, T, 9, local_steps=4, client=client)
    assert losses.shape == (9,)  # rounds of 4, 4 and 1 epochs
    assert module.loss(params, X, T) < 0.9 * start
    single = module.init_params()
    module.fit(single, X, T, 9)
    assert not np.allclose(params["W1"], single["W1"], rtol=1e-6)


def test_data_parallel_fit_refusals(client, tmp_path):
    summed = symnet.compile(_net("loop", {"optimizer": "sgd"}, "dp_sum", 1e-3, "sum"), tmp_path)
    X, T = _data(20)
    with pytest.raises(SymnetError, match="reduction = 'sum'"):
        sd.fit(summed, summed.init_params(), X, T, 1, client=client)
    module = symnet.compile(_net("loop", {"optimizer": "adam"}, "dp_loop"), tmp_path)
    with pytest.raises(ValueError, match=r"X: expected shape \(samples, 3\)"):
        sd.fit(module, module.init_params(), X[:, :2], T, 1, client=client)
    with pytest.raises(ValueError, match="local_steps"):
        sd.fit(module, module.init_params(), X, T, 1, local_steps=0, client=client)
    with pytest.raises(SymnetError, match="expected a module generated by symnet"):
        sd.fit(np, {}, X, T, 1, client=client)


def test_a_diverging_data_parallel_fit_raises_as_fit_does(client, tmp_path):
    spec = _net("loop", {"optimizer": "sgd"}, "dp_diverge")
    spec["network"]["layers"][-1]["activation"] = "linear"
    spec["training"]["learning_rate"] = 1e6
    module = symnet.compile(spec, tmp_path)
    X, T = _data(40)
    with pytest.raises(FloatingPointError) as single:
        module.fit(module.init_params(), X, T, 50)
    with pytest.raises(FloatingPointError) as parallel:
        sd.fit(module, module.init_params(), X, T, 50, client=client)
    assert parallel.value.step == single.value.step
    np.testing.assert_allclose(parallel.value.losses, single.value.losses, rtol=1e-10)


SPEC = {"name": "search", "network": {"inputs": 2, "layers": [
    {"units": 4, "activation": "tanh"}, {"units": 1, "activation": "linear"}]},
    "loss": {"kind": "mse"}, "training": {"learning_rate": 0.05}}


def _regression(n=200):
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(n, 2))
    return X, (np.sin(2 * X[:, 0]) * X[:, 1])[:, None]


def test_grid_search(client, tmp_path):
    X, T = _regression()
    space = {"learning_rate": [0.05, 0.2, 1e9], "width": [2, 6]}
    result = sd.search(SPEC, space, X, T, validation=0.25, epochs=60, batch_size=32,
                       patience=5, client=client)
    assert [r["point"] for r in result.rows] == list(range(6))
    assert [(r["learning_rate"], r["width"]) for r in result.rows] == \
        [(lr, w) for lr in (0.05, 0.2, 1e9) for w in (2, 6)]
    statuses = [r["status"] for r in result.rows]
    assert statuses == ["ok"] * 4 + ["diverged"] * 2  # reported, not lost
    best = result.best
    assert best["val_loss"] == min(r["val_loss"] for r in result.rows if r["status"] == "ok")
    assert best["learning_rate"] in (0.05, 0.2)
    # the row agrees with the same point trained here, alone
    spec, _ = sd.variant(SPEC, {"learning_rate": best["learning_rate"], "width": best["width"]})
    module = symnet.compile(spec, tmp_path, mode="loop")
    Xt, Tt, Xv, Tv = sd._split(X, T, 0.25, 0)
    history = module.fit(module.init_params(), Xt, Tt, 60, batch_size=32,
                         validation=(Xv, Tv), patience=5)
    assert history["epochs"] == best["epochs"] and history["best_epoch"] == best["best_epoch"]
    assert history["val_loss"][history["best_epoch"]] == pytest.approx(best["val_loss"],
                                                                       rel=1e-12)
    # the table, the best spec and the plot
    text = result.to_csv(tmp_path / "r.csv")
    lines = text.splitlines()
    assert lines[0].startswith("point,learning_rate,width,status,epochs,best_epoch,val_loss")
    assert len(lines) == 7 and (tmp_path / "r.csv").read_text() == text
    written = result.write_best(tmp_path / "best.toml")
    assert tomllib.loads((tmp_path / "best.toml").read_text()) == written
    assert symnet.load_spec(tmp_path / "best.toml").network.layers[0].units == best["width"]
    result.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_space_submits_nothing(client, monkeypatch):
    calls = []
    monkeypatch.setattr(client, "submit", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(client, "scatter", lambda *a, **k: calls.append(a))
    X, T = _regression(20)
    for space in ({"widht": [2, 3]}, {"width": [2, -1]}, {"depth": ["deep"]}):
        with pytest.raises(SymnetError):
            sd.search(SPEC, space, X, T, client=client)
    with pytest.raises(SymnetError, match=r"X: expected shape \(samples, 2\)"):
        sd.search(SPEC, {"width": [2]}, X[:, :1], T, client=client)
    assert calls == []


def test_a_search_survives_a_killed_worker(client):
    X, T = _regression(2000)
    space = {"learning_rate": [0.01, 0.02, 0.03, 0.04], "seed": [0, 1]}
    pids = client.run(os.getpid)
    outcome = {}

    def run():
        # each point some seconds long, so that the killed worker is in the middle of one
        outcome["result"] = sd.search(SPEC, space, X, T, epochs=300, batch_size=2,
                                      client=client)

    thread = threading.Thread(target=run)
    thread.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:  # a worker busy with a point
        busy = [w for w, tasks in client.processing().items()
                if any(str(t).startswith("symnet-point-") for t in tasks)]
        if busy:
            victim = busy[0]
        else:
            time.sleep(0.05)
    assert victim is not None, "no point started"
    running = [str(t) for t in client.processing()[victim]]
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(300)
    result = outcome["result"]
    assert [r["status"] for r in result.rows] == ["ok"] * 8
    # the points that were running on the killed worker were run again, by a live process
    by_point = {r["point"]: r for r in result.rows}
    for key in running:
        row = by_point[int(key.split("-")[2])]
        assert not row["worker"].endswith(f":{pids[victim]}")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gridsearchcv_under_joblibs_dask_backend(client):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    import joblib
    from sklearn.datasets import make_moons
    from sklearn.model_selection import GridSearchCV

    from symnet.sklearn import MLPClassifier

    X, y = make_moons(120, noise=0.2, random_state=0)
    grid = {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(4,), (8,)]}
    base = MLPClassifier(max_iter=30, random_state=0)
    local = GridSearchCV(base, grid, cv=2).fit(X, y)
    with joblib.parallel_config(backend="dask"):
        spread = GridSearchCV(base, grid, cv=2, n_jobs=-1).fit(X, y)
    np.testing.assert_allclose(spread.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"])
    assert spread.best_params_ == local.best_params_
    workers = client.run(lambda: sorted(k for k in __import__("sys").modules
                                        if k.startswith("symnet.sklearn")))
    assert any(workers.values())  # the fits ran on the workers


def test_sweep_command_on_a_scheduler(client, tmp_path, capsys):
    spec = tmp_path / "sw.toml"
    spec.write_text('name = "sw"\n[network]\ninputs = 2\n[[network.layers]]\nunits = 4\n'
                    'activation = "tanh"\n[[network.layers]]\nunits = 1\n'
                    'activation = "linear"\n[loss]\nkind = "mse"\n[training]\n'
                    'learning_rate = 0.05\n')
    X, T = _regression()
    np.savez(tmp_path / "d.npz", X=X, T=T)
    out = tmp_path / "out"
    rc = main(["sweep", str(spec), "--data", str(tmp_path / "d.npz"), "--grid",
               "learning_rate=0.05,0.2", "--grid", "activation=tanh,sigmoid", "--random", "3",
               "--epochs", "20", "--scheduler", client.scheduler.address, "-o", str(out),
               "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "sw: 3 points (random) on 200 samples" in text
    assert sorted(p.name for p in out.iterdir()) == ["best.toml", "sweep.csv", "sweep.png"]
    assert len((out / "sweep.csv").read_text().splitlines()) == 4
    best = symnet.load_spec(out / "best.toml")
    assert best.training.learning_rate in (0.05, 0.2)


def test_a_worker_gets_the_gemm_file_and_fits_on_one_thread(tmp_path):
    """A network with layers narrow enough for _gemm: its kernel file imports the gemm file
    from beside itself, so the files shipped to a worker carry it; imported there (a fresh
    process, as a worker is), the module fits, on one thread."""
    import json
    import subprocess
    import sys
    from dataclasses import asdict

    spec = {"name": "ship", "network": {"inputs": 3, "layers": [
        {"units": 16, "activation": "tanh"}, {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"}, "codegen": {"mode": "loop"}}
    module = symnet.compile(spec, tmp_path / "build")
    files = sd.module_files(module)
    assert files.gemm_name == module._kernels._gemm_module.__name__
    assert "def _meet(" in files.gemm_source
    (tmp_path / "files.json").write_text(json.dumps(asdict(files)), encoding="utf-8")
    script = (
        "import json, sys\n"
        "import numpy as np\n"
        "import symnet.dask as sd\n"
        "files = sd.ModuleFiles(**json.loads(open(sys.argv[1]).read()))\n"
        "m = sd.load_files(files)\n"
        "assert m.THREADS == 1, m.THREADS\n"
        "X = np.random.default_rng(0).normal(size=(200, 3))\n"
        "losses = m.fit(m.init_params(), X, X[:, :1] ** 2, 5, lr=0.05)\n"
        "assert losses[-1] < losses[0], losses\n"
        "print('ok', m._kernels.__file__)\n")
    env = {**os.environ, "SYMNET_CACHE_DIR": str(tmp_path / "cache"), "SYMNET_THREADS": "2"}
    env.pop("SYMNET_KERNEL_DIR", None)  # the worker finds the files in its own folder only
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "files.json")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok") and str(tmp_path / "cache") in out.stdout
