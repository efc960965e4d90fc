"""IMAP positions: per account and mailbox, the UIDVALIDITY a poller read under and the
highest UID below which every message was stored durably and then flagged or moved.

A message is stored before it is flagged and the position advances only after the flag, so a
crash in between leaves the message above ``last_uid``: it is fetched and stored again (the
sha256 dedupe makes that a no-op) and flagged then. No per-UID table is needed for that.

With several daemons on one database a position is written only under the mailbox's lease
(``leases``): the write checks the lease in its own transaction, so a daemon that lost the
mailbox while it stalled cannot move the position of the daemon that took over.

Functions take an open session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from . import leases
from .records import Lease, Position
from .schema import ImapState, RawMessage

__all__ = ["load", "save", "pending_from"]


async def load(session: AsyncSession, account: str, mailbox: str) -> Position | None:
    statement = select(ImapState.uidvalidity, ImapState.last_uid).where(
        ImapState.account == account, ImapState.mailbox == mailbox
    )
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else Position(int(row[0]), int(row[1]))


async def save(
    session: AsyncSession, account: str, mailbox: str, position: Position, now: datetime, lease: Lease | None = None
) -> None:
    """Insert or move the position (one statement on both engines); with ``lease``, only
    while that lease is still the mailbox's (LeaseLost otherwise)."""
    if lease is not None:
        await leases.check(session, lease)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {"uidvalidity": position.uidvalidity, "last_uid": position.last_uid, "updated_at": now}
    statement = (
        insert(ImapState)
        .values(account=account, mailbox=mailbox, **values)
        .on_conflict_do_update(index_elements=["account", "mailbox"], set_=values)
    )
    await session.execute(statement)


async def pending_from(session: AsyncSession, source: str, after: int, limit: int) -> list[int]:
    """Messages of one intake source stored but not processed, oldest first: what a daemon
    that died holding a mailbox left behind."""
    statement = (
        select(RawMessage.id)
        .where(RawMessage.outcome == "pending", RawMessage.source == source, RawMessage.id > after)
        .order_by(RawMessage.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())
