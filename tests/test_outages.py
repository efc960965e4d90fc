"""A PostgreSQL that restarts, shuts down and refuses connections under a running daemon: SMTP
answers 451 meanwhile (never hangs, never 250 without a commit), 250 again once the server is
back, and every acknowledged message is applied. A throwaway cluster of the test's own, so the
shared server is never restarted."""

from __future__ import annotations

import csv
import io
import random
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address
from tests.support.pgcluster import PgCluster, pg_bin, throwaway_cluster


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    if pg_bin() is None:
        pytest.fail("PostgreSQL's initdb is missing (apt-get install postgresql)")
    with throwaway_cluster() as pg:
        yield pg


class Sender(threading.Thread):
    """An MTA: sends notices one after another and sends each again after a 451 until it is
    accepted, on one connection while it lasts."""

    def __init__(self, smtp: tuple[str, int], notices: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.smtp, self.todo = smtp, list(notices)
        self.codes: list[int] = []
        self.acked: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while self.todo and not self.stop.is_set():
            try:
                with smtplib.SMTP(*self.smtp, timeout=60) as client:
                    while self.todo and not self.stop.is_set():
                        order, buyer = self.todo[0]
                        try:
                            client.sendmail("fwd@seller.example", ["optout@sellers.example"], opt_out_notice(order, buyer))
                            self.codes.append(250)
                            self.acked.append(order)
                            self.todo.pop(0)
                        except smtplib.SMTPResponseException as exc:
                            self.codes.append(exc.smtp_code)
                            assert exc.smtp_code == 451, exc
                            time.sleep(0.05)  # an MTA's retry, shortened
            except (smtplib.SMTPServerDisconnected, OSError):
                time.sleep(0.05)


def blocked_orders(daemon: DaemonProcess) -> set[str]:
    """The order ids ``blocklist export`` writes: pseudonyms (``DaemonProcess.stored``)."""
    out = daemon.cli("blocklist", "export", "--csv", check=True).stdout
    return {row["order_id"] for row in csv.DictReader(io.StringIO(out))}


def test_restart_shutdown_and_refusal_give_451_then_250_and_lose_nothing(cluster: PgCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {"database": {"url": cluster.url}, "query": {"sync_seconds": 0.2}})
    daemon = DaemonProcess(tmp_path / "home", config)
    rng = random.Random(81)
    notices = [(order_id(rng), relay_address(rng)) for _ in range(400)]
    try:
        assert daemon.cli("db", "upgrade").returncode == 0
        daemon.start()
        sender = Sender(daemon.smtp, notices)
        sender.start()
        wait_until(lambda: len(sender.acked) >= 50, timeout=30)
        restart_from = len(sender.codes)
        cluster.restart()  # fast shutdown: backends end (57P01), then nothing listens
        wait_until(lambda: len(sender.acked) >= 120, timeout=60)
        assert 451 in sender.codes[restart_from:]
        cluster.sql("ALTER DATABASE inbox WITH ALLOW_CONNECTIONS false")  # new connections: 55000
        cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'inbox'")
        refused_from = len(sender.codes)
        wait_until(lambda: 451 in sender.codes[refused_from:], timeout=30)
        cluster.sql("ALTER DATABASE inbox WITH ALLOW_CONNECTIONS true")
        sender.join(120)
        assert not sender.is_alive() and not sender.todo
        assert sender.codes.count(451) >= 1 and sender.codes[-1] == 250
        wait_until(lambda: {daemon.stored(o) for o in sender.acked} <= blocked_orders(daemon), timeout=60)
        assert daemon.cli("messages", "list", "--outcome", "pending").stdout.strip() == ""
        assert daemon.query("PING") == ["PONG"]
    finally:
        daemon.ensure_stopped()
