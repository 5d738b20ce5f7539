"""Render a template of symnet.templates, and the hash of the generator's own source (its
files are written by symnet.files)."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import TemplateContext


@lru_cache(maxsize=1)
def _env():
    """The templates' Jinja2 environment, made at the first render: a process that reuses a
    generated module asks this file for the generator's hash only and never imports Jinja2."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("symnet.templates", ""),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


# The packages whose source decides the generated text: the pipeline, the backends, the templates.
_GENERATOR_PACKAGES = ("symnet", "symnet.codegen", "symnet.templates")


@lru_cache(maxsize=1)
def generator_sha256() -> str:
    """SHA-256 of the generator's own source: every .py and .jinja file of symnet,
    symnet.codegen and symnet.templates (in a checkout: symnet/, codegen/ and templates/), by
    package, relative path and content. Installed, symnet.codegen and symnet.templates are
    folders inside symnet's: each file is counted once, under its own package, so that a
    checkout, an editable install and a wheel of the same source give the same hash. A
    generated module records it (`GENERATOR_SHA256`), so that a module written by another
    build of symnet, even one with the same version number, is never reused (see
    symnet.compiler.compile)."""
    import importlib.util

    roots = {package: Path(importlib.util.find_spec(package).origin).parent
             for package in _GENERATOR_PACKAGES}
    digest = hashlib.sha256()
    for package, root in roots.items():
        inner = [r for r in roots.values() if r != root and r.is_relative_to(root)]
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".jinja")):
            if "__pycache__" in path.parts or any(path.is_relative_to(r) for r in inner):
                continue
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def render(template: str, context: TemplateContext) -> str:
    """The template's text for a typed context (codegen/context.py): its fields are the names
    the template reads."""
    return _env().get_template(template).render(context.variables())


def use_bytecode_cache(directory: str | os.PathLike) -> None:
    """Keep the templates' compiled Python code in `directory` (Jinja2's
    FileSystemBytecodeCache, keyed by each template's name and source), so that a new process
    renders without compiling the templates again: about 0.1 s of a sweep's next point. The
    folder is symnet's own (beside the kernel files that the modules import and run)."""
    import jinja2

    directory = Path(directory)
    env = _env()
    current = env.bytecode_cache
    if isinstance(current, jinja2.FileSystemBytecodeCache) and current.directory == str(directory):
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only place: render without the cache
        return
    env.bytecode_cache = jinja2.FileSystemBytecodeCache(str(directory))
