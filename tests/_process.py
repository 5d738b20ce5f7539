"""A generated module in a new Python process, as a user's next session meets it: imported from
its file alone (numpy and numba, no symnet), its functions compiled before loaded from Numba's
cache."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# a module that only Numba's lowering registries import (numba.core.cpu's
# load_additional_registries): in sys.modules once the registries are loaded
REGISTRIES = "numba.np.polynomial.polynomial_core"


def run_module(module, body: str) -> list[str]:
    """Import `module`'s file as `m` in a new process, run `body` (which prints), then print
    whether Numba's lowering registries were loaded; the words printed."""
    code = textwrap.dedent(f"""\
        import importlib.util
        import sys

        import numpy as np

        where = importlib.util.spec_from_file_location({module.__name__!r}, {module.__file__!r})
        m = importlib.util.module_from_spec(where)
        sys.modules[where.name] = m
        where.loader.exec_module(m)
        """) + textwrap.dedent(body) + f"print({REGISTRIES!r} in sys.modules)\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()
