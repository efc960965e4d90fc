"""Plain values the trust part of the store hands out (issue 5): no ORM objects leave it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["SellerRow", "AuditEntry", "HeldRow", "EvidenceDetail", "MonthFigures", "Imported"]


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
    dkim: str | None  # verified | failed | absent; None: before issue 5, or an import
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
