"""Two real ``inbox-daemon serve`` processes on one PostgreSQL, one of them on another host (a
UTS namespace of its own with another hostname, so its claims cannot be judged dead by a pid
check): each message is decided once across both, and when the other host's daemon is
SIGKILLed while it holds claims, the survivor takes them over once they run out
(``intake.claim_seconds``) and decides them."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.intake.test_imap_scaleout import sql
from tests.support.daemon import EXE, DaemonProcess, wait_until, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address

ROOT = Path(__file__).resolve().parents[1]
OTHER_HOST = "claims-other-host"
CLAIM_SECONDS = 2.0
TAKEOVER_LIMIT_S = 20.0  # a lease to run out, a recovery pass (every lease), the parse


def other_host_exe(tmp_path: Path) -> str:
    """``inbox-daemon`` started in a new UTS namespace named OTHER_HOST (``unshare --uts``
    execs in place: the pid the test holds is the daemon's)."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--uts", "true"], capture_output=True).returncode != 0:
        message = "unshare --uts is not permitted here (needs CAP_SYS_ADMIN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    script = tmp_path / "on-other-host"
    script.write_text(f'#!/bin/sh\nexec {unshare} --uts sh -c \'hostname {OTHER_HOST} && exec "$0" "$@"\' {EXE} "$@"\n')
    script.chmod(0o755)
    return str(script)


def pending_claimed_by(url: str, host: str) -> set[str]:
    rows = sql(url, "SELECT sha256 FROM raw_messages WHERE outcome = 'pending' AND claimed_by LIKE $1", f"{host}:%")
    return {r["sha256"] for r in rows}


def decisions(*daemons: DaemonProcess) -> list[str]:
    return [e["sha256"] for d in daemons for e in d.events if e["event"] == "intake_decision"]


def test_each_message_is_decided_once_and_a_dead_hosts_claims_are_taken_over(fresh_pg_url: str, tmp_path: Path) -> None:
    url, rng = fresh_pg_url, random.Random(88)
    sections: dict[str, dict[str, Any]] = {
        "database": {"url": url}, "query": {"sync_seconds": 0.2}, "intake": {"claim_seconds": CLAIM_SECONDS},
        "privacy": {"key_file": str(tmp_path / "privacy.key")},  # one key file for daemons sharing a database
    }
    slow = {**sections, "parser": {"module": "tests.support.slow_parser", "workers": 1}}
    first = DaemonProcess(tmp_path / "a", write_config(tmp_path / "a.toml", slow), exe=other_host_exe(tmp_path),
                          env={"PYTHONPATH": str(ROOT), "SLOW_PARSER_SLEEP": "0.3"})
    second = DaemonProcess(tmp_path / "b", write_config(tmp_path / "b.toml", sections))
    try:
        assert second.cli("db", "upgrade").returncode == 0
        first.start()
        second.start()

        # Each notice to both daemons at once, as an MTA that retries at the other MX would.
        both = [opt_out_notice(order_id(rng), relay_address(rng), seq=i) for i in range(30)]
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda job: job[0].send(job[1])[0], [(d, m) for m in both for d in (first, second)]))
        assert replies == [250] * 60

        # Then a burst to the slow one alone; it is killed while it holds claims on it.
        alone = [opt_out_notice(order_id(rng), relay_address(rng), seq=100 + i) for i in range(20)]
        assert [first.send(m)[0] for m in alone] == [250] * 20
        wait_until(lambda: len(pending_claimed_by(url, OTHER_HOST)) >= 3, timeout=30)
        first.kill()
        killed = time.monotonic()
        orphaned = pending_claimed_by(url, OTHER_HOST)
        assert len(orphaned) >= 3

        wait_until(lambda: not sql(url, "SELECT 1 FROM raw_messages WHERE outcome = 'pending'"), timeout=TAKEOVER_LIMIT_S)
        took = time.monotonic() - killed
        print(f"claims of a SIGKILLed daemon on another host decided by the survivor {took:.1f} s after the kill")
        assert second.stop() == 0
    finally:
        first.ensure_stopped()
        second.ensure_stopped()

    rows = sql(url, "SELECT sha256, outcome, claimed_by FROM raw_messages")
    assert len(rows) == 50 and {r["outcome"] for r in rows} == {"opt_out"}
    decided = decisions(first, second)
    assert len(decided) == len(set(decided))  # never twice, whichever daemon got it and however often
    # The first may have committed a batch and died before logging it; everything else is in a log.
    assert len(set(decided)) >= 50 - 20
    assert orphaned <= set(decisions(second))  # the survivor decided what the dead one held
    survivor = {r["claimed_by"].partition(":")[0] for r in rows if r["sha256"] in orphaned}
    assert survivor == {os.uname().nodename}
    assert any(e["event"] == "recovered_pending" for e in second.events)
