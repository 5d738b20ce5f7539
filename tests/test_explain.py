"""`symnet explain`: the lecture's worked example, number by number, from generated code.

References are independent of symnet: the lecture's printed numbers (seed 001's 2-2-2
example, seed 002's matrix-form forward pass), a NumPy implementation with finite
differences (tests/_reference.py), and identities (softmax + cross-entropy: delta = y - t).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _reference as ref
import numpy as np
import pytest
import sympy as sp

import symnet
from symnet.compiler import build
from symnet.errors import SymnetError
from symnet.explain import (
    EXPLAIN_MAX_PARAMS,
    explain,
    explanation_steps,
    format_number,
    lecture_program,
)

ROOT = Path(__file__).resolve().parent.parent
MAZUR = ROOT / "examples" / "mazur.toml"
X = [0.05, 0.10]
T = [0.01, 0.99]


@pytest.fixture(scope="module")
def mazur(tmp_path_factory):
    return explain(MAZUR, X, T, out_dir=tmp_path_factory.mktemp("explain"))


def test_forward_and_errors_are_the_lecture_s(mazur):
    v = mazur.values
    assert v["net_h1"] == pytest.approx(0.3775, abs=1e-12)  # 0.15*0.05 + 0.2*0.1 + 0.35
    assert v["out_h1"] == pytest.approx(0.593269992, abs=5e-10)
    assert v["out_h2"] == pytest.approx(0.596884378, abs=5e-10)
    assert v["out_o1"] == pytest.approx(0.75136507, abs=5e-9)
    assert v["out_o2"] == pytest.approx(0.772928465, abs=5e-10)
    assert v["E_o1"] == pytest.approx(0.274811083, abs=5e-10)
    assert v["E_o2"] == pytest.approx(0.023560026, abs=5e-10)
    assert v["E_total"] == pytest.approx(0.298371109, abs=5e-10)


def test_the_chain_for_w5_as_the_lecture_writes_it(mazur):
    line = ("dE/dw5 = dE/dout_o1 * dout_o1/dnet_o1 * dnet_o1/dw5 "
            "= 0.74136507 * 0.186815602 * 0.593269992 = 0.082167041")
    assert line in mazur.text().splitlines()
    v = mazur.values
    assert v["dE/dout_o1"] == pytest.approx(0.74136507, abs=5e-9)
    assert v["dout_o1/dnet_o1"] == pytest.approx(0.186815602, abs=5e-10)
    assert v["dnet_o1/dw5"] == pytest.approx(0.593269992, abs=5e-10)
    assert v["dE/dnet_o1"] == pytest.approx(0.138498562, abs=5e-10)


def test_hidden_layer_sums_over_the_output_units(mazur):
    v = mazur.values
    # dE/dout_h1 = dE_o1/dout_h1 + dE_o2/dout_h1 = 0.055399425 + -0.019049119 (the lecture
    # rounds its intermediates: exact arithmetic gives -0.0190491183)
    assert v["dnet_o1/dout_h1"] == 0.40 and v["dnet_o2/dout_h1"] == 0.50  # w5, w7
    assert v["dE/dnet_o1 * dnet_o1/dout_h1"] == pytest.approx(0.055399425, abs=5e-10)
    assert v["dE/dnet_o2 * dnet_o2/dout_h1"] == pytest.approx(-0.019049119, abs=2e-9)
    assert v["dE/dout_h1"] == pytest.approx(0.036350306, abs=5e-10)
    assert v["dout_h1/dnet_h1"] == pytest.approx(0.241300709, abs=5e-10)
    assert v["dE/dw1"] == pytest.approx(0.000438568, abs=5e-10)
    assert ("dE/dw1 = dE/dout_h1 * dout_h1/dnet_h1 * dnet_h1/dw1 "
            "= 0.036350306 * 0.241300709 * 0.05 = 0.000438568") in mazur.text()


def test_updated_weights_are_the_lecture_s(mazur):
    lecture = {"w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
               "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121}
    for name, value in lecture.items():
        assert mazur.updated[name] == pytest.approx(value, abs=5e-9), name
    assert mazur.updated["b1"] == 0.35 and mazur.updated["b2"] == 0.60  # not updated
    assert "w5+ = w5 - eta * dE/dw5 = 0.4 - 0.5 * 0.082167041 = 0.35891648" in mazur.text()
    assert "b1+ = b1 = 0.35  (not updated)" in mazur.text()
    assert mazur.loss_after == pytest.approx(0.2910277737, abs=5e-11)  # see test_lecture.py


def test_every_chain_multiplies_out_to_its_gradient(mazur):
    # the factors and the gradient are separate values of the kernel: their agreement checks
    # the chain rule as printed, every weight and bias
    v = mazur.values
    for w, (unit, src) in {"w1": ("h1", "i1"), "w4": ("h2", "i2"), "w6": ("o1", "out_h2"),
                           "w7": ("o2", "out_h1")}.items():
        chain = v[f"dE/dout_{unit}"] * v[f"dout_{unit}/dnet_{unit}"] * v[f"dnet_{unit}/d{w}"]
        assert v[f"dnet_{unit}/d{w}"] == v[src]
        assert chain == pytest.approx(v[f"dE/d{w}"], rel=1e-12)
    # a shared bias sums over the units of its layer
    assert v["dE/db2"] == pytest.approx(v["dE/dnet_o1"] + v["dE/dnet_o2"], rel=1e-12)


def test_latex(mazur):
    tex = mazur.latex()
    assert r"\frac{\partial E_{total}}{\partial w_{5}} &= \frac{\partial E_{total}}" \
           r"{\partial out_{o1}} \cdot \frac{\partial out_{o1}}{\partial net_{o1}} \cdot " \
           r"\frac{\partial net_{o1}}{\partial w_{5}} = 0.74136507 \times 0.186815602 " \
           r"\times 0.593269992 = 0.082167041" in tex
    assert tex.count(r"\begin{align*}") == tex.count(r"\end{align*}") >= 5
    assert "w_{5}^{+} &= w_{5} - \\eta" in tex


def test_three_inputs_matrix_form_example(tmp_path):
    # seed 002: x = (3, 0, 1), z(2) = (1.3, 1.5), a(2) = (0.7858, 0.8176), z(3) = (0.8389,
    # 0.7056), a(3) = (0.6982, 0.6694); their layer 2 is our layer 1
    e = explain(ROOT / "examples" / "forward_3_2_2.toml", [3, 0, 1], [1, 0], out_dir=tmp_path)
    v = e.values
    assert [v["net_h1"], v["net_h2"]] == pytest.approx([1.3, 1.5], abs=1e-12)
    assert [v["out_h1"], v["out_h2"]] == pytest.approx([0.7858, 0.8176], abs=5e-5)
    assert [v["net_o1"], v["net_o2"]] == pytest.approx([0.8389, 0.7056], abs=5e-5)
    assert [v["out_o1"], v["out_o2"]] == pytest.approx([0.6982, 0.6694], abs=5e-5)
    assert "net_h1 = w1 * i1 + w2 * i2 + w3 * i3 + b1_1 = 0.1 * 3 + 0.2 * 0 + 0.6 * 1 + 0.4 = " \
           "1.3" in e.text()


SOFTMAX_NET = {
    "name": "explain_softmax",
    "network": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"},
                                        {"units": 2, "activation": "leaky_relu"},
                                        {"units": 3, "activation": "softmax"}]},
    "loss": {"kind": "cross_entropy", "reduction": "mean"},
    "training": {"optimizer": "sgd", "learning_rate": 0.1},
    "init": {"scheme": "xavier_uniform", "seed": 3},
}


def test_deeper_softmax_net_against_finite_differences(tmp_path):
    x, target = [0.3, -0.7], [0.0, 0.0, 1.0]
    e = explain(SOFTMAX_NET, x, target, out_dir=tmp_path)
    v = e.values
    m = symnet.compile(SOFTMAX_NET, tmp_path)
    params = m.init_params()
    # softmax + cross-entropy: dE/dnet_k = y_k - t_k
    for k in (1, 2, 3):
        assert v[f"dE/dnet_o{k}"] == pytest.approx(v[f"out_o{k}"] - target[k - 1], abs=1e-12)
    fd = ref.finite_difference_grad(SOFTMAX_NET, {k: a.copy() for k, a in params.items()},
                                    np.array([x]), np.array([target]))
    # the lecture's numbering: w1, w2, ... row by row through W1, W2, W3; biases b<l>_<j>
    names, count = {}, 0
    for layer in (1, 2, 3):
        rows, cols = params[f"W{layer}"].shape
        for r in range(rows):
            for c in range(cols):
                count += 1
                names[f"w{count}"] = (f"W{layer}", (r, c))
            names[f"b{layer}_{r + 1}"] = (f"b{layer}", (r,))
    assert len(names) == sum(a.size for a in params.values())
    assert all(abs(fd[a][i]) > 1e-4 for a, i in names.values())
    for name, (array, idx) in names.items():
        assert v[f"dE/d{name}"] == pytest.approx(fd[array][idx], abs=1e-7), name
        # the updated weights: plain SGD from the same gradient
        assert e.updated[name] == pytest.approx(params[array][idx] - 0.1 * fd[array][idx],
                                                abs=1e-8), name
    # the hidden layers' sums: as many terms as units fed
    line = next(s for s in e.text().splitlines() if s.startswith("dE/dout_h1_1 = "))
    assert line.split(" = ")[1] == ("dE/dnet_h2_1 * dnet_h2_1/dout_h1_1 + "
                                    "dE/dnet_h2_2 * dnet_h2_2/dout_h1_1")


def test_too_big_and_bad_input_are_refused(tmp_path):
    layers = [{"units": 8, "activation": "tanh"}, {"units": 4, "activation": "linear"}]
    big = {"name": "big", "network": {"inputs": 4, "layers": layers}, "loss": {"kind": "mse"}}
    with pytest.raises(SymnetError, match=f"at most {EXPLAIN_MAX_PARAMS} parameters"):
        explain(big, [0] * 4, [0] * 4, out_dir=tmp_path)
    with pytest.raises(SymnetError, match="input: expected 2 numbers"):
        explain(MAZUR, [0.05], T, out_dir=tmp_path)
    with pytest.raises(SymnetError, match="target: expected 2 numbers"):
        explain(MAZUR, X, [1, 2, 3], out_dir=tmp_path)
    one = [{"units": 1, "activation": "linear"}]
    decay = {"name": "decay", "network": {"inputs": 2, "layers": one},
             "loss": {"kind": "mse", "weight_decay": 0.1}}
    with pytest.raises(SymnetError, match="weight_decay"):
        explain(decay, X, [1], out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # refused before writing anything


def test_cli_explain_and_its_errors(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "symnet", "explain", *map(str, args)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)

    ok = run(MAZUR, "--input", *X, "--target", *T, "-o", tmp_path, "--latex")
    assert ok.returncode == 0, ok.stderr
    assert r"= 0.74136507 \times 0.186815602 \times 0.593269992 = 0.082167041" in ok.stdout
    bad = run(MAZUR, "--input", 1, 2, 3, "--target", *T, "-o", tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "symnet: error: input: expected 2 numbers (the network has 2 " \
                                 "inputs), got 3"


def test_float32_module(tmp_path):
    # the explain kernel computes in float64 (from the float32 parameters, 0.15 is not exactly
    # 0.15); the float32 module's own values agree with it to float32's precision
    e = explain(symnet.compiler.as_spec(MAZUR).replace_codegen(dtype="float32"), X, T,
                out_dir=tmp_path)
    assert e.values["dE/dw5"] == pytest.approx(0.082167041, abs=1e-8)
    assert e.updated["w5"] == pytest.approx(0.35891648, abs=1e-6)


def test_format_number():
    assert format_number(0.7413650700000001) == "0.74136507"
    assert format_number(0.35) == "0.35"
    assert format_number(-0.0) == "0"
    assert format_number(3.51019e-12) == "3.510190e-12"


@pytest.mark.parametrize("spec, hidden", [(MAZUR, "out_h1"), (SOFTMAX_NET, "out_h2_1")],
                         ids=["mazur", "softmax"])
def test_explain_formats_the_record_and_differentiates_nothing(spec, hidden, monkeypatch):
    compiled = build(spec, mode="scalar", strategy="store")
    lecture = lecture_program(compiled.spec, compiled.program)  # a fused loss: unfused
    assert any(e.value == lecture.loss and e.arg.name == "out_o1" for e in lecture.edges)

    def no_diff(*args, **kwargs):
        raise AssertionError("explain differentiated")

    monkeypatch.setattr(sp, "diff", no_diff)
    monkeypatch.setattr(sp.Expr, "diff", no_diff)
    q, _ = explanation_steps(compiled.program, compiled.spec, lecture)
    local = {(e.value.name, e.arg.name): e.local for e in lecture.edges}
    assert q.items[f"dnet_o1/d{hidden}"][1] == local[("net_o1", hidden)]
