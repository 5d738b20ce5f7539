"""symnet.sklearn: scikit-learn's own estimator checks, its pipelines and searches, pickling
into a new process, and the parameters it refuses."""

from __future__ import annotations

import pickle
import subprocess
import sys
import unittest
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.extra  # needs scikit-learn: CI's extras step runs it (.ci/run)
pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install "
                                      "'symnet[sklearn]')")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from symnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# The checks that cannot apply, with the reason (each skips itself; the test asserts it does)
NOT_APPLICABLE = {
    "check_array_api_input": "symnet's kernels take NumPy arrays (the check also needs "
                             "SCIPY_ARRAY_API=1 before scipy is imported)",
    "check_classifiers_multilabel_output_format_decision_function":
        "no decision_function, as scikit-learn's MLPClassifier",
}


@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_scikit_learn_estimator_checks(estimator, check):
    name = getattr(check, "func", check).__name__
    if name in NOT_APPLICABLE:
        with pytest.raises(unittest.SkipTest):
            check(estimator)
        return
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_in_a_pipeline_a_search_and_cross_validation(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=80, random_state=0,
                                                         learning_rate_init=0.01))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
                                 "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    search.fit(X, y)
    assert set(search.best_params_) == {"mlpclassifier__hidden_layer_sizes",
                                        "mlpclassifier__alpha"}
    assert search.best_score_ > 0.85 and search.score(X, y) > 0.85


def test_fitted_attributes_in_scikit_learns_layout(iris):
    X, y = iris
    clf = MLPClassifier((5, 4), max_iter=30, random_state=1).fit(X, y)
    assert [W.shape for W in clf.coefs_] == [(4, 5), (5, 4), (4, 3)]
    assert [b.shape for b in clf.intercepts_] == [(5,), (4,), (3,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
    assert len(clf.loss_curve_) == clf.n_iter_ <= 30 and clf.loss_ == clf.loss_curve_[-1]
    # predict_proba is the softmax of the network written out with those arrays
    a = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        a = np.maximum(a @ W + b, 0.0)
    z = a @ clf.coefs_[-1] + clf.intercepts_[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(X), p / p.sum(axis=1, keepdims=True),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(z, axis=1)])


def test_early_stopping_keeps_the_best_validation_epoch(iris):
    X, y = iris
    clf = MLPClassifier((16,), max_iter=500, early_stopping=True, n_iter_no_change=5,
                        learning_rate_init=0.05, random_state=0, validation_fraction=0.2)
    clf.fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert all(0.0 <= s <= 1.0 for s in clf.validation_scores_)
    assert clf.t_ == clf.n_iter_ * 120  # the samples trained on: 150 less the 30 held out


def test_small_networks_train_with_one_blas_thread(iris, monkeypatch):
    # waking BLAS's other threads for every small product costs more than they bring: a fit
    # whose products are small runs np.dot on one thread, and leaves the counts as they were
    from threadpoolctl import threadpool_info

    import symnet.sklearn as sk

    def blas_threads():
        return sorted((d["filepath"], d["num_threads"]) for d in threadpool_info()
                      if d["user_api"] == "blas")

    seen = []
    history = sk._BaseMLP._history

    def spy(self, *args):
        seen.append(blas_threads())
        return history(self, *args)

    monkeypatch.setattr(sk._BaseMLP, "_history", spy)
    X, y = iris
    clf = MLPClassifier((8,), max_iter=2, random_state=0)
    before = blas_threads()
    clf.fit(X, y)
    assert seen[0] and all(n == 1 for _, n in seen[0]) and blas_threads() == before
    # one under the largest product, batch 150 (all of iris) x 8 units x 4 inputs
    monkeypatch.setattr(sk, "ONE_BLAS_THREAD_MAX", 150 * 8 * 4 - 1)
    clf.fit(X, y)
    assert seen[1] == before


def test_partial_fit_continues_the_optimizer(iris):
    X, y = iris
    a = MLPClassifier((8,), random_state=3, batch_size=50)
    a.partial_fit(X, y, classes=np.unique(y))
    a.partial_fit(X, y)
    assert a.n_iter_ == 2 and len(a.loss_curve_) == 2
    with pytest.raises(ValueError, match="classes must be given on the first call"):
        MLPClassifier().partial_fit(X, y)


def test_a_pickled_estimator_predicts_the_same_in_a_new_process(iris, tmp_path):
    X, y = iris
    clf = MLPClassifier((6,), max_iter=40, random_state=0).fit(X, y)
    reg = MLPRegressor((6,), max_iter=40, random_state=0).fit(X[:, :3], X[:, 3])
    path = tmp_path / "fitted.pkl"
    path.write_bytes(pickle.dumps((clf, reg, X)))
    code = ("import pickle, sys, numpy as np\n"
            f"clf, reg, X = pickle.loads(open({str(path)!r}, 'rb').read())\n"
            "np.save(sys.argv[1], np.hstack([clf.predict_proba(X), reg.predict(X[:, :3])"
            "[:, None]]))\n")
    out = tmp_path / "out.npy"
    run = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    want = np.hstack([clf.predict_proba(X), reg.predict(X[:, :3])[:, None]])
    np.testing.assert_array_equal(np.load(out), want)


@pytest.mark.parametrize("params, message", [
    ({"solver": "lbfgs"}, "solver: expected 'sgd' or 'adam'"),
    ({"learning_rate": "adaptive"}, "learning_rate: only 'constant'"),
    ({"shuffle": False}, "shuffle=False is not supported"),
    ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes: expected positive integers"),
    ({"activation": "nope"}, "nope"),
    ({"dtype": "float16"}, "dtype: expected 'float64' or 'float32'"),
])
def test_unsupported_parameters_are_refused_at_fit(iris, params, message):
    X, y = iris
    with pytest.raises(ValueError, match=message):
        MLPClassifier(max_iter=2, **params).fit(X, y)


def test_every_solver_runs_the_one_compiled_kernel(iris):
    """solver, momentum and nesterovs_momentum are numbers in the tables, not kinds of kernel
    file: estimators that differ only in them share one kernel file and its compiled _run."""
    X, y = iris
    seen = []
    for params in ({"solver": "adam"}, {"solver": "sgd", "momentum": 0.0},
                   {"solver": "sgd", "momentum": 0.9, "nesterovs_momentum": True}):
        clf = MLPClassifier((8,), max_iter=3, random_state=0, **params).fit(X, y)
        kernels = clf._module()._kernels
        seen.append((kernels.__name__, len(kernels._run.signatures)))
        assert np.isfinite(clf.loss_curve_).all()
    assert seen[0] == seen[1] == seen[2]
