"""The generated files are code a reader studies: pyflakes finds nothing in them (no variable
assigned and never read, no unused import, no undefined name), whatever the form, target, kinds
of layers, initialization or weight decay decide about which lines a template prints."""

import subprocess
import sys
from pathlib import Path

import symnet
from symnet.spec import INIT_SCHEMES

ROOT = Path(__file__).resolve().parents[1]


def _spec(name, hidden, output="linear", loss="mse", scheme="uniform_fan_in", **loss_keys):
    layers = [{"units": 3, "activation": a} for a in hidden]
    return {
        "name": name,
        "network": {"inputs": 2, "layers": layers + [{"units": 2, "activation": output}]},
        "loss": {"kind": loss, **loss_keys},
        "training": {"optimizer": "adam", "learning_rate": 0.01},
        "init": {"scheme": scheme, "seed": 0},
    }


# (spec, mode, target): the kinds cover an f' in out only (tanh), in net only (relu, whose
# f'' is 0), in neither (linear) and in both across layers; the weight decay's second
# derivative reads no weight
CASES = [(_spec(f"init_{i}", ["tanh"], scheme=s), "scalar", "cpu")
         for i, s in enumerate(INIT_SCHEMES)] + [
    (_spec("y_only", ["tanh", "tanh"]), "loop", "cpu"),
    (_spec("z_only", ["relu"], "softmax", "cross_entropy", weight_decay=0.01), "loop", "cpu"),
    (_spec("neither", ["linear"], "sigmoid", "bce"), "loop", "cpu"),
    (_spec("both", ["elu", "sigmoid"]), "loop", "cpu"),
    (_spec("cuda_scalar", ["tanh"]), "scalar", "cuda"),
    (_spec("cuda_loop", ["relu", "tanh"], weight_decay=0.01), "loop", "cuda"),
    (_spec("cuda_loop_xavier", ["tanh"], scheme="xavier_normal"), "loop", "cuda"),
    (ROOT / "examples" / "poisson2d.toml", None, "cpu"),  # a residual (PINN) module
]
# the schedules: the scalar form's recompute, the loop form's checkpoints (tables of the module)
CASES = [(spec, mode, target, "store") for spec, mode, target in CASES] + [
    (_spec("recompute", ["tanh"], "sigmoid", "bce"), "scalar", "cpu", "recompute"),
    (_spec("checkpoint", ["tanh"] * 4), "loop", "cpu", "checkpoint:2"),
]


def test_pyflakes_finds_nothing_in_the_generated_files(tmp_path):
    for spec, mode, target, strategy in CASES:
        compiled = symnet.build(spec, strategy=strategy, mode=mode, target=target,
                                kernel_dir=tmp_path)
        files = [(compiled.module_name, compiled.source), *compiled.kernels]
        for name, text in files:
            (tmp_path / f"{name}.py").write_text(text, "utf-8")
    written = sorted(p.name for p in tmp_path.glob("*.py"))
    assert any(n.startswith("symnet_kernels_") for n in written)
    assert any(n.startswith("symnet_gemm_") for n in written)
    assert any(n.endswith("_cuda.py") for n in written)
    found = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--select", "F,E9",
         "--output-format", "concise", str(tmp_path)],
        capture_output=True, text=True)
    assert found.returncode == 0, found.stdout + found.stderr
