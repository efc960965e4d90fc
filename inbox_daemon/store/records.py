"""Plain values the store hands in and out: no ORM objects leave the store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "WebUserRow",
    "ApiTokenRow",
    "Delivery",
    "SavedRaw",
    "PendingRow",
    "RawRow",
    "RawRecord",
    "IndexEntry",
    "Applied",
    "OptOutRow",
    "ChangeCursor",
    "SellerRow",
    "AuditEntry",
    "HeldRow",
    "EvidenceDetail",
    "MonthFigures",
    "Imported",
    "Admission",
    "Position",
    "Lease",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as it arrived, before anything is decided about it: what intake persists."""

    raw: bytes
    source: str  # "smtp", "imap:<account>", "import", "csv:<file>"
    envelope_from: str | None = None
    envelope_to: tuple[str, ...] = ()
    peer: str | None = None
    message_id: str | None = None  # kept as its keyed digest (keys.message_id_stored)
    received_at: datetime | None = None  # None: now; an import may give the original time


@dataclass(frozen=True, slots=True)
class SavedRaw:
    id: int
    sha256: str
    is_new: bool  # False: these bytes were stored before; times_received went up instead
    pending: bool = True  # not processed yet (a resend of such a message is processed)


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A message not processed yet, and who claimed it (None: nobody) since when."""

    id: int
    size: int
    claimed_by: str | None
    claimed_at: datetime | None
    claim_expired: bool = False  # older than the claim lease by the database's clock


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
    purged_at: datetime | None  # retention deleted the bytes then (docs/privacy.md)


@dataclass(frozen=True, slots=True)
class RawRecord(RawRow):
    """A kept message with its bytes; ``unreadable`` says why there are none (purged, or
    sealed under a data key this process does not hold) and ``data`` is empty then."""

    data: bytes
    unreadable: str | None = None


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
    held: str | None = None  # quarantined with this reason instead of applied


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


@dataclass(frozen=True, slots=True)
class SellerRow:
    id: int
    name: str
    token: str
    created_at: datetime
    removed_at: datetime | None
    forwarders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    opt_out_id: int | None
    raw_message_id: int | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class HeldRow:
    """A kept message that was not applied, with what the admission step knew of it."""

    id: int
    received_at: datetime
    source: str
    outcome: str
    reason: str | None
    parser_version: str | None
    forwarder: str | None
    seller: str | None
    dkim: str | None
    approved_by: str | None


@dataclass(frozen=True, slots=True)
class EvidenceDetail:
    """Which seller reported an opt-out in which message, when, and whether Amazon's DKIM
    signature verified."""

    raw_message_id: int
    seen_at: datetime
    source: str
    forwarder: str | None
    seller: str | None
    dkim: str | None  # verified | failed | absent; None: never assessed (a CSV import)
    notice_message_id: str | None


@dataclass(frozen=True, slots=True)
class MonthFigures:
    month: str  # YYYY-MM (UTC)
    notices_received: int  # messages attributed to the seller
    buyers_blocked: int  # distinct opt-outs those messages named
    amazon_blocked: int  # Amazon notices in them: seller messages Amazon did not deliver


@dataclass(frozen=True, slots=True)
class Imported:
    rows: int
    new: int
    updated: int
    skipped: tuple[str, ...]  # why each skipped line was skipped


@dataclass(frozen=True, slots=True)
class Admission:
    """What the admission step knew and decided about one message, as the store records it
    (``message_trust``). ``held`` None: apply; else the quarantine reason."""

    raw_id: int
    seller_id: int | None
    forwarder: str | None
    forwarded_via: str | None
    token: str | None
    rate_key: str  # forwarder, "+token" or "-": what the per-forwarder cap counts against
    dkim: str  # verified | failed | absent
    dkim_domain: str | None
    dkim_detail: str | None
    held: str | None
    new_opt_outs: int  # opt-outs this message adds that no active one names yet
    amazon_notices: int  # seller messages Amazon blocked, as the notice counts them
    identity: str | None = None  # every forwarding claim with its proof or "unauthenticated"


@dataclass(frozen=True, slots=True)
class Position:
    """Where an IMAP poller is in one mailbox."""

    uidvalidity: int
    last_uid: int  # every UID up to this one is stored and flagged or moved


@dataclass(frozen=True, slots=True)
class Lease:
    """One mailbox's lease as a claim left it: who holds it, under which token, until when."""

    account: str
    mailbox: str
    holder: str | None  # None: released, free to take
    token: int  # fencing: changes whenever another holder takes the mailbox
    expires_at: datetime  # by the database's clock
    last_success: datetime | None  # when the holder last drained the mailbox
    previous: str | None = None  # set when this claim took the mailbox from a holder whose lease ran out


@dataclass(frozen=True, slots=True)
class WebUserRow:
    """A web user: the stored hash travels only to the code that verifies it."""

    name: str
    role: str
    password_hash: str = field(repr=False)
    created_at: datetime | None = None
    disabled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiTokenRow:
    name: str
    created_at: datetime
    revoked_at: datetime | None
