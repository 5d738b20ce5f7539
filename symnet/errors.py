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
        super().__init__(one_line(f"{where}: expected {expected}{shown}"))


def one_line(text: str) -> str:
    """`text` with every control character (newline, tab, escape, ...) shown as an escape,
    so that a message built from untrusted names is one line of plain text."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _show(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long for str() (sys.get_int_max_str_digits())
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= 60 else text[:57] + "..."
