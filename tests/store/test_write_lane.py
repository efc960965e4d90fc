"""SQLite writes whole in one thread (``WriteLane``) and store code run on a synchronous session
(``immediate``): a lock held by another process is waited for and taken once free, one held
too long is StoreUnavailable, and a coroutine that awaits anything but its session is refused."""

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
from inbox_daemon.store import engine
from inbox_daemon.store.engine import WriteLane
from inbox_daemon.store.immediate import run_now


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
