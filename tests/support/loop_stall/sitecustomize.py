"""Stalls a daemon's event loop on demand, for the watchdog test (tests/test_systemd.py).

Put this directory on PYTHONPATH and set STALL_DIR: the process then answers SIGUSR1 by creating
``STALL_DIR/stalled`` and blocking in ``open(STALL_DIR/release)``, a FIFO, until the test writes
to it. Python runs signal handlers in the main thread, the one the event loop runs in, so the
loop stands still meanwhile, as it would behind any blocking call.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType

_DIR = os.environ.get("STALL_DIR")


def _stall(_signum: int, _frame: FrameType | None) -> None:
    assert _DIR is not None
    (Path(_DIR) / "stalled").touch()
    with open(Path(_DIR) / "release", "rb") as fifo:  # blocks until the test opens it for writing
        fifo.read()


if _DIR:
    signal.signal(signal.SIGUSR1, _stall)
