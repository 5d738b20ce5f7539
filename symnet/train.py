"""`symnet train`: run a spec end to end on a data file, with a progress bar and a trace.

The data file is a NumPy `.npz` holding `X` (samples, inputs) and `T` (samples, outputs).
Training is the compiled module's own `fit(..., trace=True)`, called in chunks of epochs so
that a progress bar (tqdm, when installed) can move between them; the optimizer's state and
the learning-rate decay carry across the chunks, so the result is that of one long fit
(minibatches are shuffled with the seed plus the chunk's first epoch).

The trace (per epoch: the loss, every parameter at the start of the epoch and the norm of
each layer's weight gradient) can be saved as `.npz` and plotted (matplotlib, optional).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .errors import SymnetError

# how many chunks a run is cut into for the progress bar (each chunk is one compiled fit call)
PROGRESS_CHUNKS = 50


def load_data(path: str | os.PathLike, n_inputs: int, n_outputs: int):
    """X and T from an .npz file, checked against the network's inputs and outputs. A T of
    shape (samples,) is taken as (samples, 1) for a one-output network."""
    path = Path(path)
    expected = f"arrays X (samples, {n_inputs}) and T (samples, {n_outputs})"
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("X", "T") if k not in data.files]
            if missing:
                raise SymnetError(f"{path}: missing {', '.join(missing)} (expected {expected})")
            X, T = np.array(data["X"]), np.array(data["T"])
    except SymnetError:
        raise
    except (OSError, ValueError) as exc:
        raise SymnetError(f"{path}: expected an .npz file with {expected} ({exc})") from None
    if T.ndim == 1 and n_outputs == 1:
        T = T[:, None]
    for key, a, n in (("X", X, n_inputs), ("T", T, n_outputs)):
        if a.ndim != 2 or a.shape[1] != n or a.shape[0] == 0:
            raise SymnetError(f"{path}: {key}: expected shape (samples, {n}), got {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise SymnetError(f"{path}: {key}: expected real numbers, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise SymnetError(f"{path}: {key}: expected finite numbers")
    if X.shape[0] != T.shape[0]:
        raise SymnetError(f"{path}: expected as many samples in T as in X, got {X.shape[0]} "
                          f"and {T.shape[0]}")
    return X.astype(float), T.astype(float)


def _chunks(epochs: int, decay: tuple) -> list[int]:
    """Epochs per fit call: about PROGRESS_CHUNKS calls, each a multiple of a step decay's
    period so that every call starts at the beginning of a period."""
    size = max(1, math.ceil(epochs / PROGRESS_CHUNKS))
    if decay and decay[0] == "step":
        every = int(decay[1])
        size = max(every, size // every * every)
    sizes, done = [], 0
    while done < epochs:
        sizes.append(min(size, epochs - done))
        done += sizes[-1]
    return sizes


def _chunk_lr(lr: float, decay: tuple, start: int) -> float:
    """The learning rate a fit call starting at epoch `start` must be given so that its own
    decay (counted from 0) continues the run's schedule."""
    if not decay:
        return lr
    if decay[0] == "step":
        return lr * float(decay[2]) ** (start // int(decay[1]))
    return lr * float(decay[1]) ** start


def progress_bar(total: int, enabled: bool, unit: str = "epoch"):
    """A tqdm bar on stderr, or None (tqdm not installed, or not wanted)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, leave=True)


def train(module, params, X, T, epochs: int, *, lr=None, batch_size=None, seed: int = 0,
          state=None, spec=None, progress: bool = True) -> dict:
    """Train in place with the module's fit(trace=True), in chunks; returns the whole trace.
    `spec` (for its learning-rate decay) defaults to none: pass it when the spec decays."""
    decay = spec.training.decay if spec is not None else ()
    lr = module.LEARNING_RATE if lr is None else lr
    state = module.init_state() if state is None else state
    parts, start = [], 0
    # compile first (zero epochs change nothing), so that the bar times only the training
    module.fit(params, X, T, 0, batch_size=batch_size, state=state, trace=True)
    bar = progress_bar(epochs, progress)
    try:
        for size in _chunks(epochs, decay):
            tr = module.fit(params, X, T, size, lr=_chunk_lr(lr, decay, start),
                            batch_size=batch_size, seed=(seed + start) % 2**32, state=state,
                            trace=True)
            parts.append(tr)
            start += size
            if bar is not None:
                bar.update(size)
                bar.set_postfix(loss=f"{tr['loss'][-1]:.4g}")
    finally:
        if bar is not None:
            bar.close()
    if not parts:
        return module.fit(params, X, T, 0, trace=True)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def save_trace(trace: dict, path) -> None:
    np.savez(path, **trace)


def require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymnetError("--plot: needs matplotlib (pip install 'symnet[plot]')") from None
    return plt


def plot_trace(trace: dict, path, title: str = "", max_weights: int = 24) -> None:
    """Three panels: the loss per epoch (log scale), the trajectories of the first
    `max_weights` weights, and each layer's gradient norm (log scale)."""
    plt = require_matplotlib()
    loss = np.asarray(trace["loss"])
    epochs = np.arange(len(loss))
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    ax[0].plot(epochs, loss)
    if np.all(loss > 0):
        ax[0].set_yscale("log")
    ax[0].set(xlabel="epoch", ylabel="loss", title="loss (before each epoch's steps)")
    shown = 0
    for name in (k for k in trace if k.startswith("W")):
        w = np.asarray(trace[name]).reshape(len(loss), -1)
        for j in range(w.shape[1]):
            if shown == max_weights:
                break
            where = list(np.unravel_index(j, trace[name].shape[1:]))
            ax[1].plot(epochs, w[:, j], lw=1, label=f"{name}{where}")
            shown += 1
    ax[1].set(xlabel="epoch", ylabel="value", title=f"weights (first {shown})")
    if shown <= 12:
        ax[1].legend(fontsize=7)
    g = np.asarray(trace["grad_norm"])
    for layer in range(g.shape[1]):
        ax[2].plot(epochs, g[:, layer], label=f"layer {layer + 1}")
    if np.all(g > 0):
        ax[2].set_yscale("log")
    ax[2].set(xlabel="epoch", ylabel="||dE/dW||", title="gradient norm per layer")
    ax[2].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def accuracy(module, params, X, T, loss_kind: str) -> float | None:
    """The fraction classified right, for the classification losses (else None): argmax for
    several outputs, a threshold of 0.5 for one."""
    if loss_kind not in ("bce", "cross_entropy", "nll"):
        return None
    Y = module.forward(params, X)
    if Y.shape[1] == 1:
        return float(np.mean((Y[:, 0] > 0.5) == (T[:, 0] > 0.5)))
    return float(np.mean(np.argmax(Y, axis=1) == np.argmax(T, axis=1)))
