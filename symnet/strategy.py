"""The strategies a spec's `[codegen] strategy` or `--strategy` may name, parsed.

The spec stage validates the text here, without the planner that turns a strategy into a
schedule for one network (symnet.checkpoint, which also draws the trade-off plot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STRATEGY_FORMS = ('"store", "recompute", "checkpoint:K" (K >= 1), "checkpoint:sqrt", '
                  '"budget:N" (N >= 0 slots) or "budget:SIZE" (like "64KB"; B, KB, MB or GB, '
                  "powers of 1024)")
UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}
MAX_NUMBER = 10 ** 12

_FORM = re.compile(r"(?:(checkpoint):(sqrt|[0-9]{1,13})|(budget):([0-9]{1,13})(B|KB|MB|GB)?)")


@dataclass(frozen=True)
class Strategy:
    kind: str  # "store", "recompute", "checkpoint" or "budget"
    every: int = 0  # checkpoint:K; 0 for checkpoint:sqrt
    slots: int | None = None  # budget:N
    nbytes: int | None = None  # budget:SIZE, in bytes
    text: str = "store"

    @property
    def layerwise(self) -> bool:
        """Only the loop form has it (the scalar form has store and recompute)."""
        return self.kind in ("checkpoint", "budget")


def parse_strategy(text: object) -> Strategy:
    """The strategy a spec or the command line names; ValueError (with what was expected)
    for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"a string: {STRATEGY_FORMS}")
    if text in ("store", "recompute"):
        return Strategy(text, text=text)
    m = _FORM.fullmatch(text)
    if m is None:
        raise ValueError(STRATEGY_FORMS)
    if m.group(1):
        if m.group(2) == "sqrt":
            return Strategy("checkpoint", 0, text=text)
        k = int(m.group(2))
        if not 1 <= k <= MAX_NUMBER:
            raise ValueError(f'"checkpoint:K" with 1 <= K <= {MAX_NUMBER}')
        return Strategy("checkpoint", k, text=text)
    number = int(m.group(4))
    if number > MAX_NUMBER:
        raise ValueError(f'"budget:N" with N <= {MAX_NUMBER}')
    if m.group(5) is None:
        return Strategy("budget", slots=number, text=text)
    if number == 0:
        raise ValueError('"budget:SIZE" with a positive size')
    return Strategy("budget", nbytes=number * UNITS[m.group(5)], text=text)


def is_strategy(text: object) -> bool:
    try:
        parse_strategy(text)
    except ValueError:
        return False
    return True
