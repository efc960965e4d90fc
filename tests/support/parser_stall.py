"""A parser that stalls the daemon's event loop on purpose, for the watchdog test
(``[parser] module = "tests.support.parser_stall"`` with ``workers = 0``, so it runs on the loop).

A message with a header ``X-Test-Stall: DIR`` makes it create ``DIR/stalled`` and then block in
``open(DIR/release)``, a FIFO, until the test writes to it; any other message goes to the
built-in parser.
"""

from __future__ import annotations

import re
from pathlib import Path

from inbox_daemon.notices import PARSER_VERSION, ParseResult
from inbox_daemon.notices import parse_notice as builtin_parse

__all__ = ["PARSER_VERSION", "parse_notice"]

_STALL = re.compile(rb"^X-Test-Stall: (\S+)", re.M)


def parse_notice(raw: bytes) -> ParseResult:
    found = _STALL.search(raw)
    if found is not None:
        where = Path(found.group(1).decode())
        (where / "stalled").touch()
        with open(where / "release", "rb") as fifo:  # blocks until the test opens it for writing
            fifo.read()
    return builtin_parse(raw)
