"""symnet.torch without PyTorch: a clear error, and importing it never imports torch. These
run whether torch is installed or not (CI's lean run has none, its extras step has it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import symnet

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"name": "absent", "network": {"inputs": 2, "layers": [{"units": 1,
                                                                "activation": "linear"}]},
        "loss": {"kind": "mse"}}


def test_missing_torch_is_a_clear_import_error(monkeypatch):
    from symnet.torch import TorchUnavailableError, to_torch

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(TorchUnavailableError, match="needs PyTorch") as info:
        to_torch(SPEC, {"W1": [[1.0, 2.0]], "b1": [0.5]})
    assert isinstance(info.value, ImportError) and isinstance(info.value, symnet.SymnetError)


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_missing_torch_in_a_new_process():
    code = ("import sys; sys.modules['torch'] = None; import symnet.torch as st\n"
            "try:\n    st.torch_loss({})\nexcept ImportError as e:\n    print(type(e).__name__)")
    assert _run(code) == "TorchUnavailableError"


@pytest.mark.extra  # with torch installed it shows the import is lazy; without, trivially so
def test_import_does_not_import_torch():
    code = "import sys, symnet, symnet.torch; print('torch' in sys.modules)"
    assert _run(code) == "False"
