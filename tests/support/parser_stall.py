"""A parser that stalls the daemon's event loop on purpose, for the watchdog test
(``[parser] module = "tests.support.parser_stall"`` with ``workers = 0``: parsed in a thread
of the daemon, so it can reach the daemon's loop).

A message with a header ``X-Test-Stall: DIR`` makes it run, on the event loop itself, a call
that creates ``DIR/stalled`` and then blocks in ``open(DIR/release)``, a FIFO, until the test
writes to it; any other message goes to the built-in parser. (Parsing never blocks the loop by
itself: the daemon parses in a worker process or a thread.)
"""

from __future__ import annotations

import asyncio
import gc
import re
import threading
from pathlib import Path

from inbox_daemon.notices import PARSER_VERSION, ParseResult
from inbox_daemon.notices import parse_notice as builtin_parse

__all__ = ["PARSER_VERSION", "parse_notice"]

_STALL = re.compile(rb"^X-Test-Stall: (\S+)", re.M)


def _stall(where: Path, done: threading.Event) -> None:
    (where / "stalled").touch()
    with open(where / "release", "rb") as fifo:  # blocks the loop until the test opens it for writing
        fifo.read()
    done.set()


def parse_notice(raw: bytes) -> ParseResult:
    found = _STALL.search(raw)
    if found is not None:
        where = Path(found.group(1).decode())
        loop = next(o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running())
        done = threading.Event()
        loop.call_soon_threadsafe(_stall, where, done)
        done.wait()
    return builtin_parse(raw)
