"""The lecture's worked example traced step by step (seed 001's exercise: "intermediate
results of weight updates and loss could be printed/visualized").

    python examples/backprop_trace.py [--out docs/images] [--build examples/build]

Compiles examples/mazur.toml, trains it for 10,000 steps in one compiled call with
fit(..., trace=True), prints the weights and the loss of the first steps and of every
1,000th, and writes backprop_trace.png: the loss, the eight weights, the two outputs against
their targets, and each layer's gradient norm, step by step. Seconds, once compiled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
try:
    import symnet
except ImportError:  # a source checkout without `pip install .`
    sys.path.insert(0, str(HERE.parent))
    import symnet

from toy_data import example_parser, save_figure  # noqa: E402

SPEC = HERE / "mazur.toml"
X = np.array([[0.05, 0.10]])
T = np.array([[0.01, 0.99]])


def run(build: Path, steps: int = 10_000):
    """The trace of `steps` SGD steps and the outputs before each step."""
    net = symnet.compile(SPEC, build)
    params = net.init_params()
    trace = net.fit(params, X, T, steps, trace=True)
    outputs = np.array([net.forward({k: trace[k][s] for k in params}, X)[0]
                        for s in range(steps)])
    return net, params, trace, outputs


def weights(trace: dict, step: int) -> np.ndarray:
    """w1..w8 (row by row through W1 and W2) before `step`."""
    return np.concatenate([trace["W1"][step].ravel(), trace["W2"][step].ravel()])


def table(net, params, trace, outputs, log=print) -> None:
    steps = len(trace["loss"])
    log(f"{'step':>6} {'E_total':>13} " + " ".join(f"{f'w{j}':>10}" for j in range(1, 9))
        + f" {'out_o1':>10} {'out_o2':>10}")
    shown = [s for s in (0, 1, 2, 3) if s < steps]
    shown += [s for s in range(1000, steps, 1000)]
    for s in shown:
        log(f"{s:>6} {trace['loss'][s]:13.10f} "
            + " ".join(f"{w:10.6f}" for w in weights(trace, s))
            + f" {outputs[s, 0]:10.6f} {outputs[s, 1]:10.6f}")
    final = np.concatenate([params["W1"].ravel(), params["W2"].ravel()])
    after = net.forward(params, X)[0]
    log(f"{steps:>6} {net.loss(params, X, T):13.10f} " + " ".join(f"{w:10.6f}" for w in final)
        + f" {after[0]:10.6f} {after[1]:10.6f}")
    log("(row s: the weights before step s + 1, the loss and the outputs they give)")


def plot(trace, outputs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(len(trace["loss"]))
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    ax[0, 0].loglog(steps + 1, trace["loss"])
    ax[0, 0].set(xlabel="step", ylabel="E_total", title="the loss before each step")
    w = np.column_stack([trace["W1"].reshape(len(steps), -1),
                         trace["W2"].reshape(len(steps), -1)])
    for j in range(8):
        ax[0, 1].semilogx(steps + 1, w[:, j], label=f"w{j + 1}")
    ax[0, 1].set(xlabel="step", ylabel="weight", title="w1..w8 (b1, b2 are not trained)")
    ax[0, 1].legend(fontsize=8, ncol=2)
    for k, target in enumerate(T[0]):
        line, = ax[1, 0].semilogx(steps + 1, outputs[:, k], label=f"out_o{k + 1}")
        ax[1, 0].axhline(target, ls="--", color=line.get_color(), lw=0.8)
    ax[1, 0].set(xlabel="step", ylabel="output", title="outputs and their targets (dashed)")
    ax[1, 0].legend(fontsize=8)
    for layer in range(trace["grad_norm"].shape[1]):
        ax[1, 1].loglog(steps + 1, trace["grad_norm"][:, layer], label=f"||dE/dW{layer + 1}||")
    ax[1, 1].set(xlabel="step", ylabel="gradient norm", title="gradient norm per layer")
    ax[1, 1].legend(fontsize=8)
    fig.suptitle("the lecture's 2-2-2 example, 10,000 SGD steps (learning rate 0.5)")
    save_figure(fig, path)


def main(argv=None) -> int:
    p = example_parser(__doc__, "backprop_trace.png")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    net, params, trace, outputs = run(args.build)
    table(net, params, trace, outputs)
    plot(trace, outputs, args.out / "backprop_trace.png")
    print(f"wrote {args.out / 'backprop_trace.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
