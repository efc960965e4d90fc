"""IMAP leases: per account and mailbox, which daemon polls it and until when.

A claim reads the row under a row lock (PostgreSQL ``FOR UPDATE``; SQLite writers are already
serialised by ``BEGIN IMMEDIATE``), decides, and writes, in one transaction. Time is the
database's clock on PostgreSQL (``clock_timestamp()``), so daemons on hosts whose clocks
disagree still agree on when a lease ran out; SQLite is one host, its clock is the process's.
Two daemons inserting the first row at once: one gets a unique violation and the store's retry
finds the other's row.

Functions take an open session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.errors import LeaseLost

from .engine import database_clock
from .records import Lease
from .schema import ImapLease

__all__ = ["acquire", "renew", "release", "check", "read"]


async def _row(session: AsyncSession, account: str, mailbox: str, *, lock: bool = True) -> Any:
    statement = select(ImapLease.__table__).where(ImapLease.account == account, ImapLease.mailbox == mailbox)
    return (await session.execute(statement.with_for_update() if lock else statement)).one_or_none()


def _lease(row: Any) -> Lease:
    return Lease(row.account, row.mailbox, row.holder, int(row.token), row.expires_at, row.last_success)


def _mine(row: Any, lease: Lease) -> bool:
    return row is not None and row.holder == lease.holder and int(row.token) == lease.token


async def acquire(session: AsyncSession, account: str, mailbox: str, holder: str, seconds: float) -> Lease:
    """Take the lease for ``seconds`` when it is free, released, ran out or already ours;
    otherwise return it as it is (another holder). The token goes up when the holder changes."""
    row = await _row(session, account, mailbox)
    now = await database_clock(session)
    until = now + timedelta(seconds=seconds)
    if row is None:
        values = dict(account=account, mailbox=mailbox, holder=holder, token=1, acquired_at=now, expires_at=until)
        await session.execute(insert(ImapLease).values(**values))
        return Lease(account, mailbox, holder, 1, until, None)
    if row.holder not in (None, holder) and row.expires_at > now:
        return _lease(row)  # busy
    ours = row.holder == holder  # ran out, but nobody took it meanwhile: the same tenure goes on
    token = int(row.token) if ours else int(row.token) + 1
    changes: dict[str, Any] = {"holder": holder, "token": token, "expires_at": until}
    if not ours:
        changes["acquired_at"] = now
    await session.execute(_where(account, mailbox).values(**changes))
    previous = None if ours or row.holder is None else str(row.holder)
    return Lease(account, mailbox, holder, token, until, row.last_success, previous)


async def renew(session: AsyncSession, lease: Lease, seconds: float, last_success: datetime | None) -> Lease | None:
    """Extend a lease still ours (same holder and token), recording the holder's last drained
    round; None when another daemon took the mailbox meanwhile."""
    row = await _row(session, lease.account, lease.mailbox)
    if not _mine(row, lease):
        return None
    until = await database_clock(session) + timedelta(seconds=seconds)
    success = last_success or row.last_success
    await session.execute(_where(lease.account, lease.mailbox).values(expires_at=until, last_success=success))
    return replace(lease, expires_at=until, last_success=success, previous=None)


async def release(session: AsyncSession, lease: Lease) -> bool:
    """Give the mailbox up at once, so another daemon need not wait for the lease to run out.
    False: it was not ours any more."""
    row = await _row(session, lease.account, lease.mailbox)
    if not _mine(row, lease):
        return False
    await session.execute(_where(lease.account, lease.mailbox).values(holder=None, expires_at=await database_clock(session)))
    return True


async def check(session: AsyncSession, lease: Lease) -> None:
    """LeaseLost unless the lease is still ours; the row stays locked to the end of the
    transaction, so no takeover commits between this check and the caller's write."""
    if not _mine(await _row(session, lease.account, lease.mailbox), lease):
        raise LeaseLost(f"the lease on {lease.account}/{lease.mailbox} passed to another daemon")


async def read(session: AsyncSession, account: str, mailbox: str) -> Lease | None:
    row = await _row(session, account, mailbox, lock=False)
    return None if row is None else _lease(row)


def _where(account: str, mailbox: str) -> Any:
    return update(ImapLease).where(ImapLease.account == account, ImapLease.mailbox == mailbox)
