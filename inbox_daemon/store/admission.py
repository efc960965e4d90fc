"""What the admission step reads and what it decided, inside the applying transaction.

The store decides nothing: ``AdmissionView`` hands the decision (``inbox_daemon.processing``,
which asks ``inbox_daemon.trust``) the registry, the rate counters, the keys already blocked
and the operators' approvals as this transaction sees them, and ``record`` writes back what was
decided. Reading and writing in one transaction means two batches cannot both slip under a
cap they share.

Functions take an open session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import fields
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from . import bulk, sellers
from .engine import chunks
from .records import Admission
from .schema import MessageTrust, OptOut, table

__all__ = ["AdmissionView", "record", "RATE_WINDOW"]

RATE_WINDOW = timedelta(hours=1)


class AdmissionView:
    """Read-only questions the admission decision asks, answered in the open transaction."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self.now = now

    async def registry(self) -> tuple[dict[str, int], dict[str, int]]:
        """(token -> seller id, forwarder address -> seller id) of the live sellers."""
        return await sellers.registry(self._session)

    async def recent_new(self, keys: Collection[str], skip: Collection[int]) -> dict[str, int]:
        """New opt-outs per rate key in the last ``RATE_WINDOW``, messages ``skip`` left out.

        Summed in the database: a busy forwarder has thousands of rows in the window.
        """
        counts: dict[str, int] = dict.fromkeys(keys, 0)
        for chunk in chunks(keys):
            statement = (
                select(MessageTrust.rate_key, func.sum(MessageTrust.new_opt_outs))
                .where(MessageTrust.rate_key.in_(chunk), MessageTrust.decided_at >= self.now - RATE_WINDOW)
                .where(MessageTrust.raw_message_id.not_in(list(skip)))
                .group_by(MessageTrust.rate_key)
            )
            for key, total in await self._session.execute(statement):
                counts[key] = int(total or 0)
        return counts

    async def active_keys(self, orders: Collection[str], emails: Collection[str]) -> set[str]:
        """Those of the order ids and (normalised) relay addresses that name an active opt-out."""
        known: set[str] = set()
        for column, values in ((OptOut.order_id, orders), (OptOut.email, emails)):
            for chunk in chunks(values):
                found = await self._session.scalars(select(column).where(column.in_(chunk), OptOut.active))
                known.update(v for v in found if v)
        return known

    async def approved(self, raw_ids: Collection[int]) -> set[int]:
        """The messages an operator approved (``quarantine approve``): later passes admit them."""
        found = await bulk.select_matching(self._session, _APPROVAL_COLUMNS, _TABLE.c.raw_message_id, raw_ids)
        return {r.raw_message_id for r in found if r.approved_by is not None}


async def record(session: AsyncSession, decided: Sequence[Admission], now: datetime) -> None:
    """Write what was decided per message; a message seen before (reprocess) keeps its approval.
    New messages, nearly all of them, take one bulk insert (``bulk.insert_rows``: each value
    converted once, bound by the driver): this runs inside the applying transaction, which on
    SQLite holds the write lock the SMTP process's 250s wait for."""
    ids = [a.raw_id for a in decided]
    seen_before = {r.raw_message_id for r in await bulk.select_matching(session, _APPROVAL_COLUMNS, _TABLE.c.raw_message_id, ids)}
    existing = {
        t.raw_message_id: t
        for chunk in chunks(sorted(seen_before))
        for t in await session.scalars(select(MessageTrust).where(MessageTrust.raw_message_id.in_(chunk)))
    }
    fresh: list[tuple[object, ...]] = []
    for admission in decided:
        values = _columns(admission, now)
        before = existing.get(admission.raw_id)
        if before is None:
            fresh.append((admission.raw_id, *values.values()))
        else:
            for name, value in values.items():
                setattr(before, name, value)
    await session.flush()
    await bulk.insert_rows(session, _TABLE, _FRESH_COLUMNS, fresh)


_TABLE = table(MessageTrust)
_APPROVAL_COLUMNS = (_TABLE.c.raw_message_id, _TABLE.c.approved_by)
_COLUMNS = tuple(f.name for f in fields(Admission) if f.name != "raw_id")
_FRESH_COLUMNS = ("raw_message_id", *_COLUMNS, "decided_at")  # approved_by and approved_at: NULL


def _columns(admission: Admission, now: datetime) -> dict[str, object]:
    """Its fields as columns (shallow: all are plain values, which ``asdict`` would copy)."""
    return {**{name: getattr(admission, name) for name in _COLUMNS}, "decided_at": now}
