"""The smallest training steps Numba can compile for bench_first_step.py's workloads, written by
hand (numba_floor.py times them in fresh processes; nothing of symnet here).

Each is one full-batch SGD step in scalar loops over arrays the caller allocated: no array
expressions, no allocations, no slicing assignments, no np.dot (each of those costs Numba more
to compile), no optimizer state, no minibatches, no epoch loop, one thread. What symnet's
kernels do beyond this (Adam and the other optimizers, shuffled minibatches, validation, the
trace, BLAS and `_gemm` products, a team of threads) only adds to their compile; so the time to
compile these is a floor under symnet's, whatever its generator prints.

- `moons_step`: the scalar form's network, 2-4-2-1 tanh, tanh, sigmoid, binary cross-entropy
  (mean), each layer's loops written out;
- `loop_step`: the loop form's shape of kernel, one loop over the layers of any depth and
  widths, read from a table (one row per layer: units, units_in, where W, b and the layer's
  outputs start in the flat arrays, its activation: 0 linear, 1 tanh, 2 relu), and the output's
  loss as a run-time value (0: mean squared error halved, 1: softmax with cross-entropy).
"""

from __future__ import annotations

import numpy as np
from numba import njit

LINEAR, TANH, RELU = 0, 1, 2
MSE, SOFTMAX_CROSS_ENTROPY = 0, 1
ACTIVATIONS = {"linear": LINEAR, "tanh": TANH, "relu": RELU, "softmax": LINEAR}


@njit(cache=True)
def add_one(x):
    """Numba's first compile in a process pays for its own set-up: timed on this first."""
    return x + 1.0


@njit(cache=True)
def moons_step(W1, b1, W2, b2, W3, b3, G1, g1, G2, g2, G3, g3, h1, h2, d1, d2, X, T, lr):
    n = X.shape[0]
    for j in range(4):
        g1[j] = 0.0
        for i in range(2):
            G1[j, i] = 0.0
    for j in range(2):
        g2[j] = 0.0
        for i in range(4):
            G2[j, i] = 0.0
    g3[0] = 0.0
    for i in range(2):
        G3[0, i] = 0.0
    E = 0.0
    for s in range(n):
        for j in range(4):
            net = b1[j]
            for i in range(2):
                net += W1[j, i] * X[s, i]
            h1[j] = np.tanh(net)
        for j in range(2):
            net = b2[j]
            for i in range(4):
                net += W2[j, i] * h1[i]
            h2[j] = np.tanh(net)
        net = b3[0]
        for i in range(2):
            net += W3[0, i] * h2[i]
        out = 1.0 / (1.0 + np.exp(-net))
        t = T[s, 0]
        E -= t * np.log(out) + (1.0 - t) * np.log(1.0 - out)
        delta = out - t  # dE/dnet of a sigmoid output with cross-entropy
        g3[0] += delta
        for i in range(2):
            G3[0, i] += delta * h2[i]
            d2[i] = delta * W3[0, i] * (1.0 - h2[i] * h2[i])
        for j in range(2):
            g2[j] += d2[j]
            for i in range(4):
                G2[j, i] += d2[j] * h1[i]
        for i in range(4):
            back = 0.0
            for j in range(2):
                back += d2[j] * W2[j, i]
            d1[i] = back * (1.0 - h1[i] * h1[i])
        for j in range(4):
            g1[j] += d1[j]
            for i in range(2):
                G1[j, i] += d1[j] * X[s, i]
    for j in range(4):
        b1[j] -= lr * g1[j] / n
        for i in range(2):
            W1[j, i] -= lr * G1[j, i] / n
    for j in range(2):
        b2[j] -= lr * g2[j] / n
        for i in range(4):
            W2[j, i] -= lr * G2[j, i] / n
    b3[0] -= lr * g3[0] / n
    for i in range(2):
        W3[0, i] -= lr * G3[0, i] / n
    return E / n


@njit(cache=True)
def loop_step(theta, table, values, deltas, X, T, lr, loss):
    n = X.shape[0]
    depth = table.shape[0]
    inputs = X.shape[1]
    for s in range(n):
        for i in range(inputs):
            values[s * inputs + i] = X[s, i]
    for layer in range(depth):  # forward: out = f(W @ a + b)
        units, units_in, w_at, b_at, v_at, act = table[layer]
        a_at = table[layer - 1, 4] if layer > 0 else 0
        for s in range(n):
            for j in range(units):
                net = theta[b_at + j]
                for i in range(units_in):
                    net += theta[w_at + j * units_in + i] * values[a_at + s * units_in + i]
                if act == TANH:
                    net = np.tanh(net)
                elif act == RELU:
                    net = max(net, 0.0)
                values[v_at + s * units + j] = net
    units, units_in, w_at, b_at, v_at, act = table[depth - 1]
    E = 0.0
    for s in range(n):  # the output's loss and delta = dE/dnet (the mean over the batch)
        o = v_at + s * units
        if loss == MSE:
            for j in range(units):
                d = values[o + j] - T[s, j]
                E += 0.5 * d * d
                deltas[o + j] = d / n
        else:
            top = values[o]
            for j in range(1, units):
                top = max(top, values[o + j])
            total = 0.0
            for j in range(units):
                total += np.exp(values[o + j] - top)
            for j in range(units):
                p = np.exp(values[o + j] - top) / total
                E -= T[s, j] * np.log(p)
                deltas[o + j] = (p - T[s, j]) / n
    for layer in range(depth - 1, -1, -1):  # backward, and the SGD update
        units, units_in, w_at, b_at, v_at, act = table[layer]
        a_at = table[layer - 1, 4] if layer > 0 else 0
        if layer > 0:  # delta of the layer below: (delta @ W) * f'(its net)
            below = table[layer - 1, 5]
            for s in range(n):
                for i in range(units_in):
                    back = 0.0
                    for j in range(units):
                        back += deltas[v_at + s * units + j] * theta[w_at + j * units_in + i]
                    a = values[a_at + s * units_in + i]
                    if below == TANH:
                        back *= 1.0 - a * a
                    elif below == RELU and a <= 0.0:
                        back = 0.0
                    deltas[a_at + s * units_in + i] = back
        for j in range(units):
            gb = 0.0
            for s in range(n):
                gb += deltas[v_at + s * units + j]
            theta[b_at + j] -= lr * gb
            for i in range(units_in):
                gw = 0.0
                for s in range(n):
                    gw += deltas[v_at + s * units + j] * values[a_at + s * units_in + i]
                theta[w_at + j * units_in + i] -= lr * gw
    return E / n


def loop_network(widths, acts, rows, dtype, seed=0):
    """theta (W as units x units_in, then b, layer by layer), the layer table, and the values'
    and deltas' flat arrays (the inputs first) for `loop_step`."""
    rng = np.random.default_rng(seed)
    table, w_at, v_at = [], 0, rows * widths[0]
    for units_in, units, act in zip(widths[:-1], widths[1:], acts):
        table.append((units, units_in, w_at, w_at + units * units_in, v_at, ACTIVATIONS[act]))
        w_at += units * units_in + units
        v_at += rows * units
    theta = np.zeros(w_at, dtype=dtype)
    for units, units_in, wa, ba, _, _ in table:
        theta[wa:ba] = rng.standard_normal(units * units_in) / np.sqrt(units_in)
    return (theta, np.array(table, dtype=np.int64), np.zeros(v_at, dtype=dtype),
            np.zeros(v_at, dtype=dtype))


def moons_network(dtype, seed=0):
    """W1, b1, W2, b2, W3, b3, a gradient array of each's shape, and the two hidden layers'
    outputs and deltas (h1, h2, d1, d2), for `moons_step`."""
    rng = np.random.default_rng(seed)
    params = []
    for units, units_in in ((4, 2), (2, 4), (1, 2)):
        params += [(rng.standard_normal((units, units_in)) / np.sqrt(units_in)).astype(dtype),
                   np.zeros(units, dtype=dtype)]
    return (params + [np.zeros_like(p) for p in params]
            + [np.zeros(units, dtype=dtype) for units in (4, 2, 4, 2)])
