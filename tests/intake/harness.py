"""The real Store and processing Flow around an IMAP poller or an import, and ways to look at the result.

Waiting is done by polling a condition with a deadline (the database or the IMAP server is the
state to watch; there is no event to wait on across those), never by a bare sleep.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

from inbox_daemon.config import ImapAccount, IntakeConfig
from inbox_daemon.intake.imap import ImapPoller, ImapTuning
from inbox_daemon.processing import Flow, Processor
from inbox_daemon.log import get_logger
from inbox_daemon.store import Store

from tests.intake.dovecot import Dovecot
from tests.support.daemon import wait_until

FAST = ImapTuning(
    command_timeout=10.0, connect_timeout=5.0, reidle_seconds=60.0, fetch_batch=50,
    backoff_initial=0.05, backoff_max=0.5, auth_retry_seconds=30.0, stop_seconds=2.0,
)


def account(server: Dovecot, **overrides: Any) -> ImapAccount:
    values: dict[str, Any] = dict(
        name="shop", host="127.0.0.1", port=server.port, tls="none",
        username=server.user, password=server.password, poll_seconds=0.2,
    )
    values.update(overrides)
    return ImapAccount(**values)


@asynccontextmanager
async def running_flow(
    db: Path, parse_workers: int = 0, limits: IntakeConfig | None = None,
) -> AsyncIterator[tuple[Store, Flow]]:
    """The built-in parser, no admission step, recovery of pending mail on."""
    store = await Store.open(f"sqlite:///{db}")
    flow = Flow(store, Processor(store, workers=parse_workers), recover=True, limits=limits)
    await flow.start()
    try:
        yield store, flow
    finally:
        await flow.stop()
        await store.close()


@asynccontextmanager
async def running_poller(
    db: Path, acct: ImapAccount, tuning: ImapTuning = FAST, *,
    limits: IntakeConfig | None = None, max_message_bytes: int | None = None,
) -> AsyncIterator[ImapPoller]:
    """``max_message_bytes`` None: the poller's default (the SMTP default)."""
    capped = {} if max_message_bytes is None else {"max_message_bytes": max_message_bytes}
    async with running_flow(db, limits=limits) as (store, flow):
        poller = ImapPoller(acct, flow, store, logger=get_logger(), tuning=tuning, **capped)
        await poller.start()
        try:
            yield poller
        finally:
            await poller.stop()


async def until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """``wait_until`` (a 50 ms poll with a deadline) in a thread, so the event loop under test
    keeps running; the condition may do blocking I/O (SQLite, IMAP)."""
    try:
        return await asyncio.to_thread(wait_until, condition, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db, timeout=10)) as conn, conn:  # commits a write
        return conn.execute(sql, args).fetchall()


def raw_counts(db: Path) -> dict[str, int]:
    """outcome -> number of raw messages."""
    return dict(query(db, "SELECT outcome, count(*) FROM raw_messages GROUP BY outcome"))


def processed(db: Path) -> int:
    return int(query(db, "SELECT count(*) FROM raw_messages WHERE outcome != 'pending'")[0][0])


def flagged(flags: dict[int, set[str]], keyword: str = "$OptOutProcessed") -> bool:
    return bool(flags) and all({"\\Seen", keyword} <= f for f in flags.values())
