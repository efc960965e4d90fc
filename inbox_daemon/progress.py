"""The progress line of ``inbox-daemon import``: tqdm's bar over the bytes of the archives, with
its rate and ETA, and the messages and notices read so far. tqdm stays silent when the stream
is not a terminal (``disable=None``), so logs and pipes get no control characters."""

from __future__ import annotations

import sys
from typing import IO, Protocol

from tqdm import tqdm

__all__ = ["ImportProgress", "ListProgress"]


class _Counts(Protocol):
    messages_read: int
    opt_out_notices: int


class ImportProgress:
    """A bar over ``total_bytes``; ``advance`` after each message, ``finish`` at the end."""

    def __init__(self, total_bytes: int, stream: IO[str] | None = None) -> None:
        self._bar = tqdm(
            total=max(total_bytes, 1), unit="B", unit_scale=True, unit_divisor=1024, desc="import",
            file=stream if stream is not None else sys.stderr, disable=None, mininterval=0.1,
        )

    def advance(self, consumed: int, counts: _Counts) -> None:
        self._bar.set_postfix_str(f"{counts.messages_read} messages, {counts.opt_out_notices} notices", refresh=False)
        self._bar.update(consumed)

    def finish(self) -> None:
        self._bar.close()


class ListProgress:
    """``blocklist import``'s bar: over the bytes of the list (rows vary in length, the file's
    size is known), with the rows applied and new opt-outs so far."""

    def __init__(self, total_bytes: int, stream: IO[str] | None = None) -> None:
        self._bar = tqdm(
            total=max(total_bytes, 1), unit="B", unit_scale=True, unit_divisor=1024, desc="blocklist import",
            file=stream if stream is not None else sys.stderr, disable=None, mininterval=0.1,
        )

    def at(self, position: int, rows: int, new: int) -> None:
        """The file has been read up to ``position``; ``rows`` applied, ``new`` of them new."""
        self._bar.set_postfix_str(f"{rows} rows, {new} new", refresh=False)
        self._bar.update(max(position - self._bar.n, 0))

    def finish(self) -> None:
        self._bar.close()
