"""An independent NumPy implementation of the spec's semantics, for checking symnet.

Written from the spec's documented semantics only (docs/spec.md), not from symnet's code.
"""

from __future__ import annotations

import numpy as np

ACTS = {
    "sigmoid": lambda z, a: 1.0 / (1.0 + np.exp(-z)),
    "tanh": lambda z, a: np.tanh(z),
    "relu": lambda z, a: np.maximum(z, 0.0),
    "leaky_relu": lambda z, a: np.where(z > 0, z, a * z),
    "linear": lambda z, a: z,
}


def _act(layer):
    act = layer["activation"]
    if isinstance(act, str):
        return act, 0.01
    return act["name"], act.get("alpha", 0.01)


def forward(spec: dict, params: dict, X: np.ndarray) -> np.ndarray:
    a = np.asarray(X, dtype=np.float64)
    for ln, layer in enumerate(spec["network"]["layers"], start=1):
        z = a @ params[f"W{ln}"].T
        if layer.get("bias", "per_unit") != "none":
            z = z + params[f"b{ln}"]
        name, alpha = _act(layer)
        a = ACTS[name](z, alpha)
    return a


def loss(spec: dict, params: dict, X: np.ndarray, T: np.ndarray) -> float:
    Y = forward(spec, params, X)
    kind = spec["loss"]["kind"]
    if kind == "sse":
        per = 0.5 * np.sum((T - Y) ** 2, axis=1)
    elif kind == "mse":
        per = np.mean((T - Y) ** 2, axis=1)
    elif kind == "bce":
        per = -np.sum(T * np.log(Y) + (1 - T) * np.log(1 - Y), axis=1)
    else:
        raise ValueError(kind)
    total = per.sum()
    if spec["loss"].get("reduction", "mean") == "mean":
        total /= X.shape[0]
    return float(total)


def finite_difference_grad(spec, params, X, T, h=1e-6):
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value, dtype=np.float64)
        flat = value.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + h
            up = loss(spec, params, X, T)
            flat[k] = old - h
            down = loss(spec, params, X, T)
            flat[k] = old
            g.reshape(-1)[k] = (up - down) / (2 * h)
        grads[name] = g
    return grads


def random_spec(rng: np.random.Generator, index: int) -> dict:
    """A small random spec; `index` cycles through every activation, loss, bias and reduction
    so that a run of a few dozen covers all of them."""
    acts = ["sigmoid", "tanh", "relu", "leaky_relu", "linear"]
    losses = ["sse", "mse", "bce"]
    biases = ["per_unit", "shared", "none"]
    reductions = ["mean", "sum"]
    depth = 1 + index % 3
    layers = []
    for d in range(depth):
        act = acts[(index + d) % len(acts)]
        activation = {"name": act, "alpha": float(rng.uniform(0.05, 0.3))} \
            if act == "leaky_relu" else act
        layers.append({"units": int(rng.integers(1, 6)), "activation": activation,
                       "bias": biases[(index + d) % 3]})
    loss_kind = losses[index % 3]
    if loss_kind == "bce":
        layers[-1]["activation"] = "sigmoid"
    return {
        "name": f"rand{index}",
        "network": {"inputs": int(rng.integers(1, 6)), "layers": layers},
        "loss": {"kind": loss_kind, "reduction": reductions[(index // 3) % 2]},
        "training": {"learning_rate": 0.1},
    }


def random_params(rng, shapes):
    return {k: rng.normal(0.0, 0.7, s).astype(np.float64) for k, s in shapes.items()}


def random_data(rng, spec, batch=4):
    n_in = spec["network"]["inputs"]
    n_out = spec["network"]["layers"][-1]["units"]
    X = rng.normal(0.0, 1.0, (batch, n_in))
    if spec["loss"]["kind"] == "bce":
        T = rng.uniform(0.0, 1.0, (batch, n_out))
    else:
        T = rng.normal(0.0, 1.0, (batch, n_out))
    return X, T
