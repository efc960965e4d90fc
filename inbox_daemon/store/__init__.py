"""The store: SQLAlchemy tables, the ``Store`` repository the daemon and CLI call, and the
Alembic migrations that make the schema (``inbox_daemon.store.migrate``)."""

from __future__ import annotations

from .records import (
    Applied,
    ChangeCursor,
    EvidenceRow,
    IndexEntry,
    OptOutRow,
    RawIn,
    RawRecord,
    RawRow,
    SavedRaw,
)
from .repository import Store

__all__ = [
    "Applied",
    "ChangeCursor",
    "EvidenceRow",
    "IndexEntry",
    "OptOutRow",
    "RawIn",
    "RawRecord",
    "RawRow",
    "SavedRaw",
    "Store",
]
