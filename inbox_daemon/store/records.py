"""Plain values the store hands in and out: no ORM objects leave the store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "RawIn",
    "SavedRaw",
    "RawRow",
    "RawRecord",
    "IndexEntry",
    "Applied",
    "OptOutRow",
    "EvidenceRow",
    "ChangeCursor",
]


@dataclass(frozen=True, slots=True)
class RawIn:
    """One message to persist, as intake received it."""

    raw: bytes
    source: str  # "smtp", "imap:<account>", "import"
    envelope_from: str | None = None
    envelope_to: Sequence[str] = ()
    peer: str | None = None
    message_id: str | None = None
    received_at: datetime | None = None  # None: now; an import may give the original time


@dataclass(frozen=True, slots=True)
class SavedRaw:
    id: int
    sha256: str
    is_new: bool  # False: these bytes were stored before; times_received went up instead


@dataclass(frozen=True, slots=True)
class RawRow:
    """A kept message without its bytes (listings)."""

    id: int
    sha256: str
    size: int
    source: str
    envelope_from: str | None
    envelope_to: tuple[str, ...]
    peer: str | None
    message_id: str | None
    received_at: datetime
    times_received: int
    outcome: str
    reason: str | None
    parser_version: str | None
    processed_at: datetime | None
    forwarder: str | None


@dataclass(frozen=True, slots=True)
class RawRecord(RawRow):
    """A kept message with its bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """The index state of one key. ``count == 0`` and ``first_seen is None``: not blocked."""

    kind: Literal["email", "order"]
    value: str
    first_seen: datetime | None
    count: int

    @property
    def blocked(self) -> bool:
        return self.count > 0


@dataclass(frozen=True, slots=True)
class Applied:
    buyers_new: int
    buyers_updated: int
    entries: list[IndexEntry]  # index state of every key of every opt-out the result named
    held: str | None = None  # quarantined with this reason instead of applied (issue 5)


@dataclass(frozen=True, slots=True)
class OptOutRow:
    id: int
    order_id: str | None
    email: str | None
    marketplace: str | None
    first_seen: datetime
    last_seen: datetime
    notice_count: int
    active: bool
    removed_at: datetime | None
    removed_by: str | None
    removed_reason: str | None


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    id: int
    opt_out_id: int
    raw_message_id: int
    sha256: str  # of the raw message, to find it with ``messages show``
    source: str
    forwarder: str | None
    notice_message_id: str | None
    seen_at: datetime


GAP_PATIENCE_S = 60.0
GAP_WINDOW = 10_000  # a seq uncommitted while this many later ones committed is not waited for


@dataclass
class ChangeCursor:
    """How far a follower has read ``blocklist_changes``.

    On PostgreSQL a sequence value is taken at insert but visible only at commit, so seq 12
    can be read before 11 commits. The cursor keeps the highest seq seen and the missing ones
    below it (``gaps``, each with when it was first missed) and asks for those again until
    they arrive or are older than ``GAP_PATIENCE_S`` (a rolled-back insert never arrives).
    ``more`` is true when the last read hit its limit: read again without waiting.
    """

    seq: int = 0
    gaps: dict[int, float] = field(default_factory=dict)
    more: bool = False

    def advance(self, seen: Sequence[int], *, now: float | None = None) -> None:
        """Record the seqs just read (any order) and forget gaps past their patience."""
        clock = time.monotonic() if now is None else now
        for seq in sorted(seen):
            self.gaps.pop(seq, None)
            if seq > self.seq:
                for missing in range(max(self.seq + 1, seq - GAP_WINDOW), seq):
                    self.gaps[missing] = clock
                self.seq = seq
        for seq, since in list(self.gaps.items()):
            if clock - since > GAP_PATIENCE_S:
                del self.gaps[seq]
