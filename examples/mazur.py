"""The lecture's 2-2-2 backpropagation example, compiled by symnet and checked number by number.

    python examples/mazur.py          (from any directory)

Compiles examples/mazur.toml into examples/build/mazur.py (or a temporary directory when that
is not writable), then prints each number the lecture's worked example prints beside the value
the generated module computes in float64, and a few lines of the emitted backward pass.

A row is "ok" when symnet's value, rounded to the digits the lecture prints, is the lecture's
value. Two rows are marked "lecture off": the lecture's arithmetic does not give them (see
docs/worked-example.md).
"""

from __future__ import annotations

import re
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPEC = HERE / "mazur.toml"

try:
    import symnet
except ImportError:  # running from a source checkout without `pip install .`
    sys.path.insert(0, str(HERE.parent))
    import symnet

X = np.array([[0.05, 0.10]])  # i1, i2
T = np.array([[0.01, 0.99]])  # the targets of o1, o2


def out_dir() -> Path:
    build = HERE / "build"
    try:
        build.mkdir(exist_ok=True)
        probe = build / ".writable"
        probe.touch()
        probe.unlink()
        return build
    except OSError:
        return Path(tempfile.mkdtemp(prefix="symnet-mazur-"))


def hidden_layer_module(directory: Path):
    """The first layer alone, as its own network: its outputs are out_h1 and out_h2.

    The generated module's forward() returns only the network's outputs, so the hidden values
    come from a second spec, written as a dict: the same inputs, W1 and b1, one sigmoid layer.
    """
    spec = tomllib.loads(SPEC.read_text(encoding="utf-8"))
    first = spec["network"]["layers"][0]
    return symnet.compile({
        "name": "mazur_hidden",
        "network": {"inputs": spec["network"]["inputs"], "layers": [first]},
        "loss": {"kind": "sse", "reduction": "sum"},
        "init": {"W1": spec["init"]["W1"], "b1": spec["init"]["b1"]},
    }, out_dir=directory)


def decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def row(label: str, lecture: str | None, value: float, off: str = "") -> None:
    """One line of the table: the lecture's printed value, symnet's, and whether they agree."""
    if lecture is None:
        print(f"  {label:<30} {'':>14}  {value:.10f}")
        return
    agrees = round(value, decimals(lecture)) == float(lecture)
    if off:
        verdict = "lecture off: " + off
    else:
        verdict = "ok" if agrees else "DIFFERS"
    print(f"  {label:<30} {lecture:>14}  {value:.10f}  {verdict}")


def backward_excerpt(path: Path) -> list[str]:
    """The emitted backward pass of the _grad kernel: every delta, then dE/dw1 and dE/dw5."""
    text = path.read_text(encoding="utf-8")
    grad = text[text.index("def _grad("):]
    grad = grad[:grad.index("# accumulate over the batch")]
    start = re.search(r"^ *# backward, output layer", grad, re.MULTILINE).start()
    stop = grad.index("# gradients")
    lines = [line.strip() for line in grad[start:stop].splitlines() if line.strip()]
    lines += [line.strip() for line in grad[stop:].splitlines()
              if line.strip().startswith(("dE_dw1 =", "dE_dw5 ="))]
    return lines


def main() -> int:
    directory = out_dir()
    net = symnet.compile(SPEC, out_dir=directory)
    hidden = hidden_layer_module(directory)
    print(f"compiled {SPEC.name} -> {net.__file__}")
    print(f"  learning rate {net.LEARNING_RATE}, updates {', '.join(net.UPDATE)} "
          f"(the biases stay at b1 = 0.35, b2 = 0.60, as in the lecture)")
    print()
    print(f"  {'':<30} {'lecture':>14}  {'symnet (float64)':<16}")

    params = net.init_params()
    print("forward pass")
    out_h = hidden.forward(hidden.init_params(), X)[0]
    out_o = net.forward(params, X)[0]
    e_o = 0.5 * (T[0] - out_o) ** 2
    row("out_h1", "0.593269992", out_h[0])
    row("out_h2", "0.596884378", out_h[1])
    row("out_o1", "0.75136507", out_o[0])
    row("out_o2", "0.772928465", out_o[1])
    row("E_o1 = 1/2 (t1 - out_o1)^2", "0.274811083", e_o[0])
    row("E_o2 = 1/2 (t2 - out_o2)^2", "0.023560026", e_o[1])
    row("E_total", "0.298371109", net.loss(params, X, T))

    print("backward pass")
    _, g = net.grad(params, X, T)
    row("dE/dout_o1 = out_o1 - t1", "0.74136507", out_o[0] - T[0, 0])
    row("dout_o1/dnet_o1", "0.186815602", out_o[0] * (1 - out_o[0]))
    row("dE/dw5", "0.082167041", g["W2"][0, 0])
    row("dout_h1/dnet_h1", "0.241300709", out_h[0] * (1 - out_h[0]))
    row("dE/dw1", "0.000438568", g["W1"][0, 0])

    print("after one train_step (learning rate 0.5, weights only)")
    before = net.train_step(params, X, T)
    lecture_w = {"w1": "0.149780716", "w2": "0.19956143", "w3": "0.24975114",
                 "w4": "0.29950229", "w5": "0.35891648", "w6": "0.408666186",
                 "w7": "0.511301270", "w8": "0.561370121"}
    weights = np.concatenate([params["W1"].ravel(), params["W2"].ravel()])  # w1..w8, row by row
    for (name, printed), value in zip(lecture_w.items(), weights):
        row(name, printed, value)
    row("E_total before the step", "0.298371109", before)
    row("E_total after one step", "0.291027924", net.loss(params, X, T),
        off="exact arithmetic gives 0.2910277737")

    print("after 10,000 steps (one compiled fit call)")
    params = net.init_params()
    losses = net.fit(params, X, T, 10_000)  # losses[k] is the loss before step k + 1
    out_fit = net.forward(params, X)[0]
    row("E_total after 9,999 steps", "0.0000351085", losses[-1])
    row("E_total after 10,000 steps", "0.0000351085", net.loss(params, X, T),
        off="it printed the loss after 9,999")
    row("out_o1 after 10,000 steps", "0.015912196", out_fit[0], off="matches no step")
    row("out_o2 after 10,000 steps", "0.984065734", out_fit[1], off="matches no step")

    print()
    print(f"the emitted backward pass ({Path(net.__file__).name}, kernel _grad, one sample):")
    for line in backward_excerpt(Path(net.__file__)):
        print("    " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
