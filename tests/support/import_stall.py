"""A parser module (``[parser] module = "tests.support.import_stall"``) whose first import in a
process tree stalls until the test lets it go: a daemon held still in its start-up, before its
event loop runs, at a point the test can see.

With ``IMPORT_STALL_DIR`` set, the first import creates ``IMPORT_STALL_DIR/importing`` and
blocks in ``open(IMPORT_STALL_DIR/release)``, a FIFO, until the test writes to it; later
imports (parser worker processes) go straight on. The parser itself is the built-in one."""

from __future__ import annotations

import os
from pathlib import Path

from inbox_daemon.notices import PARSER_VERSION, parse_notice

__all__ = ["PARSER_VERSION", "parse_notice"]

_DIR = os.environ.get("IMPORT_STALL_DIR")
if _DIR:
    try:
        os.close(os.open(Path(_DIR) / "importing", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        pass
    else:
        with open(Path(_DIR) / "release", "rb") as fifo:  # blocks until the test opens it for writing
            fifo.read()
