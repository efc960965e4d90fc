"""The literal text every match of a pattern holds: a substring test on it rules a text out
before the regex engine runs (a phrase or an attribution tried at every position costs far more
than ``str.__contains__``)."""

from __future__ import annotations

import importlib
import re
from typing import Any

__all__ = ["required_literal"]


def required_literal(pattern: str) -> str:
    """The longest run of plain characters every match of ``pattern`` contains, read from its
    top level ("" if none, or if the pattern ignores case: its literals then match other text)."""
    parser: Any = importlib.import_module("re._parser")  # the stdlib's own regex parser
    parsed = parser.parse(pattern)
    if parsed.state.flags & re.IGNORECASE:
        return ""
    literal = parser.LITERAL
    best, run = "", ""
    for op, arg in parsed:
        if op is literal:
            run += chr(arg)
            continue
        best, run = max(best, run, key=len), ""
    return max(best, run, key=len)
