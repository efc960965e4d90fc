"""The privacy key's check value in the database: read it, record it once.

Functions take an open connection or session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from .schema import PrivacyCheck

__all__ = ["has_table", "stored", "record"]

_ROW = 1  # the table holds one row


async def has_table(conn: AsyncConnection) -> bool:
    """Whether the schema has the table (not before ``db upgrade`` brought it)."""
    return bool(await conn.run_sync(lambda sync: inspect(sync).has_table(PrivacyCheck.__tablename__)))


async def stored(conn: AsyncConnection) -> str | None:
    """The recorded check value; None when there is none yet, or no table for it (a database
    not yet upgraded: it holds no pseudonyms either)."""
    if not await has_table(conn):
        return None
    found = await conn.scalar(select(PrivacyCheck.check_value).where(PrivacyCheck.id == _ROW))
    return None if found is None else str(found)


async def record(session: AsyncSession, value: str, now: datetime) -> None:
    """Record the check value (the caller found none; a concurrent first start that recorded
    first makes the commit fail, and the caller reads the winner's)."""
    session.add(PrivacyCheck(id=_ROW, check_value=value, created_at=now))
    await session.flush()
