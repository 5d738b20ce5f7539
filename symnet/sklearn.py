"""scikit-learn estimators on symnet's compiled kernels: `MLPClassifier` and `MLPRegressor`.

They take scikit-learn's own parameter names and meanings wherever they apply (see each
class), build a symnet spec from them (always the loop form, whose kernel file is shared by
every network of the same kinds: a new width, depth or data shape needs no new compile), and
train with one compiled `fit` call. Needs the optional extra: `pip install 'symnet[sklearn]'`.

What differs from scikit-learn's estimators, and why:

- `solver` is "sgd" or "adam" ("lbfgs" is refused: symnet's kernels are first-order), and
  `learning_rate` is "constant" (the schedules "invscaling" and "adaptive" are refused).
- The stopping rule compares losses, not scores: without `early_stopping`, training stops
  after `n_iter_no_change` epochs whose training loss (evaluated after the epoch's steps) is
  not lower than the best by more than `tol`; with it, the same on the validation loss of
  the held-out `validation_fraction`, and the best epoch's parameters are kept (as
  scikit-learn does). `validation_scores_` still holds the score per epoch: accuracy
  (classifier) or R² (regressor).
- `alpha` is scikit-learn's L2 penalty (0.5 * alpha * sum of squared weights over the batch
  size), given to symnet as `weight_decay = alpha / (2 * batch_size)`.

A fitted estimator pickles as its parameters and settings only: unpickled, it compiles (or
finds in the cache) its module again on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
    from threadpoolctl import ThreadpoolController  # a dependency of scikit-learn's
except ImportError as exc:  # pragma: no cover - exercised in a process without sklearn
    from .errors import SymnetError

    class SklearnUnavailableError(ImportError, SymnetError):
        pass

    raise SklearnUnavailableError(
        "symnet.sklearn needs scikit-learn (pip install 'symnet[sklearn]')") from exc

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names, and symnet's (any activation symnet knows is accepted too)
ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}

# A fit whose largest matrix product per step has at most this many multiply-adds (batch x
# units x units in) runs BLAS on one thread: at such sizes waking BLAS's second thread for each
# product costs more than it brings (digits' 64-128-10 net, batch 64: 15% faster on one
# thread; batch 200 of a 256-unit layer, 3.3 million, 4% slower). Measured on a 2-core machine:
# docs/benchmarks.md, section 19.
ONE_BLAS_THREAD_MAX = 2**21
_threadpools = []  # the process's ThreadpoolController, made on first use


def blas_threads(spec: dict, batch: int):
    """A context in which the kernels' BLAS calls (np.dot, through SciPy's BLAS) run on one
    thread when the network's products are small enough (ONE_BLAS_THREAD_MAX), else as they
    were; the thread counts are restored on leaving it."""
    sizes = [spec["network"]["inputs"]] + [layer["units"] for layer in spec["network"]["layers"]]
    largest = batch * max(a * b for a, b in zip(sizes, sizes[1:]))
    if largest > ONE_BLAS_THREAD_MAX:
        return contextlib.nullcontext()
    if not _threadpools:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba's np.dot calls: loaded)

        _threadpools.append(ThreadpoolController())
    return _threadpools[0].limit(limits=1, user_api="blas")


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: the parameters, the spec, the training."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype

    # -- the parameters, checked ---------------------------------------------------------------

    def _check_params(self):
        name = type(self).__name__
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, (int, np.integer)) else list(sizes)
        if any(isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < 1
               for u in sizes):
            raise ValueError(f"{name}: hidden_layer_sizes: expected positive integers, got "
                             f"{self.hidden_layer_sizes!r}")
        if self.solver not in ("sgd", "adam"):
            raise ValueError(f"{name}: solver: expected 'sgd' or 'adam', got {self.solver!r} "
                             f"(symnet's kernels are first-order: no 'lbfgs')")
        if self.learning_rate != "constant":
            raise ValueError(f"{name}: learning_rate: only 'constant' is supported, got "
                             f"{self.learning_rate!r}")
        if not self.shuffle:
            raise ValueError(f"{name}: shuffle=False is not supported (symnet's minibatches "
                             f"visit the samples in a seeded random order)")
        for key, low in (("alpha", 0.0), ("learning_rate_init", None), ("tol", 0.0),
                         ("momentum", 0.0), ("epsilon", None)):
            value = getattr(self, key)
            ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
                and np.isfinite(value) and (value >= low if low is not None else value > 0)
            if not ok:
                raise ValueError(f"{name}: {key}: expected a "
                                 f"{'non-negative' if low is not None else 'positive'} number, "
                                 f"got {value!r}")
        for key in ("max_iter", "n_iter_no_change"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {key}: expected a positive integer, got {value!r}")
        for key in ("beta_1", "beta_2", "validation_fraction"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float, np.number)) and 0 <= value < 1):
                raise ValueError(f"{name}: {key}: expected a number in [0, 1), got {value!r}")
        if self.early_stopping and self.validation_fraction <= 0:
            raise ValueError(f"{name}: validation_fraction: expected a number in (0, 1) with "
                             f"early_stopping, got {self.validation_fraction!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"{name}: dtype: expected 'float64' or 'float32', got "
                             f"{self.dtype!r}")
        if not isinstance(self.activation, str):
            raise ValueError(f"{name}: activation: expected a name, got {self.activation!r}")
        return [int(u) for u in sizes]

    def _spec(self, n_inputs, n_outputs, batch):
        """The symnet spec of this estimator for this data, as a dict."""
        sizes = self._check_params()
        act = ACTIVATIONS.get(self.activation, self.activation)
        out_act, loss = self._output(n_outputs)
        training = {"optimizer": self.solver, "learning_rate": float(self.learning_rate_init)}
        if self.solver == "sgd" and self.momentum > 0:
            training.update(momentum=float(self.momentum),
                            nesterov=bool(self.nesterovs_momentum))
        elif self.solver == "adam":
            training.update(beta1=float(self.beta_1), beta2=float(self.beta_2),
                            eps=float(self.epsilon))
        spec = {
            "network": {"inputs": int(n_inputs),
                        "layers": [{"units": u, "activation": act} for u in sizes]
                        + [{"units": int(n_outputs), "activation": out_act}]},
            "loss": {"kind": loss, "reduction": "mean",
                     "weight_decay": float(self.alpha) / (2.0 * batch)},
            "training": training,
            "init": {"scheme": "xavier_uniform"},
            "codegen": {"mode": "loop", "dtype": self.dtype},
        }
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        spec["name"] = f"sklearn_{digest}"
        return spec

    def _module(self):
        """The compiled module of the fitted network (compiled again after unpickling)."""
        module = getattr(self, "_compiled", None)
        if module is None or module.SPEC_SHA256 != self._spec_sha256:
            import symnet

            try:
                # not tuned (codegen/cpu/gemm.py): its tens of milliseconds per new network
                # would be a fifth of a small fit, and a search fits many
                module = symnet.compile(self.spec_, tune=False)
            except symnet.SymnetError as exc:
                raise ValueError(f"{type(self).__name__}: {exc}") from None
            self._compiled = module
            self._spec_sha256 = module.SPEC_SHA256
        return module

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_compiled", None)  # a module object: compiled again when needed
        return state

    def _params(self):
        """The network's parameters in symnet's layout (W<l> is units x units_in)."""
        module = self._module()
        params = module.init_params()
        for ln, (W, b) in enumerate(zip(self.coefs_, self.intercepts_), start=1):
            params[f"W{ln}"][...] = W.T
            params[f"b{ln}"][...] = b
        return params

    def _glorot(self, module, rng):
        """Initial parameters as scikit-learn draws them: per layer, weights and biases
        uniform in +-sqrt(factor / (fan_in + fan_out)), factor 2 for a logistic activation and
        6 otherwise, from the estimator's random state."""
        params = module.init_params()
        factor = 2.0 if self.activation == "logistic" else 6.0
        for ln in range(1, len(self.spec_["network"]["layers"]) + 1):
            fan_out, fan_in = module.PARAM_SHAPES[f"W{ln}"]
            bound = np.sqrt(factor / (fan_in + fan_out))
            params[f"W{ln}"][...] = rng.uniform(-bound, bound, (fan_in, fan_out)).T
            params[f"b{ln}"][...] = rng.uniform(-bound, bound, fan_out)
        return params

    def _keep(self, params):
        n = len(self.coefs_) if hasattr(self, "coefs_") else len(self.spec_["network"]["layers"])
        self.coefs_ = [np.array(params[f"W{ln}"].T) for ln in range(1, n + 1)]
        self.intercepts_ = [np.array(params[f"b{ln}"]) for ln in range(1, n + 1)]

    # -- training ------------------------------------------------------------------------------

    def _batch(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        b = self.batch_size
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"{type(self).__name__}: batch_size: expected 'auto' or a "
                             f"positive integer, got {b!r}")
        return int(min(b, n))

    def _start(self, X, T, rng, reset):
        """Build (or keep, with warm_start or partial_fit) the network for this data."""
        batch = self._batch(X.shape[0])
        spec = self._spec(X.shape[1], T.shape[1], batch)
        if not reset and getattr(self, "spec_", None) is not None \
                and self.spec_["network"] == spec["network"]:
            # the same network (warm_start, partial_fit): keep its weights, and the
            # optimizer's state while it has the same arrays
            kinds = self._module().STATE_SHAPES
            self.spec_, self._spec_sha256 = spec, None
            if self._module().STATE_SHAPES != kinds:
                self._optimizer_state = self._module().init_state()
            return
        self.spec_ = spec
        self._spec_sha256 = None
        module = self._module()
        self._keep(self._glorot(module, rng))
        self._optimizer_state = module.init_state()
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self.best_loss_ = np.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = None if not self.early_stopping else -np.inf

    def _train(self, X, T, rng, incremental):
        module = self._module()
        params = self._params()
        state = self._optimizer_state
        batch = self._batch(X.shape[0])
        seed = int(rng.randint(0, 2**31 - 1))
        X = np.ascontiguousarray(X, dtype=module.DTYPE)
        T = np.ascontiguousarray(T, dtype=module.DTYPE)
        with blas_threads(self.spec_, batch):
            history, n_train = self._history(module, params, state, X, T, batch, seed, rng,
                                             incremental)
        self._keep(params)
        curve = [float(v) for v in history["loss"]]
        self.loss_curve_ = self.loss_curve_ + curve
        self.loss_ = curve[-1]
        self.best_loss_ = min(self.best_loss_, min(curve)) if curve else self.best_loss_
        self.n_iter_ += int(history["epochs"])
        self.t_ += int(history["epochs"]) * n_train
        self.n_layers_ = len(self.coefs_) + 1
        self.n_outputs_ = T.shape[1]
        self.out_activation_ = self.spec_["network"]["layers"][-1]["activation"]
        if self.verbose:
            for k, v in enumerate(curve, start=self.n_iter_ - len(curve) + 1):
                print(f"Iteration {k}, loss = {v:.8f}")
        if not incremental and history["stopped_epoch"] is None:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          f"and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=4)

    def _history(self, module, params, state, X, T, batch, seed, rng, incremental):
        """Train with one compiled `fit` call as the parameters say: its history, and the
        number of samples trained on (without the held-out validation fraction)."""
        if incremental:  # partial_fit: one epoch over this data
            losses = module.fit(params, X, T, 1, batch_size=batch, seed=seed, state=state)
            history = {"loss": losses, "epochs": 1, "stopped_epoch": None}
        elif self.early_stopping:
            # stratified for more than two classes, as scikit-learn's
            multiclass = is_classifier(self) and not self._multilabel and T.shape[1] > 1
            stratify = T.argmax(axis=1) if multiclass else None
            X, Xv, T, Tv = train_test_split(X, T, test_size=self.validation_fraction,
                                            random_state=rng.randint(0, 2**31 - 1),
                                            stratify=stratify)
            history = module.fit(params, X, T, self.max_iter, batch_size=self._batch(len(X)),
                                 seed=seed, state=state, validation=(Xv, Tv),
                                 patience=self.n_iter_no_change, min_delta=self.tol)
            self.validation_scores_ = self.validation_scores_ + list(
                self._scores(history, Tv))
            self.best_validation_score_ = max(self.validation_scores_)
        elif self.n_iter_no_change >= self.max_iter:  # no stopping rule can stop it
            losses = module.fit(params, X, T, self.max_iter, batch_size=batch, seed=seed,
                                state=state)
            history = {"loss": losses, "epochs": len(losses), "stopped_epoch": None}
        else:  # stop on the training loss, evaluated after each epoch
            history = module.fit(params, X, T, self.max_iter, batch_size=batch, seed=seed,
                                 state=state, validation=(X, T), patience=self.n_iter_no_change,
                                 min_delta=self.tol, restore_best=False)
        return history, X.shape[0]

    def _outputs(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        module = self._module()
        return module.forward(self._params(), np.ascontiguousarray(X, dtype=module.DTYPE))

    def _fit(self, X, y, incremental, classes=None):
        rng = check_random_state(self.random_state)
        reset = not incremental and not (self.warm_start and hasattr(self, "coefs_"))
        first = not hasattr(self, "coefs_")
        X, y = validate_data(self, X, y, reset=reset or first, multi_output=True,
                             dtype=(np.float64, np.float32), y_numeric=not is_classifier(self))
        T = self._targets(y, incremental, classes)
        self._start(X, T, rng, reset or first)
        self._train(X, T, rng, incremental)
        return self

    def fit(self, X, y):
        """Train on (X, y) from a fresh start (or from the fitted weights with warm_start)."""
        return self._fit(X, y, incremental=False)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multilayer perceptron classifier with scikit-learn's `MLPClassifier` interface,
    trained by symnet's compiled kernels: a softmax output and cross-entropy for more than two
    classes, one sigmoid output and binary cross-entropy for two, sigmoid outputs for a
    multilabel indicator matrix. Parameters and differences: see the module's docstring."""

    def _output(self, n_outputs):
        if getattr(self, "_multilabel", False) or n_outputs == 1:
            return "sigmoid", "bce"
        return "softmax", "cross_entropy"

    def _targets(self, y, incremental, classes):
        if incremental and classes is None and not hasattr(self, "classes_"):
            raise ValueError("MLPClassifier.partial_fit: classes must be given on the first "
                             "call")
        kind = type_of_target(y)
        self._multilabel = kind == "multilabel-indicator"
        if not self._multilabel:
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            check_classification_targets(y)
        if not hasattr(self, "classes_") or not incremental:
            if incremental and classes is not None:
                labels = np.unique(classes)
            elif self._multilabel:
                labels = np.arange(y.shape[1])
            else:
                labels = np.unique(y)
            if len(labels) < 2:
                raise ValueError(f"MLPClassifier: expected samples of at least 2 classes, got "
                                 f"1 class: {labels[0]!r}")
            self.classes_ = labels
            self._binarizer = None if self._multilabel else LabelBinarizer().fit(labels)
        if self._multilabel:
            return np.asarray(y, dtype=np.float64)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(f"MLPClassifier: y has classes not seen before: {unknown!r}")
        return self._binarizer.transform(y).astype(np.float64)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), from where the last call left off (the optimizer's state
        included). `classes`: every class, on the first call."""
        return self._fit(X, y, incremental=True, classes=classes)

    def _scores(self, history, Tv):
        return [float(a) for a in history["val_accuracy"]]

    def predict_proba(self, X):
        """Class probabilities, shape (samples, classes)."""
        Y = self._outputs(X)
        if len(self.classes_) == 2 and not self._multilabel:
            return np.hstack([1.0 - Y, Y])
        return Y

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The predicted class of each sample (its most probable one)."""
        Y = self._outputs(X)
        if self._multilabel:
            return (Y >= 0.5).astype(int)
        if len(self.classes_) == 2:
            return self.classes_[(Y[:, 0] >= 0.5).astype(int)]
        return self.classes_[np.argmax(Y, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multilayer perceptron regressor with scikit-learn's `MLPRegressor` interface, trained
    by symnet's compiled kernels: linear outputs and the squared error (1/2 (y - out)^2 summed
    over the outputs, averaged over the samples, as scikit-learn's). Parameters and
    differences: see the module's docstring."""

    def _output(self, n_outputs):
        return "linear", "sse"

    def _targets(self, y, incremental, classes):
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def partial_fit(self, X, y):
        """One epoch over (X, y), from where the last call left off."""
        return self._fit(X, y, incremental=True)

    def _scores(self, history, Tv):
        """R² per epoch from the validation loss (the squared error's 1/2 mean, plus the
        penalty: exact when alpha = 0), against the variance of the validation targets."""
        total = np.sum((Tv - Tv.mean(axis=0)) ** 2) / Tv.shape[0]
        return [float(1.0 - 2.0 * v / total) if total > 0 else 0.0
                for v in history["val_loss"]]

    def predict(self, X):
        """The network's outputs: shape (samples,) for a 1-D y, else (samples, outputs)."""
        Y = self._outputs(X)
        return Y[:, 0] if self._y_1d else Y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
