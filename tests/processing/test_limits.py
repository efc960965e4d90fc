"""Bounded parsing: a runaway parse is cut at ``[parser] timeout_seconds``, its worker
replaced, the message marked ``error: parse timeout`` and never parsed again; later notices
go on; the query socket answers meanwhile (worker process or thread); SIGTERM stops promptly."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id

ROOT = Path(__file__).resolve().parents[2]


def hanging(order: str) -> bytes:
    return b"X-Test-Hang: yes\r\n" + opt_out_notice(order, None)


def make(tmp_path: Path, workers: int) -> DaemonProcess:
    config = write_config(tmp_path / "c.toml", {
        "parser": {"module": "tests.support.slow_parser", "workers": workers, "timeout_seconds": 1.0},
    })
    return DaemonProcess(tmp_path / "home", config, env={"PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("workers", [1, 0])
def test_a_runaway_parse_is_cut_and_the_next_notice_goes_on(tmp_path: Path, workers: int) -> None:
    daemon = make(tmp_path, workers)
    rng = random.Random(90 + workers)
    stuck, fine = order_id(rng), order_id(rng)
    try:
        daemon.start()
        assert daemon.send(hanging(stuck))[0] == 250
        started = time.monotonic()
        assert daemon.send(opt_out_notice(fine, None))[0] == 250
        assert daemon.query("PING") == ["PONG"] and time.monotonic() - started < 1.0  # the loop is free
        timed_out = daemon.wait_event("intake_decision", outcome="error", timeout=30)
        assert timed_out["reason"] == "parse timeout"
        daemon.wait_event("intake_decision", outcome="opt_out", timeout=30)
        assert daemon.query(f"ORDER {fine}")[0].startswith("BLOCKED")
        if workers:  # a worker process is killed and replaced; a thread is left to finish
            assert daemon.stop(signal.SIGTERM, timeout=15) == 0
            daemon.start()  # the timed-out message is not parsed again
            assert daemon.query(f"ORDER {fine}")[0].startswith("BLOCKED")
            assert "pending" not in daemon.cli("messages", "list").stdout
            assert daemon.cli("messages", "list", "--outcome", "error").stdout.count("parse timeout") == 1
    finally:
        daemon.ensure_stopped()


def test_sigterm_during_a_runaway_parse_stops_promptly(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {
        "parser": {"module": "tests.support.slow_parser", "workers": 1, "timeout_seconds": 600.0},
    })
    daemon = DaemonProcess(tmp_path / "home", config, env={"PYTHONPATH": str(ROOT)})
    try:
        daemon.start()
        assert daemon.send(hanging(order_id(random.Random(93))))[0] == 250
        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - started < 15  # the drain gives up after 10 s; the worker is killed
    finally:
        daemon.ensure_stopped()


def test_one_runaway_in_a_batch_costs_one_timeout_and_the_rest_is_decided(tmp_path: Path) -> None:
    """40 notices in one import batch, one of them a runaway: the batch is decided in about one
    ``timeout_seconds`` (a limit per batch would hold it for 40 of them), the runaway is kept as
    ``error: parse timeout`` and each of the others has its own outcome."""
    rng = random.Random(94)
    orders = [order_id(rng) for _ in range(40)]
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i, order in enumerate(orders):
        (maildir / "new" / f"{i:03}.host").write_bytes(hanging(order) if i == 20 else opt_out_notice(order, None))
    daemon = make(tmp_path, 1)
    started = time.monotonic()
    done = daemon.cli("import", str(maildir))
    elapsed = time.monotonic() - started
    assert "opt-out notices: 39" in done.stdout, done.stdout + done.stderr
    assert elapsed < 15, f"the batch took {elapsed:.1f} s for a 1 s parse deadline"
    kept = daemon.cli("messages", "list", "--outcome", "error").stdout
    assert kept.count("parse timeout") == 1
    assert "pending" not in daemon.cli("messages", "list", "--limit", "100").stdout
