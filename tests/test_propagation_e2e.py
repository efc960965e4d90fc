"""Two real daemons on one PostgreSQL: a notice taken by one is BLOCKED on the other as soon as
its transaction commits (LISTEN/NOTIFY), long before the other's next pull; and when the LISTEN
connection is killed, polling still brings every change and the listener connects again."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from inbox_daemon.store.engine import LISTEN_APPLICATION
from tests.intake.test_imap_scaleout import sql
from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address

NOTIFIED_WITHIN_S = 10.0  # far below the 60 s pull: only a notification explains it


def _pair(tmp_path: Path, url: str, sync_seconds: float) -> tuple[DaemonProcess, DaemonProcess]:
    sections: dict[str, dict[str, Any]] = {"database": {"url": url}, "query": {"sync_seconds": sync_seconds}}
    first = DaemonProcess(tmp_path / "a", write_config(tmp_path / "a.toml", sections))
    second = DaemonProcess(tmp_path / "b", write_config(tmp_path / "b.toml", sections))
    assert first.cli("db", "upgrade").returncode == 0
    return first, second


def _started(first: DaemonProcess, second: DaemonProcess) -> None:
    """Both daemons ready and listening."""
    for daemon in (first, second):
        daemon.start()
    for daemon in (first, second):
        daemon.wait_event("follow_listening")


def _listeners(url: str) -> set[int]:
    rows = sql(url, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
               LISTEN_APPLICATION)
    return {r["pid"] for r in rows}


def test_a_notice_to_one_daemon_is_blocked_on_the_other_at_once(fresh_pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(41)
    first, second = _pair(tmp_path, fresh_pg_url, sync_seconds=60)
    try:
        _started(first, second)
        for n in range(3):
            buyer = relay_address(rng)
            assert second.query(f"CHECK {buyer}")[0] == "OK"
            assert first.send(opt_out_notice(order_id(rng), buyer, seq=n))[0] == 250
            sent = time.monotonic()
            wait_until(lambda key=buyer: second.query(f"CHECK {key}")[0].startswith("BLOCKED "),
                       timeout=NOTIFIED_WITHIN_S, explain=second.recent)
            assert time.monotonic() - sent < NOTIFIED_WITHIN_S
    finally:
        first.ensure_stopped()
        second.ensure_stopped()


def test_a_lost_listen_connection_loses_no_change_and_is_made_again(fresh_pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(42)
    first, second = _pair(tmp_path, fresh_pg_url, sync_seconds=1)
    try:
        _started(first, second)
        before = _listeners(fresh_pg_url)
        assert len(before) == 2
        sql(fresh_pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 "
                          "AND datname = current_database()", LISTEN_APPLICATION)
        buyers = [relay_address(rng) for _ in range(10)]
        for n, buyer in enumerate(buyers):
            assert first.send(opt_out_notice(order_id(rng), buyer, seq=n))[0] == 250
        wait_until(lambda: all(r.startswith("BLOCKED ") for r in second.query(*(f"CHECK {b}" for b in buyers))),
                   timeout=30, explain=second.recent)
        second.wait_event("follow_listen_failed")
        wait_until(lambda: len(_listeners(fresh_pg_url) - before) == 2, timeout=30, explain=second.recent)
        second.wait_count("follow_listening", 2)
    finally:
        first.ensure_stopped()
        second.ensure_stopped()
