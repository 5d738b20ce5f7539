"""symnet's own error types: every failure a user can cause is one of these."""

from __future__ import annotations


class SymnetError(Exception):
    """Base class for errors symnet reports to the user as one line."""


class SpecError(SymnetError):
    """A spec that cannot be compiled: names the file, the key and what was expected."""

    def __init__(self, file: str, key: str, expected: str, got: object = None, *, has_got=None):
        self.file = file
        self.key = key
        self.expected = expected
        self.got = got
        shown = f", got {_show(got)}" if (got is not None if has_got is None else has_got) else ""
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: expected {expected}{shown}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
