"""SQLite transactions whole in a thread (``engine.Lane``) and store code run on a synchronous
session (``immediate``): a write lock held by another process is waited for and taken once free,
one held too long is StoreUnavailable, the store's reads take one hand-off each, a database that
cannot be read is StoreUnavailable, and a coroutine that awaits anything but its session is refused."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from inbox_daemon.errors import StoreUnavailable
from inbox_daemon.store import Delivery, Store, engine
from inbox_daemon.store.engine import ReadLane, WriteLane
from inbox_daemon.store.immediate import run_now
from tests.conftest import TEST_KEYRING


def _lane(path: Path) -> WriteLane:
    return WriteLane(make_url(f"sqlite:///{path}"))


def test_a_write_waits_for_anothers_lock_and_takes_it_once_free(tmp_path: Path, run: Any) -> None:
    db = tmp_path / "x.db"

    async def main() -> tuple[float, int]:
        lane = _lane(db)
        try:
            await lane.run(lambda c: c.execute(text("CREATE TABLE t (x)")))
            other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO t VALUES (0)")
            release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
            release.start()
            began = time.monotonic()
            await lane.run(lambda c: c.execute(text("INSERT INTO t VALUES (1)")))
            waited = time.monotonic() - began
            release.join()
            other.close()
            count = await lane.run(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar_one())
            return waited, count
        finally:
            lane.close()

    waited, count = run(main())
    assert waited >= 0.25 and count == 2  # it waited for the other's commit, and both rows are in


def test_a_waiting_write_asks_the_driver_not_sqlalchemy(tmp_path: Path, run: Any) -> None:
    """While another connection holds the lock, the lane asks for it again and again on the
    driver's connection: no BEGIN goes through SQLAlchemy (each refusal there is an event, a
    wrapped error and a rollback: CPU a waiting writer burns)."""
    db = tmp_path / "x.db"

    async def main() -> tuple[int, int]:
        lane = _lane(db)
        begins = []
        event.listen(lane._engine, "before_cursor_execute", lambda *a: begins.append(a[2]) if "BEGIN" in a[2] else None)
        try:
            await lane.run(lambda c: c.execute(text("CREATE TABLE t (x)")))
            other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")
            release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
            release.start()
            await lane.run(lambda c: c.execute(text("INSERT INTO t VALUES (1)")))
            release.join()
            other.close()
            return len(begins), int(await lane.run(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar_one()))
        finally:
            lane.close()

    begins, count = run(main())
    assert (begins, count) == (0, 1)


def test_a_lock_held_past_the_busy_timeout_is_store_unavailable(
    tmp_path: Path, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 200)
    db = tmp_path / "x.db"

    async def main() -> None:
        lane = _lane(db)
        try:
            await lane.run(lambda c: c.execute(text("CREATE TABLE t (x)")))
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(StoreUnavailable, match="locked"):
                    await lane.run(lambda c: c.execute(text("INSERT INTO t VALUES (1)")))
            finally:
                other.execute("ROLLBACK")
                other.close()
            await lane.run(lambda c: c.execute(text("INSERT INTO t VALUES (2)")))  # free again: it goes on
        finally:
            lane.close()

    run(main())


def test_a_failure_in_the_work_rolls_the_transaction_back(tmp_path: Path, run: Any) -> None:
    db = tmp_path / "x.db"

    def half(c: Any) -> None:
        c.execute(text("INSERT INTO t VALUES (1)"))
        raise ValueError("a bug half way")

    async def main() -> int:
        lane = _lane(db)
        try:
            await lane.run(lambda c: c.execute(text("CREATE TABLE t (x)")))
            with pytest.raises(ValueError, match="half way"):
                await lane.run(half)
            return int(await lane.run(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar_one()))
        finally:
            lane.close()

    assert run(main()) == 0


def test_run_now_refuses_a_coroutine_that_awaits_anything_but_its_session() -> None:
    async def immediate() -> int:
        return 7

    async def suspends() -> int:
        await asyncio.sleep(0)
        return 8

    assert run_now(immediate()) == 7
    with pytest.raises(RuntimeError, match="other than its session"):
        run_now(suspends())


def test_the_stores_reads_on_sqlite_run_whole_in_a_read_lane(db_path: Path, run: Any) -> None:
    """The reads the daemon makes per batch (the bytes to parse, the index entries after a
    commit, the follower's changes) take one hand-off to a read thread each: none of their
    statements goes through aiosqlite, which costs the loop a hand-off per statement."""

    async def main() -> tuple[list[str], set[str], bytes, int]:
        async with await Store.open(f"sqlite:///{db_path}", keyring=TEST_KEYRING) as store:
            cursor = await store.change_cursor()
            (saved,) = await store.save_raw_many([Delivery(b"Subject: x\r\n\r\nbody", "smtp")])
            through_loop: list[str] = []
            event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: through_loop.append(a[2]))
            threads: set[str] = set()
            assert store._read_lane is not None
            event.listen(store._read_lane._engine, "before_cursor_execute",
                         lambda *a: threads.add(threading.current_thread().name))
            (record,) = await store.load_raw_many([saved.id])
            followed = await store.changes_since(cursor)
            return through_loop, threads, record.data, len(followed)

    through_loop, threads, data, followed = run(main())
    assert data == b"Subject: x\r\n\r\nbody" and followed == 0
    assert through_loop == []
    assert threads and all(name.startswith("sqlite-read") for name in threads)


def test_a_read_of_a_database_that_cannot_be_opened_is_store_unavailable(tmp_path: Path, run: Any) -> None:
    async def main() -> None:
        lane = ReadLane(make_url(f"sqlite:///{tmp_path / 'gone' / 'x.db'}"))
        try:
            with pytest.raises(StoreUnavailable):
                await lane.run(lambda c: c.execute(text("SELECT 1")).scalar_one())
        finally:
            lane.close()

    run(main())


def test_a_read_waits_for_no_writer(tmp_path: Path, run: Any) -> None:
    """WAL: a write transaction held open by another process does not hold a read up."""
    db = tmp_path / "x.db"

    async def main() -> int:
        writes, reads = _lane(db), ReadLane(make_url(f"sqlite:///{db}"))
        try:
            await writes.run(lambda c: c.execute(text("CREATE TABLE t (x)")))
            await writes.run(lambda c: c.execute(text("INSERT INTO t VALUES (1)")))
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO t VALUES (2)")
            try:
                return int(await asyncio.wait_for(
                    reads.run(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar_one()), 2))
            finally:
                other.execute("ROLLBACK")
                other.close()
        finally:
            writes.close()
            reads.close()

    assert run(main()) == 1  # what was committed, not the other's open write
