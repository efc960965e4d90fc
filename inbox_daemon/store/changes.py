"""The change sequence: every transaction that changes an opt-out adds a row here, and every
daemon follows the sequence to keep its index current without reloading it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from . import bulk
from .records import GAP_WINDOW, ChangeCursor
from .schema import BlocklistChange, table

__all__ = ["CHANNEL", "record", "last_seq", "start_cursor", "read"]

#: The PostgreSQL NOTIFY channel a transaction that adds change rows signals on (no payload:
#: the followers read the sequence, so no key ever travels in a notification).
CHANNEL = "inbox_daemon_changes"
_TABLE = table(BlocklistChange)


async def record(session: AsyncSession, opt_out_ids: Iterable[int], now: datetime) -> None:
    """One change row per opt-out changed in this transaction, and on PostgreSQL a NOTIFY that
    the other daemons receive when (and only if) the transaction commits."""
    rows = [(i, now) for i in sorted(set(opt_out_ids))]
    if rows:
        await bulk.insert_rows(session, _TABLE, ("opt_out_id", "changed_at"), rows)
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(select(func.pg_notify(CHANNEL, "")))


async def last_seq(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(BlocklistChange.seq), 0))) or 0)


async def start_cursor(session: AsyncSession) -> ChangeCursor:
    """A cursor at the newest visible change that still waits for seqs below it that may be
    uncommitted (on PostgreSQL). Take it *before* loading the index: what changes during the
    load is then read again, and re-reading is harmless."""
    top = await last_seq(session)
    window = (
        select(BlocklistChange.seq)
        .where(BlocklistChange.seq > top - GAP_WINDOW)
        .order_by(BlocklistChange.seq)
    )
    cursor = ChangeCursor(seq=max(top - GAP_WINDOW, 0))
    cursor.advance(list((await session.scalars(window)).all()))
    return cursor


async def read(session: AsyncSession, cursor: ChangeCursor, limit: int) -> set[int]:
    """The opt-outs changed past the cursor (and in its gaps); advances the cursor."""
    condition = BlocklistChange.seq > cursor.seq
    if cursor.gaps:
        condition = or_(condition, BlocklistChange.seq.in_(sorted(cursor.gaps)))
    statement = (
        select(BlocklistChange.seq, BlocklistChange.opt_out_id)
        .where(condition)
        .order_by(BlocklistChange.seq)
        .limit(limit)
    )
    rows = (await session.execute(statement)).all()
    cursor.more = len(rows) == limit
    cursor.advance([seq for seq, _ in rows])
    return {opt_out_id for _, opt_out_id in rows}
