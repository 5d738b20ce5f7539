"""Smoke tests of the teaching examples: each one's core runs on a tiny setting (a few
samples, a few epochs, small networks) and draws its figure; the full runs are the scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import activations  # noqa: E402
import backprop_trace  # noqa: E402
import classification  # noqa: E402
import depth  # noqa: E402
import toy_data  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return tmp_path_factory.mktemp("examples")


@pytest.fixture(scope="module")
def classification_result(build):
    return classification.run(build / "c", scale=0.05, n_scale=0.1, only=("moons",), log=quiet)


@pytest.fixture(scope="module")
def activations_result(build):
    return activations.run(build / "a", activations=("sigmoid",), depths=(3,), epochs=4,
                           width=3, n=30, log=quiet)


@pytest.fixture(scope="module")
def depth_result(build):
    return depth.run(build / "d", depths=(0, 1), widths=(3, 2), epochs=3, n_per_class=8,
                     log=quiet)


@pytest.fixture(scope="module")
def backprop_result(build):
    return backprop_trace.run(build / "b", steps=3)


def test_datasets_are_seeded_and_shaped():
    for make in (toy_data.moons, toy_data.circles):
        X, y = make(50, seed=3)
        assert X.shape == (50, 2) and set(y) == {0, 1}
        np.testing.assert_array_equal(X, make(50, seed=3)[0])
    X, y = toy_data.spiral(20, seed=0)
    assert X.shape == (60, 2) and np.bincount(y).tolist() == [20, 20, 20]
    Xtr, ytr, Xte, yte = toy_data.split(X, y, 0.25)
    assert len(yte) == 15 and len(ytr) == 45
    assert sorted(np.concatenate([ytr, yte]).tolist()) == sorted(y.tolist())
    assert toy_data.targets(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_classification_core(classification_result):
    res = classification_result
    rows = res["moons"]["rows"]
    assert [r[0] for r in rows] == ["logistic regression (2-1)", "2-4-2-1 tanh/tanh/sigmoid"]
    assert all(0.0 <= r[4] <= 1.0 for r in rows)


def test_activations_core(activations_result):
    tr = activations_result[("sigmoid", 3)]["trace"]
    assert tr["grad_norm"].shape == (4, 4) and np.all(tr["grad_norm"] > 0)


def test_depth_core(depth_result):
    rows = depth_result
    assert [(r["width"], r["depth"]) for r in rows] == [(3, 0), (3, 1), (2, 0), (2, 1)]
    assert rows[1]["params"] == 2 * 3 + 3 + 3 * 3 + 3 and rows[2]["params"] == 2 * 3 + 3


def test_backprop_trace_core(backprop_result):
    net, params, trace, outputs = backprop_result
    # the lecture: the loss before the first step, w5 after it
    assert trace["loss"][0] == pytest.approx(0.298371109, abs=5e-10)
    assert backprop_trace.weights(trace, 1)[4] == pytest.approx(0.35891648, abs=5e-9)
    assert outputs[0] == pytest.approx([0.75136507, 0.772928465], abs=5e-9)
    lines = []
    backprop_trace.table(net, params, trace, outputs, log=lines.append)
    assert len(lines) == 1 + 3 + 1 + 1


# the plot extra; the cores above run without it. Skipped before its fixtures are set up: in
# the other test process they would run all four examples again only to skip
@pytest.mark.extra
@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="could not import 'matplotlib' (the plot extra)")
def test_the_examples_draw_their_pngs(tmp_path, classification_result, activations_result,
                                      depth_result, backprop_result):
    classification.plot(classification_result, tmp_path / "c.png")
    activations.plot(activations_result, tmp_path / "a.png", activations=("sigmoid",),
                     depths=(3,))
    depth.plot(depth_result, tmp_path / "d.png")
    _, _, trace, outputs = backprop_result
    backprop_trace.plot(trace, outputs, tmp_path / "b.png")
    for name in "cadb":
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG
