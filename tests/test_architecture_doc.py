"""docs/architecture.md, the living description of the layout, names only files and modules
that exist: every checkout path under symnet/, codegen/, templates/, tests/, benchmarks/,
docs/ or examples/, and every `symnet.codegen.<module>` (with, where it names one, a name that
the module defines)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
# the wheel's layout, which the doc names as such (codegen/ and templates/ inside symnet/)
INSTALLED = {"symnet/codegen/", "symnet/templates/"}
PATH = re.compile(r"(?<![\w./])((?:symnet|codegen|templates|tests|benchmarks|docs|examples)"
                  r"/[\w./-]*[\w/])")
MODULE = re.compile(r"\bsymnet\.codegen(?:\.\w+)+")


def _module_file(parts: list[str]) -> tuple[Path, list[str]]:
    """The longest prefix of `parts` that is a module of codegen/ (its file), and the rest."""
    for k in range(len(parts), 0, -1):
        base = ROOT / "codegen" / Path(*parts[:k])
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), parts[k:]
        if (base / "__init__.py").is_file():
            return base / "__init__.py", parts[k:]
    return ROOT / "codegen" / "__init__.py", parts


def test_every_path_exists():
    text = DOC.read_text("utf-8")
    named = {m for m in PATH.findall(text) if m not in INSTALLED}
    assert named, "no path found: the pattern is wrong"
    assert sorted(m for m in named if not (ROOT / m).exists()) == []


def test_every_codegen_module_exists():
    text = DOC.read_text("utf-8")
    missing = []
    for name in sorted(set(MODULE.findall(text))):
        path, rest = _module_file(name.split(".")[2:])
        source = path.read_text("utf-8")
        if len(rest) > 1 or (rest and not re.search(
                rf"^(?:def|class) {rest[0]}\b|^{rest[0]} =|^from \S+ import .*\b{rest[0]}\b"
                rf"|^    {rest[0]},$", source, re.M)):
            missing.append(name)
    assert missing == []


def test_the_codegen_tree_exists():
    """The Layout section's drawing of codegen/: each entry (two spaces a level) is there."""
    text = DOC.read_text("utf-8")
    block = re.search(r"```\n(codegen/\n.*?)```", text, re.S)
    assert block, "the Layout section draws codegen/"
    stack: list[str] = []
    named = []
    for line in block.group(1).splitlines():
        m = re.match(r"( *)([\w.]+/?)(?:\s|$)", line)
        if not m or (len(m.group(1)) % 2) or len(m.group(1)) // 2 > len(stack):
            continue  # a description's continuation line
        stack[len(m.group(1)) // 2:] = [m.group(2)]
        named.append("".join(stack))
    assert [p for p in named if not (ROOT / p).exists()] == []
    # and it is complete: every module but the package's empty __init__.py
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "codegen").rglob("*.py")}
    assert sorted(files - set(named) - {"codegen/__init__.py"}) == []
