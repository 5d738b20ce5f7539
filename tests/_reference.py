"""An independent NumPy implementation of the spec's semantics, for checking symnet.

Written from the spec's documented semantics only (docs/spec.md), not from symnet's code.
"""

from __future__ import annotations

import numpy as np
from scipy import special

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805  # Klambauer et al. 2017

ACTS = {
    "sigmoid": lambda z, a: 1.0 / (1.0 + np.exp(-z)),
    "tanh": lambda z, a: np.tanh(z),
    "relu": lambda z, a: np.maximum(z, 0.0),
    "leaky_relu": lambda z, a: np.where(z > 0, z, a * z),
    "linear": lambda z, a: z,
    "step": lambda z, a: np.where(z >= 0, 1.0, 0.0),
    "sign": lambda z, a: np.sign(z),
    "hard_sigmoid": lambda z, a: np.clip(z + 0.5, 0.0, 1.0),
    "elu": lambda z, a: np.where(z > 0, z, a * np.expm1(np.minimum(z, 0.0))),
    "selu": lambda z, a: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0))),
    "softplus": lambda z, a: np.logaddexp(0.0, z),
    "silu": lambda z, a: z * special.expit(z),
    "swish": lambda z, a: z * special.expit(z),
    "gelu": lambda z, a: 0.5 * z * (1.0 + special.erf(z / np.sqrt(2.0))),
    "gelu_tanh": lambda z, a: 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi)
                                                       * (z + 0.044715 * z ** 3))),
    "softsign": lambda z, a: z / (1.0 + np.abs(z)),
    "softmax": lambda z, a: special.softmax(z, axis=1),
}
DEFAULT_PARAM = {"leaky_relu": 0.01, "elu": 1.0}

# custom formulas, by their text: tests register a NumPy version of each formula they use
CUSTOM_ACTS: dict = {}  # text -> f(z)
CUSTOM_LOSSES: dict = {}  # text -> f(y, t), per unit


def _act(layer):
    act = layer["activation"]
    if isinstance(act, str):
        return act, DEFAULT_PARAM.get(act, 0.0)
    if "expr" in act:
        return "custom:" + act["expr"].strip(), 0.0
    return act["name"], act.get("alpha", DEFAULT_PARAM.get(act["name"], 0.0))


def _apply(name, z, alpha):
    if name.startswith("custom:"):
        return CUSTOM_ACTS[name[len("custom:"):]](z)
    return ACTS[name](z, alpha)


def _layers(spec: dict, params: dict, X: np.ndarray):
    """Per layer, first layer first: (its net inputs z, its outputs f(z))."""
    a = np.asarray(X, dtype=np.float64)
    for ln, layer in enumerate(spec["network"]["layers"], start=1):
        z = a @ params[f"W{ln}"].T
        if layer.get("bias", "per_unit") != "none":
            z = z + params[f"b{ln}"]
        name, alpha = _act(layer)
        a = _apply(name, z, alpha)
        yield z, a


def forward_with_net(spec: dict, params: dict, X: np.ndarray):
    """(outputs, the output layer's net inputs)."""
    z, a = list(_layers(spec, params, X))[-1]
    return a, z


def forward(spec: dict, params: dict, X: np.ndarray) -> np.ndarray:
    return forward_with_net(spec, params, X)[0]


def layer_nets(spec: dict, params: dict, X: np.ndarray) -> list[np.ndarray]:
    """Every layer's net inputs z, first layer first."""
    return [z for z, _ in _layers(spec, params, X)]


# Where an activation's definition switches piece (docs/spec.md, activations): its derivative
# jumps there (step and sign: the value too). Custom formulas with such points (max, min, abs of
# a slope) are registered by the tests that use them, by their text, like CUSTOM_ACTS.
KINKS = {"relu": (0.0,), "leaky_relu": (0.0,), "elu": (0.0,), "selu": (0.0,), "step": (0.0,),
         "sign": (0.0,), "hard_sigmoid": (-0.5, 0.5)}
CUSTOM_KINKS: dict = {}  # text -> tuple of x


def pieces(spec: dict, params: dict, X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Which side of each kink every net input lies on (-1, 0 on it, 1), and for `mae` which
    side of its target every output lies on: the loss is one smooth piece along any move of
    the parameters that changes none of these."""
    sides = []
    nets = layer_nets(spec, params, X)
    for layer, z in zip(spec["network"]["layers"], nets):
        name, _ = _act(layer)
        kinks = CUSTOM_KINKS.get(name[len("custom:"):], ()) if name.startswith("custom:") \
            else KINKS.get(name, ())
        sides += [np.sign(z - k).ravel() for k in kinks]
    if spec["loss"]["kind"] == "mae":
        name, alpha = _act(spec["network"]["layers"][-1])
        sides.append(np.sign(_apply(name, nets[-1], alpha) - T).ravel())
    return np.concatenate(sides) if sides else np.zeros(0)


def finite_difference_grad_where_smooth(spec, params, X, T, h=1e-6):
    """(central differences of `loss`, and per entry whether they are valid): an entry is
    valid where moving it by +-h leaves every net input on the same side of every kink, and
    mae's outputs on the same side of their targets (a net sitting on a kink that the entry
    does not move is fine: the entry's derivative does not go through it), so that the loss is
    one smooth piece along the whole difference."""
    grads, smooth = {}, {}
    base = pieces(spec, params, X, T)
    for name, value in params.items():
        g = np.zeros_like(value, dtype=np.float64)
        ok = np.ones(value.shape, dtype=bool)
        flat = value.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + h
            up, up_sides = loss(spec, params, X, T), pieces(spec, params, X, T)
            flat[k] = old - h
            down, down_sides = loss(spec, params, X, T), pieces(spec, params, X, T)
            flat[k] = old
            g.reshape(-1)[k] = (up - down) / (2 * h)
            moved = (up_sides != base) | (down_sides != base)
            ok.reshape(-1)[k] = not np.any(moved)
        grads[name] = g
        smooth[name] = ok
    return grads, smooth


def _log_output(spec, Y, Z):
    """log y, from the net where the output layer allows it (the same number, more exactly)."""
    last, _ = _act(spec["network"]["layers"][-1])
    if last == "softmax":
        return special.log_softmax(Z, axis=1)
    if last == "sigmoid":
        return -np.logaddexp(0.0, -Z)
    return np.log(Y)


def loss(spec: dict, params: dict, X: np.ndarray, T: np.ndarray) -> float:
    Y, Z = forward_with_net(spec, params, X)
    kind = spec["loss"]["kind"]
    if kind == "sse":
        per = 0.5 * np.sum((T - Y) ** 2, axis=1)
    elif kind == "mse":
        per = np.mean((T - Y) ** 2, axis=1)
    elif kind == "mae":
        per = np.mean(np.abs(T - Y), axis=1)
    elif kind == "bce":
        if _act(spec["network"]["layers"][-1])[0] == "sigmoid":  # log y, log(1 - y) exactly
            per = np.sum(T * np.logaddexp(0.0, -Z) + (1 - T) * np.logaddexp(0.0, Z), axis=1)
        else:
            per = -np.sum(T * np.log(Y) + (1 - T) * np.log(1 - Y), axis=1)
    elif kind in ("cross_entropy", "nll"):
        per = -np.sum(T * _log_output(spec, Y, Z), axis=1)
    elif kind == "custom":
        per = np.sum(CUSTOM_LOSSES[spec["loss"]["expr"].strip()](Y, T), axis=1)
    else:
        raise ValueError(kind)
    total = per.sum()
    if spec["loss"].get("reduction", "mean") == "mean":
        total /= X.shape[0]
    decay = spec["loss"].get("weight_decay", 0.0)
    if decay:  # once per batch, whatever the reduction; weights only, not biases
        total += decay * sum(np.sum(v ** 2) for k, v in params.items() if k.startswith("W"))
    return float(total)


def finite_difference_grad(spec, params, X, T, h=1e-6, entries=None):
    """Central differences of `loss`, for every entry of every parameter, or for the flat
    indices `entries[name]` only (the others nan)."""
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value, dtype=np.float64)
        flat = value.reshape(-1)
        if entries is not None:
            g[...] = np.nan
        for k in range(flat.size) if entries is None else entries[name]:
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


def kinds_covered(specs) -> dict[str, set]:
    """Which activations, losses, bias kinds, reductions and depths a set of specs uses."""
    seen: dict[str, set] = {"act": set(), "loss": set(), "bias": set(), "red": set(),
                            "depth": set()}
    for spec in specs:
        for layer in spec["network"]["layers"]:
            act = layer["activation"]
            seen["act"].add(act if isinstance(act, str) else act.get("name", "custom"))
            seen["bias"].add(layer.get("bias", "per_unit"))
        seen["loss"].add(spec["loss"]["kind"])
        seen["red"].add(spec["loss"].get("reduction", "mean"))
        seen["depth"].add(len(spec["network"]["layers"]))
    return seen
