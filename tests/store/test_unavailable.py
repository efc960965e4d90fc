"""A database that cannot be reached or cannot commit raises StoreUnavailable (SMTP 451),
and the store works again once it is back."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from inbox_daemon.errors import StoreUnavailable
from inbox_daemon.store import Store
from tests.support.proxy import CuttableProxy

from .store_builders import save_raw


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket closes


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:{closed_port}/test",
        "sqlite:////nonexistent-dir/inbox.db",
    ],
)
def test_unreachable_database(url: str, run: Any) -> None:
    url = url.format(closed_port=closed_port())  # picked at run time: collection is the same in every worker

    async def body() -> None:
        async with await Store.open(url) as store:
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await save_raw(store, b"x", source="smtp")
            with pytest.raises(StoreUnavailable):
                await store.changes_since(await store.change_cursor())
        await asyncio.to_thread(_join_aiosqlite_threads)

    run(body())


def _join_aiosqlite_threads() -> None:
    """aiosqlite stops the thread of a connection that failed to open without waiting for it
    (aiosqlite/core.py ``_connect``); it then reports to the event loop, which must still be
    open, or the thread dies with "Event loop is closed" inside a later test."""
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=5)


def test_a_missing_schema_means_retry_later(sqlite_url: str, run: Any) -> None:
    """An unmigrated database is an operator error, but to SMTP it is the same: retry later."""

    async def body() -> None:
        async with await Store.open(sqlite_url) as store:
            await store.ping()
            with pytest.raises(StoreUnavailable, match="no such table"):
                await save_raw(store, b"x", source="smtp")

    run(body())


def test_postgresql_going_away_and_coming_back(pg_db_url: str, run: Any) -> None:
    target = make_url(pg_db_url)
    proxy = CuttableProxy((target.host or "127.0.0.1", target.port or 5432))
    url = target.set(port=proxy.port).render_as_string(hide_password=False)

    async def body() -> None:
        async with await Store.open(url) as store:
            before = await save_raw(store, b"before", source="smtp")
            proxy.cut()
            with pytest.raises(StoreUnavailable):
                await save_raw(store, b"during", source="smtp")
            proxy.restore()
            after = await save_raw(store, b"during", source="smtp")  # the MTA's retry
            assert after.is_new and after.id > before.id
            assert len(await store.pending_raw()) == 2

    try:
        run(body())
    finally:
        proxy.close()


