"""Search spaces without Dask: how a point changes the spec, how `symnet sweep` reads --grid,
and the spaces refused before anything runs (symnet.dask.search_points). The searches themselves run
on a LocalCluster in test_dask.py."""

from __future__ import annotations

import numpy as np
import pytest

from symnet import SymnetError, spec_from_dict
from symnet.cli import main
from symnet.dask import search_points, variant
from symnet.sweep import parse_space

BASE = {
    "name": "grid",
    "network": {"inputs": 2, "layers": [
        {"units": 3, "activation": "tanh", "bias": "shared"},
        {"units": 5, "activation": "relu"},
        {"units": 1, "activation": "sigmoid"}]},
    "loss": {"kind": "bce"},
    "training": {"learning_rate": 0.5},
}


def test_a_point_changes_only_what_it_names():
    spec, fit_kw = variant(BASE, {"depth": 3, "width": 7, "learning_rate": 0.01,
                                  "training.optimizer": "adam", "batch_size": 16,
                                  "weight_decay": 1e-3})
    layers = spec["network"]["layers"]
    # depth: copies of the first hidden layer (its bias kind too), then the output layer
    assert [layer["units"] for layer in layers] == [7, 7, 7, 1]
    assert [layer["bias"] for layer in layers[:-1]] == ["shared"] * 3
    assert [layer["activation"] for layer in layers] == ["tanh", "tanh", "tanh", "sigmoid"]
    assert spec["training"] == {"learning_rate": 0.01, "optimizer": "adam"}
    assert spec["loss"] == {"kind": "bce", "weight_decay": 1e-3}
    assert fit_kw == {"batch_size": 16}
    assert BASE["network"]["layers"][0]["units"] == 3  # the base is not touched
    spec_from_dict(spec)  # a valid spec


def test_each_point_has_its_own_module_name():
    names = {variant(BASE, {"learning_rate": lr})[0]["name"] for lr in (0.1, 0.2, 0.3)}
    assert len(names) == 3 and all(n.startswith("grid_") for n in names)
    assert variant(BASE, {"learning_rate": 0.1})[0]["name"] in names  # the same point: same


def test_grid_and_random_points():
    jobs = search_points(BASE, {"width": [2, 4], "activation": ["tanh", "relu", "gelu"]})
    assert [j[0] for j in jobs] == [{"width": w, "activation": a} for w in (2, 4)
                                    for a in ("tanh", "relu", "gelu")]
    picked = search_points(BASE, {"width": [2, 4, 8], "learning_rate": [0.1, 1.0]},
                           kind="random", n_iter=4, seed=3)
    points = [tuple(j[0].values()) for j in picked]
    assert len(set(points)) == 4  # distinct points of the 6
    import scipy.stats

    drawn = search_points(BASE, {"learning_rate": scipy.stats.loguniform(1e-4, 1e-1)},
                          kind="random", n_iter=5, seed=0)
    rates = [j[0]["learning_rate"] for j in drawn]
    assert all(1e-4 <= r <= 1e-1 for r in rates) and len(set(rates)) == 5
    again = search_points(BASE, {"learning_rate": scipy.stats.loguniform(1e-4, 1e-1)},
                          kind="random", n_iter=5, seed=0)
    assert [j[0] for j in again] == [j[0] for j in drawn]


@pytest.mark.parametrize("space, kind, expected", [
    ({"widht": [2]}, "grid", "unknown key 'widht'"),
    ({"network.inputs": [2]}, "grid", "unknown key 'network.inputs'"),
    ({"width": [0, 2]}, "grid", "network.layers[0].units: expected an integer >= 1, got 0"),
    ({"activation": ["tanh", "nope"]}, "grid", "network.layers[0].activation"),
    ({"depth": [0]}, "grid", "space['depth']: expected positive integers"),
    ({"epochs": [10, 0]}, "grid", "space['epochs']: expected positive integers"),
    ({"learning_rate": [-1.0]}, "grid", "training.learning_rate"),
    ({"width": []}, "grid", "space['width']: expected a non-empty list"),
    ({"width": 4}, "grid", "space['width']: expected a non-empty list"),
    ({"width": [4]}, "sobol", "kind: expected 'grid' or 'random'"),
    ({}, "grid", "space: expected a non-empty dict"),
])
def test_bad_spaces_are_refused(space, kind, expected):
    with pytest.raises(SymnetError) as err:
        search_points(BASE, space, kind=kind)
    assert expected in str(err.value)


def test_grid_option_values():
    space = parse_space(["learning_rate=0.1,1e-2", "batch_size=none,32",
                         "activation=tanh,relu"], random=False)
    assert space == {"learning_rate": [0.1, 0.01], "batch_size": [None, 32],
                     "activation": ["tanh", "relu"]}
    drawn = parse_space(["learning_rate=loguniform:1e-4:1e-1", "width=randint:2:4"],
                        random=True)
    rng = np.random.default_rng(0)
    assert {int(drawn["width"].rvs(random_state=rng)) for _ in range(50)} == {2, 3, 4}
    for items, random, expected in [
        (["width"], False, "--grid: expected KEY=V1,V2"),
        (["width=2", "width=3"], False, "width given twice"),
        (["learning_rate=loguniform:1e-4:1e-1"], False, "a distribution needs --random N"),
        (["learning_rate=loguniform:0:1"], True, "LOW > 0"),
        (["learning_rate=uniform:1"], True, "expected uniform:LOW:HIGH"),
        ([], False, "at least one KEY=V1,V2"),
    ]:
        with pytest.raises(SymnetError, match=expected):
            parse_space(items, random)


def test_sweep_refuses_a_bad_grid_before_starting_workers(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "s"\n[network]\ninputs = 2\n[[network.layers]]\nunits = 3\n'
                    'activation = "tanh"\n[[network.layers]]\nunits = 1\n'
                    'activation = "sigmoid"\n[loss]\nkind = "bce"\n')
    np.savez(tmp_path / "d.npz", X=np.zeros((10, 2)), T=np.zeros((10, 1)))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for grid, expected in ((["depth=1,x"], "space['depth']: expected positive integers"),
                           (["size=3"], "unknown key 'size'")):
        rc = main(["sweep", str(spec), "--data", str(tmp_path / "d.npz"), "--grid", *grid])
        err = capsys.readouterr().err
        assert rc == 2 and expected in err and len(err.strip().splitlines()) == 1
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
