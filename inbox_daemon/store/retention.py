"""Retention: the raw bytes of a message are deleted ``retain_days`` after it was received,
or ``retain_days_held`` for one still held for review (quarantined, or an error an operator
has yet to look at); a message not processed yet is never touched (nothing acknowledged is
lost). The row stays with empty bytes, stamped ``purged_at``; opt-outs, evidence links,
counts, first-seen dates, seller figures and the change feed are not touched, so every
lookup answers as before (docs/privacy.md).

A batch is one short transaction: one UPDATE sets the bytes, the key id and ``purged_at``
together, so a purge killed at any point leaves each row either whole or purged. Functions
take an open session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .schema import RawMessage

__all__ = ["Retention", "PURGED_AFTER", "HELD", "due_counts", "purge_batch"]

PURGED_AFTER = ("opt_out", "not_opt_out", "malformed", "discarded")  # decided: retain_days
HELD = ("quarantined", "error")  # waiting for an operator: retain_days_held
# "pending" is in neither: a message not processed yet keeps its bytes until it is.


@dataclass(frozen=True, slots=True)
class Retention:
    """How long raw bytes are kept, and the moment the ages are measured from."""

    now: datetime
    keep: timedelta
    keep_held: timedelta

    def due(self) -> ColumnElement[bool]:
        """Rows whose bytes are due for deletion; ``keep_held >= keep`` (config checks it),
        so the first term lets the (purged_at, received_at) index bound the scan."""
        return and_(
            RawMessage.purged_at.is_(None),
            RawMessage.received_at < self.now - self.keep,
            or_(
                RawMessage.outcome.in_(PURGED_AFTER),
                and_(RawMessage.outcome.in_(HELD), RawMessage.received_at < self.now - self.keep_held),
            ),
        )


async def due_counts(session: AsyncSession, rule: Retention) -> dict[str, int]:
    """What a purge would delete, per outcome (``privacy purge --dry-run``)."""
    statement = select(RawMessage.outcome, func.count()).where(rule.due()).group_by(RawMessage.outcome)
    return {str(o): int(n) for o, n in await session.execute(statement)}


async def purge_batch(session: AsyncSession, rule: Retention, limit: int) -> int:
    """Delete the bytes of at most ``limit`` due messages, oldest first; how many."""
    chosen = select(RawMessage.id).where(rule.due()).order_by(RawMessage.received_at).limit(limit)
    ids = [int(i) for i in await session.scalars(chosen.with_for_update(skip_locked=True))]
    if not ids:
        return 0
    # By id alone: the rows are locked since the SELECT (FOR UPDATE on PostgreSQL, which checks
    # the condition again on the row it locks; SQLite's write transaction holds the database),
    # and repeating the condition here makes SQLite walk the whole due range of the index.
    statement = update(RawMessage).where(RawMessage.id.in_(ids)).values(data=b"", key_id=None, purged_at=rule.now)
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]
