"""``IndexFollower.catch_up``, which the intake awaits after each commit: it returns once what
was committed before it is in the index, reading on past a short read; and it never leaves its
caller waiting when the poll fails, the follower stops or is not running."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.errors import StoreUnavailable
from inbox_daemon.lookup.follow import IndexFollower
from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.store import Store, store as store_module
from tests.conftest import TEST_KEYRING, stored

STAMP = datetime(2024, 1, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
NEVER = 3600.0  # a poll interval no test waits out: every poll here is one catch_up asked for


def _orders(n: int) -> list[str]:
    return [f"113-0000000-{i:07d}" for i in range(n)]


def _commit(db: Path, orders: list[str]) -> None:
    """Active opt-outs and their change rows, committed by another process (the intake's)."""
    with sqlite3.connect(db) as conn:
        for order in orders:
            conn.execute("INSERT INTO opt_outs (order_id, first_seen, last_seen, notice_count, active)"
                         " VALUES (?, ?, ?, 1, 1)", (stored(order), STAMP, STAMP))
            conn.execute("INSERT INTO blocklist_changes (opt_out_id, changed_at)"
                         " VALUES ((SELECT max(id) FROM opt_outs), ?)", (STAMP,))


@asynccontextmanager
async def following(db: Path, *, start: bool = True) -> AsyncIterator[tuple[Store, BlocklistIndex, IndexFollower]]:
    async with await Store.open(f"sqlite:///{db}") as store:
        index = BlocklistIndex(secret=TEST_KEYRING.pseudonym_key)
        follower = IndexFollower(store, index, await store.change_cursor(), interval=NEVER)
        if start:
            await follower.start()
        try:
            yield store, index, follower
        finally:
            await follower.stop()


def _blocked(index: BlocklistIndex, orders: list[str]) -> list[bool]:
    return [index.check_order(order) is not None for order in orders]


def test_catch_up_returns_once_what_was_committed_before_it_is_in_the_index(db_path: Path, run: Any) -> None:
    orders = _orders(3)

    async def main() -> tuple[list[bool], list[bool]]:
        async with following(db_path) as (_store, index, follower):
            _commit(db_path, orders)
            before = _blocked(index, orders)
            await asyncio.wait_for(follower.catch_up(), 10)
            return before, _blocked(index, orders)

    assert run(main()) == ([False] * 3, [True] * 3)


def test_catch_up_reads_on_past_a_read_cut_short_by_its_limit(
    db_path: Path, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHANGES_PER_READ", 2)
    orders = _orders(7)

    async def main() -> list[bool]:
        async with following(db_path) as (_store, index, follower):
            _commit(db_path, orders)
            await asyncio.wait_for(follower.catch_up(), 10)
            return _blocked(index, orders)

    assert run(main()) == [True] * 7


def test_catch_up_returns_when_the_poll_fails_and_a_later_one_brings_the_change(
    db_path: Path, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = _orders(1)

    async def main() -> tuple[list[bool], list[bool]]:
        async with following(db_path) as (store, index, follower):
            real = store.changes_since

            async def away(_cursor: Any) -> Any:
                raise StoreUnavailable("database is locked")

            _commit(db_path, orders)
            monkeypatch.setattr(store, "changes_since", away)
            await asyncio.wait_for(follower.catch_up(), 10)
            failed = _blocked(index, orders)
            monkeypatch.setattr(store, "changes_since", real)
            await asyncio.wait_for(follower.catch_up(), 10)
            return failed, _blocked(index, orders)

    assert run(main()) == ([False], [True])


def test_catch_up_never_leaves_its_caller_waiting_on_a_follower_that_stops_or_never_ran(
    db_path: Path, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with following(db_path, start=False) as (_store, _index, idle):
            await asyncio.wait_for(idle.catch_up(), 1)  # not running: at once
        async with following(db_path) as (store, _index, follower):
            stuck = asyncio.Event()

            async def hangs(_cursor: Any) -> Any:
                stuck.set()
                await asyncio.Event().wait()

            monkeypatch.setattr(store, "changes_since", hangs)
            waiting = asyncio.create_task(follower.catch_up())
            await asyncio.wait_for(stuck.wait(), 10)
            await follower.stop()
            await asyncio.wait_for(waiting, 5)
            await asyncio.wait_for(follower.catch_up(), 1)  # stopped: at once

    run(main())
