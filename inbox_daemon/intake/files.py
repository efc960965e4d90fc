"""Back-fill from archives: mbox files, Maildir folders and loose ``.eml``
files go through the same durable write and processing as live mail, so running an import
twice adds nothing (the store dedupes by sha256).

What a path is: a directory with ``cur/`` or ``new/`` is a Maildir (with its Maildir++
``.Folder`` subfolders); any other directory is walked for Maildirs, ``.eml`` files and mbox
files; a file whose first line is an mbox ``From `` line is an mbox; any other file is one
message. mbox is read as mboxrd (the variant mutt and Thunderbird write): a message starts at a
``From `` line at the top of the file or after a blank line, and one ``>`` is taken off
``>From `` lines (RFC 4155; Python's ``mailbox`` leaves them quoted, which would make the bytes
differ from the same notice received over SMTP).

The filesystem is not trusted more than a sender (``walk``): below the paths given, only
regular files reached without following a symbolic link are opened (a Maildir whose ``new/``
is a link to ``/etc/shadow`` gives nothing), each message is capped at
``smtp.max_message_bytes`` as over SMTP (at most cap + 1 bytes of it are read), and an mbox is
read in bounded chunks, so memory does not grow with the file or a line of it.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import IO

from ..config import SmtpConfig
from ..log import get_logger
from ..processing import Flow, Processed
from ..progress import ImportProgress
from ..store import Delivery
from .walk import Found, NotTaken, walk

__all__ = ["ImportSummary", "import_paths", "iter_messages", "iter_mbox", "EXIT_OK", "EXIT_SKIPPED", "EXIT_ERRORS"]

# Messages per durable batch: one commit of their bytes (then applied MAX_BATCH at a time).
# 1,000, as the stdlib floor of bench/import.py commits: against 256, fewer fsyncs and
# hand-offs take the back-fill from 972 to 1,087 messages/s (medians, this 2-core machine).
BATCH = 1000
BATCH_BYTES = 16 * 1024 * 1024  # message bytes per durable batch (a batch holds one at least)
IN_FLIGHT = 3  # batches between read and applied: later writes overlap earlier processing
CHUNK = 64 * 1024  # the longest piece of an mbox line read at once
_QUOTED_FROM = re.compile(rb"^>+From ")

# ``inbox-daemon import`` exit statuses (README, "Import").
EXIT_OK = 0  # every message read was decided: notice, not a notice, malformed, held for review, duplicate
EXIT_SKIPPED = 1  # some input was not taken: unreadable, a symbolic link, not a regular file, over the cap
EXIT_ERRORS = 2  # some stored message could not be processed (outcome error, or left pending)


@dataclass
class ImportSummary:
    """What an import did. Outcomes count messages new to the store; a message stored before
    (this or an earlier run, or live intake) counts as a duplicate and adds nothing."""

    messages_read: int = 0
    opt_out_notices: int = 0
    buyers_added: int = 0
    duplicates: int = 0
    not_notices: int = 0
    malformed: int = 0
    held: int = 0  # held for review (quarantined): decided, not an error
    skipped: int = 0  # input not taken: unreadable, a symbolic link, not a regular file, over the cap
    errors: int = 0  # messages the processor recorded as "error", or left pending (store gone)
    problems: list[str] = field(default_factory=list)  # one line per skipped source or message

    def add(self, processed: Processed) -> None:
        if processed.duplicate:
            self.duplicates += 1
        elif processed.outcome == "opt_out":
            self.opt_out_notices += 1
        elif processed.outcome == "not_opt_out":
            self.not_notices += 1
        elif processed.outcome == "malformed":
            self.malformed += 1
        elif processed.outcome == "quarantined":
            self.held += 1
        else:  # "error", or "pending" when the store went away after the durable write
            self.errors += 1
        self.buyers_added += processed.buyers_new

    @property
    def exit_status(self) -> int:
        return EXIT_ERRORS if self.errors else EXIT_SKIPPED if self.skipped else EXIT_OK

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        """The summary as the CLI prints it."""
        labels = {f.name: f.name.replace("_", " ").replace("opt out", "opt-out") for f in fields(self)}
        del labels["problems"]
        return [f"{label}: {getattr(self, name)}" for name, label in labels.items()] + self.problems


@dataclass(frozen=True, slots=True)
class _Item:
    raw: bytes | None  # None: not taken (see ``problem``)
    consumed: int  # bytes of the archive this item used up (progress)
    problem: str | None = None


# -- readers -----------------------------------------------------------------------------------


def iter_mbox(fh: IO[bytes], cap: int | None = None) -> Iterator[tuple[bytes | None, int]]:
    """(message bytes, bytes consumed) for each message of an mboxrd stream; None instead of
    the bytes for a message over ``cap`` (its bytes past the cap are read and dropped). Lines
    are read ``CHUNK`` bytes at most at a time, so no line, however long, is held whole."""
    parts: list[bytes] = []
    size = consumed = 0
    over = in_from_line = False
    line_start = previous_blank = True  # the top of the file counts as after a blank line
    while piece := fh.readline(CHUNK):
        if line_start and previous_blank and piece.startswith(b"From "):
            if size or over:
                yield (None if over else _mbox_message(parts)), consumed
            parts, size, consumed, over, in_from_line = [], 0, 0, False, True
        elif not in_from_line:  # the rest of a From_ line longer than CHUNK is not message
            if line_start and _QUOTED_FROM.match(piece):
                piece = piece[1:]
                consumed += 1
            size += len(piece)
            if cap is not None and size > cap:  # stays over: size only grows
                over = True
                parts.clear()
            else:
                parts.append(piece)
        consumed += len(piece)
        previous_blank = line_start and piece in (b"\n", b"\r\n")
        line_start = piece.endswith(b"\n")
        in_from_line = in_from_line and not line_start
    if size or over:
        yield (None if over else _mbox_message(parts)), consumed


def _mbox_message(parts: list[bytes]) -> bytes:
    if parts and parts[-1] in (b"\n", b"\r\n"):
        parts.pop()  # the blank line the mbox writer put before the next From line
    return b"".join(parts)


def _items(found: Found, cap: int) -> Iterator[_Item]:
    """The messages of one opened file: an mbox, or one message read up to cap + 1 bytes."""
    fh = found.file
    head = fh.peek(5)[:5]
    if head == b"From ":
        for raw, consumed in iter_mbox(fh, cap):
            if raw is None:
                yield _Item(None, consumed, f"{found.path}: a message of more than {cap} bytes (smtp.max_message_bytes)")
            else:
                yield _Item(raw, consumed)
        return
    if found.only_mail and not found.path.lower().endswith(".eml"):
        return  # in a folder walk, a file that is neither .eml nor mbox is not mail
    raw = fh.read(cap + 1)
    if len(raw) > cap:
        yield _Item(None, found.size, f"{found.path}: more than {cap} bytes (smtp.max_message_bytes)")
    else:
        yield _Item(raw, len(raw))


def iter_messages(paths: Iterable[str | os.PathLike[str]], cap: int = SmtpConfig.max_message_bytes) -> Iterator[_Item]:
    """Every message under the given paths, in a stable order; a source not taken becomes an
    item with a problem rather than an exception, so one bad file does not end the import."""
    for given in paths:
        for found in walk(os.fspath(given)):
            if isinstance(found, NotTaken):
                yield _Item(None, 0, f"{found.path}: {found.why}")
                continue
            try:
                yield from _items(found, cap)
            except OSError as exc:
                yield _Item(None, 0, f"{found.path}: {exc.strerror or exc}")
            finally:
                found.file.close()


def _total_bytes(paths: Iterable[str | os.PathLike[str]]) -> int:
    total = 0
    for given in paths:
        for found in walk(os.fspath(given)):
            if isinstance(found, Found):
                total += found.size
                found.file.close()
    return total


# -- the import --------------------------------------------------------------------------------


async def import_paths(
    paths: Sequence[str | os.PathLike[str]], flow: Flow, *, progress: bool, batch: int = BATCH,
    max_message_bytes: int = SmtpConfig.max_message_bytes,
) -> ImportSummary:
    """Read every message under ``paths`` into the flow, in durable batches, and count.

    Raises StoreUnavailable if the database goes away: what was committed stays, and running
    the import again takes up the rest without duplicates.
    """
    log = get_logger(component="import")
    summary = ImportSummary()
    bar = ImportProgress(_total_bytes(paths)) if progress else None
    pending: list[Delivery] = []
    pending_bytes = 0
    # Several batches in flight: the next ones' durable writes (SQLite's fsync, off the event
    # loop) overlap with parsing and applying the one before (bench/import.py).
    in_flight: set[asyncio.Task[None]] = set()

    async def take(deliveries: list[Delivery]) -> None:
        for processed in await flow.accept_and_wait(deliveries):
            summary.add(processed)

    async def flush(limit: int) -> None:
        nonlocal pending, pending_bytes
        if pending:
            in_flight.add(asyncio.create_task(take(pending)))
            pending, pending_bytes = [], 0
        while len(in_flight) > limit:
            done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight.difference_update(done)
            for task in done:
                task.result()  # StoreUnavailable ends the import here

    try:
        for item in iter_messages(paths, max_message_bytes):
            if item.raw is None:
                summary.skipped += 1
                summary.problems.append(f"not taken: {item.problem}")
                log.warning("import_skipped", problem=item.problem)
                if bar is not None:
                    bar.advance(item.consumed, summary)
                continue
            summary.messages_read += 1
            pending.append(Delivery(item.raw, "import"))
            pending_bytes += len(item.raw)
            if len(pending) >= batch or pending_bytes >= BATCH_BYTES:
                await flush(IN_FLIGHT - 1)
            if bar is not None:
                bar.advance(item.consumed, summary)
        await flush(0)
    finally:
        for task in in_flight:
            task.cancel()
    if bar is not None:
        bar.finish()
    log.info("import_done", **{f.name: getattr(summary, f.name) for f in fields(summary) if f.name != "problems"})
    return summary

