"""Render the module's template and write it atomically, only when its text changed
(a content-identical rewrite would throw away Numba's on-disk cache)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("templates", ""),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(template: str, context: dict) -> str:
    return _ENV.get_template(template).render(**context)


def write_if_changed(path: Path, text: str) -> bool:
    """Write text to path atomically (temporary file, then rename); False if unchanged."""
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
