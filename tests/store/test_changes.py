"""Following the change sequence: what another process changed reaches a daemon's index,
and on PostgreSQL a change committed late (below one already read) is not skipped."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from inbox_daemon.store import ChangeCursor, IndexEntry, Store
from inbox_daemon.store.records import GAP_PATIENCE_S

from .store_builders import E1, O1, O2, SE1, SO1, SO2, apply_result, at, buyer, ingest, keys, last_change_seq, notice, save_raw


def test_cursor_tracks_gaps_until_they_arrive_or_expire() -> None:
    cursor = ChangeCursor(seq=10)
    cursor.advance([11, 14, 12], now=100.0)
    assert (cursor.seq, cursor.gaps) == (14, {13: 100.0})
    cursor.advance([16], now=110.0)
    assert cursor.gaps == {13: 100.0, 15: 110.0}
    cursor.advance([13], now=120.0)
    assert cursor.gaps == {15: 110.0}
    cursor.advance([], now=110.0 + GAP_PATIENCE_S + 1)  # a rolled-back insert: give up
    assert (cursor.seq, cursor.gaps) == (16, {})


def test_changes_by_another_process_reach_the_follower(db_url: str, run: Any) -> None:
    async def body() -> None:
        async with await Store.open(db_url) as daemon, await Store.open(db_url) as cli:
            await ingest(daemon, b"n1", notice(buyer(E1, O1)))
            cursor = await daemon.change_cursor()
            assert cursor.seq == await last_change_seq(daemon) > 0
            assert await daemon.changes_since(cursor) == []

            await ingest(cli, b"n2", notice(buyer(order=O2)), minutes=1)
            await cli.remove(O1, reason="asked", who="ops")
            got = await daemon.changes_since(cursor)
            assert keys(got) == {("order", SO1): 0, ("email", SE1): 0, ("order", SO2): 1}
            assert IndexEntry("order", SO2, at(1), 1) in got
            assert await daemon.changes_since(cursor) == []
            assert not cursor.more and cursor.gaps == {}

    run(body())


def test_a_fresh_cursor_reads_everything(with_store: Any) -> None:
    async def body(store: Store) -> None:
        await ingest(store, b"n1", notice(buyer(order=O1)))
        got = await store.changes_since(ChangeCursor())
        assert got == [IndexEntry("order", SO1, at(0), 1)]

    with_store(body)


def test_a_change_committed_late_is_not_skipped(pg_db_url: str, run: Any) -> None:
    """Seq 1 is taken by a transaction that commits after seq 2's: read 2, then 1 arrives."""

    async def body() -> None:
        async with await Store.open(pg_db_url) as store:
            await ingest(store, b"n1", notice(buyer(order=O1)))  # opt-out 1, change seq 1
            await ingest(store, b"n2", notice(buyer(order=O2)))  # opt-out 2, change seq 2
            cursor = await store.change_cursor()
            async with store.engine.connect() as slow:
                await slow.execute(text(
                    "INSERT INTO blocklist_changes (opt_out_id, changed_at) VALUES (1, now())"))
                await store.remove(O2, reason="late test", who="t")  # seq 4 commits first
                first = await store.changes_since(cursor)
                assert keys(first) == {("order", SO2): 0}
                assert list(cursor.gaps) == [3]
                await slow.commit()
            second = await store.changes_since(cursor)
            assert second == [IndexEntry("order", SO1, at(0), 1)]
            assert cursor.gaps == {} and cursor.seq == 4

    run(body())


def test_a_cursor_taken_while_a_change_is_uncommitted_waits_for_it(
    pg_db_url: str, run: Any
) -> None:
    async def body() -> None:
        async with await Store.open(pg_db_url) as store:
            await ingest(store, b"n1", notice(buyer(order=O1)))
            async with store.engine.connect() as slow:
                await slow.execute(text(
                    "INSERT INTO blocklist_changes (opt_out_id, changed_at) VALUES (1, now())"))
                await store.remove(O1, reason="x", who="t")
                cursor = await store.change_cursor()
                assert cursor.seq == 3 and list(cursor.gaps) == [2]
                await slow.commit()
            assert keys(await store.changes_since(cursor)) == {("order", SO1): 0}
            assert cursor.gaps == {}

    run(body())


async def _wait_for_a_lock_wait(store: Store) -> None:
    """Until some backend of this database waits on a lock (pg_stat_activity)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with store.engine.connect() as conn:
        while not (await conn.execute(query)).scalar():
            await conn.rollback()
            await asyncio.sleep(0.01)


def test_two_daemons_inserting_one_order_end_with_one_row(pg_db_url: str, run: Any) -> None:
    """The loser of the race hits the unique order id, and its retry bumps the winner's row."""

    async def body() -> None:
        async with await Store.open(pg_db_url) as store:
            saved = await save_raw(store, b"n2", source="smtp", received_at=at(1))
            async with store.engine.connect() as other:
                await other.execute(text(
                    "INSERT INTO opt_outs (order_id, first_seen, last_seen, notice_count, active)"
                    f" VALUES ('{SO1}', now(), now(), 1, true)"))
                applying = asyncio.create_task(
                    apply_result(store, saved.id, notice(buyer(order=O1)), parser_version="p"))
                await _wait_for_a_lock_wait(store)
                await other.commit()
            applied = await applying
            assert (applied.buyers_new, applied.buyers_updated) == (0, 1)
            (row,) = await store.find_opt_outs(O1)
            assert row.notice_count == 2

    run(body())
