"""The store: one schema (``schema``), plain records in and out (``records``), and one
``Store`` whose methods are transactions over modules per concern: raw messages (``raw``),
applying and the blocklist (``applying``, ``blocklist``, ``changes``), sellers and forwarders
(``sellers``), what the admission step read and decided (``admission``), operator review
(``review``), the audit trail (``audit``), IMAP positions (``imap``) and which daemon polls
each mailbox (``leases``). Alembic migrations
make the schema (``migrate``). It persists; it decides nothing."""

from __future__ import annotations

from .admission import AdmissionView
from .records import (
    ApiTokenRow,
    WebUserRow,
    Admission,
    Applied,
    AuditEntry,
    ChangeCursor,
    Delivery,
    EvidenceDetail,
    HeldRow,
    Imported,
    IndexEntry,
    Lease,
    MonthFigures,
    OptOutRow,
    PendingRow,
    Position,
    RawRecord,
    RawRow,
    SavedRaw,
    SellerRow,
)
from .store import Admit, Store, StoreSpec

__all__ = [
    "StoreSpec",
    "ApiTokenRow",
    "WebUserRow",
    "Admission",
    "AdmissionView",
    "Admit",
    "Applied",
    "AuditEntry",
    "ChangeCursor",
    "Delivery",
    "EvidenceDetail",
    "HeldRow",
    "Imported",
    "IndexEntry",
    "Lease",
    "MonthFigures",
    "OptOutRow",
    "PendingRow",
    "Position",
    "RawRecord",
    "RawRow",
    "SavedRaw",
    "SellerRow",
    "Store",
]
