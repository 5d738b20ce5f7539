"""Writing the generated files: atomically, and only when their text changed (a
content-identical rewrite would throw away Numba's on-disk cache)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder() -> Path:
    """symnet's cache folder: $SYMNET_CACHE_DIR, else $XDG_CACHE_HOME/symnet, else
    ~/.cache/symnet (where modules compiled without an out_dir go, and the machine's
    measurements of codegen/cpu/gemm.py when there is no shared kernel folder)."""
    env = os.environ.get("SYMNET_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symnet"


def write_if_changed(path: Path, text: str) -> bool:
    """Write text to path atomically (temporary file, then rename); False if unchanged."""
    import tempfile  # here: `import symnet` need not pay for it (a few ms)

    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return True
