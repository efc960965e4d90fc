"""Start and stop fail closed: a bad row cannot hang the index build or unblock its key, the
follower never skips a change it failed to apply and a bug in it ends its task (and so the
daemon), the stop ends every part within one deadline, and a database that refuses the daemon
is one line on the terminal, never a traceback or a password."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.config import load_config
from inbox_daemon.daemon import Daemon, end_leftover_tasks
from inbox_daemon.lookup.follow import IndexFollower, load_index
from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.store import Store
from tests.conftest import TEST_KEYRING, stored
from tests.support.daemon import EXE, DaemonProcess, write_config
from tests.support.notices import opt_out_notice
from tests.support.pgcluster import pg_bin, throwaway_cluster

GOOD = "jxxvbothd0wtflh@marketplace.amazon.com"
STAMP = datetime(2024, 1, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _rows(db: Path, rows: list[tuple[str | None, str | None, int]], stored: Callable[[str], str] = stored) -> None:
    """Active opt-outs and their change rows, written as a hand or an old bug could (keys as
    the pseudonyms the database holds under ``stored``'s key)."""
    with sqlite3.connect(db) as conn:
        for order, email, count in rows:
            conn.execute("INSERT INTO opt_outs (order_id, email, first_seen, last_seen, notice_count, active)"
                         " VALUES (?, ?, ?, ?, ?, 1)",
                         (order and stored(order), email and stored(email), STAMP, STAMP, count))
            conn.execute("INSERT INTO blocklist_changes (opt_out_id, changed_at)"
                         " VALUES ((SELECT max(id) FROM opt_outs), ?)", (STAMP,))


# -- the index build -----------------------------------------------------------------------------


def test_serve_starts_with_a_negative_count_and_keeps_that_key_blocked(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "home")
    try:
        assert daemon.cli("db", "upgrade").returncode == 0
        _rows(tmp_path / "home" / "inbox-daemon.db",
              [("113-5663737-4342765", None, -1), ("113-5663737-4342766", GOOD, 2), ("113-5663737-4342767", None, 0)],
              daemon.stored)
        daemon.start()
        replies = daemon.query("ORDER 113-5663737-4342765", "ORDER 113-5663737-4342766", f"CHECK {GOOD}",
                               "ORDER 113-5663737-4342767")
        assert [r.split()[0] for r in replies] == ["BLOCKED"] * 4, replies
        assert replies[0].endswith(" 1")  # counted as one notice
        warned = [e for e in daemon.events if e.get("event") == "index_count_invalid"]
        assert warned and warned[0]["level"] == "warning" and warned[0]["notices"] == "-1"
    finally:
        daemon.ensure_stopped()


def test_a_failing_index_builder_ends_the_load_instead_of_hanging(
    db_path: Path, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A builder that fails while the reader waits on a full queue (a bug, memory running out)."""
    _rows(db_path, [(f"113-5663737-43427{n:02d}", None, 1) for n in range(60)])
    real_build = BlocklistIndex.build

    def failing_build(entries: Any, **kwargs: Any) -> BlocklistIndex:
        next(iter(entries))
        raise MemoryError("the builder gave up")

    monkeypatch.setattr(BlocklistIndex, "build", failing_build)

    async def main() -> str:
        async with await Store.open(f"sqlite:///{db_path}") as store:
            try:
                await asyncio.wait_for(load_index(store, chunk=1), 20)
            except MemoryError as exc:
                return str(exc)
            return "loaded"

    assert run(main()) == "the builder gave up"
    monkeypatch.setattr(BlocklistIndex, "build", real_build)

    async def again() -> int:
        async with await Store.open(f"sqlite:///{db_path}") as store:
            return len(await load_index(store, chunk=1))

    assert run(again()) == 60


# -- following -----------------------------------------------------------------------------------


class FailingOnce(BlocklistIndex):
    """An index whose first ``apply`` raises, as a bug there would."""

    failures = 1

    def apply(self, entries: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug in applying")
        super().apply(entries)


def test_the_follower_never_moves_past_changes_it_did_not_apply(db_path: Path, run: Any) -> None:
    async def main() -> tuple[int, bool]:
        async with await Store.open(f"sqlite:///{db_path}") as store:
            cursor = await store.change_cursor()
            _rows(db_path, [("113-5663737-4342765", GOOD, 1)])
            index = FailingOnce(secret=TEST_KEYRING.pseudonym_key)
            follower = IndexFollower(store, index, cursor)
            with pytest.raises(RuntimeError):
                await follower.poll_once()
            followed = await follower.poll_once()  # the same changes, read again
            return followed, index.check_address(GOOD) is not None

    assert run(main()) == (2, True)


def test_a_bug_in_the_follower_ends_its_task_for_supervision(db_path: Path, run: Any) -> None:
    async def main() -> BaseException | None:
        async with await Store.open(f"sqlite:///{db_path}") as store:
            cursor = await store.change_cursor()
            _rows(db_path, [("113-5663737-4342765", None, 1)])
            follower = IndexFollower(store, FailingOnce(secret=TEST_KEYRING.pseudonym_key), cursor, interval=0.01)
            await follower.start()
            (task,) = follower.tasks
            done, _ = await asyncio.wait([task], timeout=10)
            await follower.stop()
            return task.exception() if done else None

    error = run(main())
    assert isinstance(error, RuntimeError), error


# -- stop ----------------------------------------------------------------------------------------


async def _hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another process's long write transaction: the daemon's writer waits on it. Taken off
    the loop, as another process would: a write of the daemon's own under way when it is asked
    for (it starts tasks that write) finishes on the loop, which a busy wait here would block."""

    def take() -> sqlite3.Connection:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        return conn

    return await asyncio.to_thread(take)


def _send_in_background(address: tuple[str, int], raws: list[bytes]) -> threading.Thread:
    import smtplib

    def send(raw: bytes) -> None:
        try:
            with smtplib.SMTP(*address, timeout=60) as client:
                client.sendmail("fwd@seller.example", ["optout@sellers.example"], raw)
        except (smtplib.SMTPException, OSError):
            pass  # 451 or a closed connection at stop: the sender tries again later

    threads = [threading.Thread(target=send, args=(raw,), daemon=True) for raw in raws]
    for thread in threads:
        thread.start()
    return threads[-1]


async def _started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    monkeypatch.setenv("INBOX_DAEMON_HOME", str(tmp_path))
    monkeypatch.setenv("INBOX_DAEMON_SMTP_PORT", "0")
    monkeypatch.setenv("INBOX_DAEMON_WEB_LISTEN", "127.0.0.1:0")  # not the embedded 8025 another daemon may hold
    # SMTP on this loop: these tests look into the flow that SMTP writes through.
    monkeypatch.setenv("INBOX_DAEMON_SMTP_OWN_PROCESS", "false")
    daemon = Daemon(load_config())
    await daemon.start()
    return daemon


async def _cleanup(daemon: Daemon, before: set[asyncio.Task[Any]]) -> None:
    """What ``Daemon.run`` releases before the process exits: the daemon's parts, then any
    task left over (``end_leftover_tasks``), all of them ended."""
    await daemon.stop()
    assert await end_leftover_tasks(before) == []


@pytest.mark.slow  # waits out SQLite's busy timeout (10 s) behind the held lock
def test_a_flow_stop_past_its_timeout_leaves_no_writer_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    async def main() -> tuple[bool, list[str]]:
        before = asyncio.all_tasks()
        daemon = await _started(tmp_path, monkeypatch)
        lock = await _hold_write_lock(Path(daemon.config.database_url.removeprefix("sqlite:///")))
        try:
            _send_in_background(daemon.smtp.address, [opt_out_notice(f"113-5663737-43427{n:02d}", None) for n in range(4)])
            while not daemon.flow._writer.queued and not daemon.flow.bytes_in_flight:
                await asyncio.sleep(0.01)
            await daemon.flow.stop(timeout=0.5)
            running = [t.get_name() for t in daemon.flow.tasks if not t.done()]
            return daemon.flow.tasks != [], running
        finally:
            lock.rollback()
            lock.close()
            await _cleanup(daemon, before)

    had_tasks, running = run(main(), timeout=60)
    assert had_tasks and running == []


@pytest.mark.slow  # waits out SQLite's busy timeout (10 s) behind the held lock
def test_stop_ends_every_part_within_one_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    """A writer stuck behind another transaction and SMTP sessions waiting on it: the stop still
    ends within its deadline, and no task of any part runs after it."""

    async def main() -> tuple[float, list[str]]:
        before = asyncio.all_tasks()
        daemon = await _started(tmp_path, monkeypatch)
        lock = await _hold_write_lock(Path(daemon.config.database_url.removeprefix("sqlite:///")))
        try:
            _send_in_background(daemon.smtp.address, [opt_out_notice(f"113-5663737-43427{n:02d}", None) for n in range(4)])
            while not daemon.flow.bytes_in_flight:
                await asyncio.sleep(0.01)
            began = time.monotonic()
            await daemon.stop(within=3.0)
            took = time.monotonic() - began
            tasks = [t for p in daemon.parts for t in getattr(p, "tasks", ())]
            # Each is over, or cancelled and waiting only for SQLite to give its thread back.
            uncancelled = [t.get_name() for t in tasks if not t.done() and not t.cancelling()]
            lock.rollback()
            _, late = await asyncio.wait(tasks, timeout=20) if tasks else (set(), set())
            return took, uncancelled + [t.get_name() for t in late]
        finally:
            lock.close()
            await _cleanup(daemon, before)

    took, running = run(main(), timeout=60)
    assert running == [] and took < 3.5, (took, running)


# -- a database that refuses the daemon ----------------------------------------------------------


def _serve(tmp_path: Path, url: str, *command: str) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path / "db.toml", {"database": {"url": url}})
    env = {**os.environ, "INBOX_DAEMON_HOME": str(tmp_path / "home"), "INBOX_DAEMON_SMTP_PORT": "0"}
    return subprocess.run([EXE, *(command or ("serve",)), "--config", str(config)], env=env, capture_output=True,
                          text=True, timeout=60)


def _one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 78, (proc.returncode, proc.stderr)
    (line,) = proc.stderr.strip().splitlines()  # nothing started: no log line beside it
    assert "Traceback" not in proc.stderr and "s3cret" not in proc.stderr, proc.stderr
    assert all(n in line for n in needles), line
    return line


def test_a_database_url_that_is_not_a_url_is_one_line(tmp_path: Path) -> None:
    _one_line(_serve(tmp_path, "postgresql://inbox:s3cret@127.0.0.1:notaport/inbox"), "database.url")


def test_a_database_that_does_not_exist_is_one_line(tmp_path: Path, pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(password="s3cret", database="no_such_inbox_db")
    plain = url.render_as_string(hide_password=False)
    line = _one_line(_serve(tmp_path, plain), "no_such_inbox_db", "does not exist")
    assert "***" in line  # the URL is named, its password hidden
    _one_line(_serve(tmp_path, plain, "db", "upgrade"), "no_such_inbox_db", "does not exist")  # systemd's ExecStartPre


def test_a_wrong_postgresql_password_is_one_line(tmp_path: Path) -> None:
    if pg_bin() is None:
        pytest.fail("PostgreSQL's initdb is missing (apt-get install postgresql)")
    with throwaway_cluster() as pg:
        pg.sql("CREATE ROLE inbox LOGIN PASSWORD 'right-one'")
        hba = pg.data / "pg_hba.conf"
        hba.write_text("host all inbox 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        pg.sql("SELECT pg_reload_conf()")
        url = f"postgresql://inbox:s3cret@127.0.0.1:{pg.port}/inbox"
        _one_line(_serve(tmp_path, url), "password authentication failed", "inbox:***@")
