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
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO

from ..log import get_logger
from ..processing import Flow, Processed
from ..progress import ImportProgress
from ..store import Delivery

__all__ = ["ImportSummary", "import_paths", "iter_messages", "iter_mbox", "iter_maildir"]

BATCH = 256  # messages per durable batch (one commit, one apply transaction)
IN_FLIGHT = 3  # batches between read and applied: later writes overlap earlier processing
_QUOTED_FROM = re.compile(rb"^>+From ")


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
    errors: int = 0  # unreadable files, and messages the processor recorded as "error"
    problems: list[str] = field(default_factory=list)  # one line per unreadable path

    def add(self, processed: Processed) -> None:
        if processed.duplicate:
            self.duplicates += 1
        elif processed.outcome == "opt_out":
            self.opt_out_notices += 1
        elif processed.outcome == "not_opt_out":
            self.not_notices += 1
        elif processed.outcome == "malformed":
            self.malformed += 1
        else:  # "error", or "pending" when the store went away after the durable write
            self.errors += 1
        self.buyers_added += processed.buyers_new

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        """The summary as the CLI prints it."""
        labels = {f.name: f.name.replace("_", " ").replace("opt out", "opt-out") for f in fields(self)}
        del labels["problems"]
        return [f"{label}: {getattr(self, name)}" for name, label in labels.items()] + self.problems


@dataclass(frozen=True, slots=True)
class _Item:
    raw: bytes | None  # None: this source could not be read (see ``problem``)
    consumed: int  # bytes of the archive this item used up (progress)
    problem: str | None = None


# -- readers -----------------------------------------------------------------------------------


def iter_mbox(fh: IO[bytes]) -> Iterator[tuple[bytes, int]]:
    """(message bytes, bytes consumed) for each message of an mboxrd stream."""
    lines: list[bytes] = []
    consumed = 0
    previous_blank = True  # the top of the file counts as after a blank line
    for line in fh:
        if line.startswith(b"From ") and previous_blank:
            if lines:
                yield _mbox_message(lines), consumed
            lines, consumed = [], 0
        else:
            lines.append(line[1:] if _QUOTED_FROM.match(line) else line)
        consumed += len(line)
        previous_blank = line in (b"\n", b"\r\n")
    if lines:
        yield _mbox_message(lines), consumed


def _mbox_message(lines: list[bytes]) -> bytes:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines.pop()  # the blank line the mbox writer put before the next From line
    return b"".join(lines)


def iter_maildir(path: Path) -> Iterator[Path]:
    """The message files of one Maildir (``new`` then ``cur``; ``tmp`` is unfinished)."""
    for sub in ("new", "cur"):
        folder = path / sub
        if folder.is_dir():
            yield from sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def _is_mbox(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == b"From "
    except OSError:
        return False  # read as one message, which reports the error


def _files(path: Path) -> Iterator[tuple[Path, str]]:
    """(file, "mbox" | "message") for everything a path stands for."""
    if path.is_dir():
        if _is_maildir(path):
            yield from ((p, "message") for p in iter_maildir(path))
            for child in sorted(path.iterdir()):  # Maildir++ folders: .Archive, .Archive.2019
                if child.name.startswith(".") and child.is_dir() and _is_maildir(child):
                    yield from ((p, "message") for p in iter_maildir(child))
            return
        for child in sorted(path.iterdir()):
            if child.is_symlink() and child.is_dir():
                continue  # a link back up the tree would never end
            if child.is_dir() or child.suffix.lower() == ".eml" or _is_mbox(child):
                yield from _files(child)
        return
    yield path, "mbox" if _is_mbox(path) else "message"


def iter_messages(paths: Iterable[str | os.PathLike[str]]) -> Iterator[_Item]:
    """Every message under the given paths, in a stable order; unreadable sources become an
    item with a problem rather than an exception, so one bad file does not end the import."""
    for given in paths:
        path = Path(given)
        try:
            for file, kind in _files(path):
                try:
                    if kind == "mbox":
                        with open(file, "rb") as fh:
                            for raw, consumed in iter_mbox(fh):
                                yield _Item(raw, consumed)
                    else:
                        raw = file.read_bytes()
                        yield _Item(raw, len(raw))
                except OSError as exc:
                    yield _Item(None, 0, f"{file}: {exc.strerror or exc}")
        except OSError as exc:
            yield _Item(None, 0, f"{path}: {exc.strerror or exc}")


def _total_bytes(paths: Iterable[str | os.PathLike[str]]) -> int:
    total = 0
    for given in paths:
        try:
            total += sum(f.stat().st_size for f, _ in _files(Path(given)))
        except OSError:
            pass  # reported when read
    return total


# -- the import --------------------------------------------------------------------------------


async def import_paths(
    paths: Sequence[str | os.PathLike[str]], flow: Flow, *, progress: bool, batch: int = BATCH,
) -> ImportSummary:
    """Read every message under ``paths`` into the flow, in durable batches, and count.

    Raises StoreUnavailable if the database goes away: what was committed stays, and running
    the import again takes up the rest without duplicates.
    """
    log = get_logger(component="import")
    summary = ImportSummary()
    bar = ImportProgress(_total_bytes(paths)) if progress else None
    pending: list[Delivery] = []
    # Several batches in flight: the next ones' durable writes (SQLite's fsync, off the event
    # loop) overlap with parsing and applying the one before (bench/import.py).
    in_flight: set[asyncio.Task[None]] = set()

    async def take(deliveries: list[Delivery]) -> None:
        for processed in await flow.accept_and_wait(deliveries):
            summary.add(processed)

    async def flush(limit: int) -> None:
        nonlocal pending
        if pending:
            in_flight.add(asyncio.create_task(take(pending)))
            pending = []
        while len(in_flight) > limit:
            done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight.difference_update(done)
            for task in done:
                task.result()  # StoreUnavailable ends the import here

    try:
        for item in iter_messages(paths):
            if item.raw is None:
                summary.errors += 1
                summary.problems.append(f"unreadable: {item.problem}")
                log.warning("import_unreadable", problem=item.problem)
                continue
            summary.messages_read += 1
            pending.append(Delivery(item.raw, "import"))
            if len(pending) >= batch:
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

