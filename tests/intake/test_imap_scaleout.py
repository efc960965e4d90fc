"""Two real ``inbox-daemon serve`` processes on one PostgreSQL and one real Dovecot account:
one polls the mailbox, the other waits; SIGKILL the poller and the other takes over.

Each message must end stored once (one raw row, one ``intake_decision`` across both daemons'
logs) and flagged. A message fetched twice is allowed only where the killed daemon stored it
and died before flagging it: the next holder fetches it again and the store's sha256 dedupe
makes that a second delivery of the same row (``times_received`` 2), never a second message.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_async
from tests.intake.dovecot import Dovecot
from tests.intake.harness import flagged
from tests.support.daemon import DaemonProcess, wait_until
from tests.support.notices import opt_out_notice, order_id, relay_address
from tests.support.proxy import HoldingProxy

TAKEOVER_LIMIT_S = 30.0
LAST_SUCCESS = "inbox_daemon_imap_last_success_timestamp_seconds"


def sql(url: str, statement: str, *args: Any) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()

    return run_async(go())


def config(path: Path, url: str, dovecot: Dovecot, port: int | None = None) -> Path:
    (path.parent / "imap.pass").write_text(dovecot.password + "\n")
    path.write_text(
        f'[database]\nurl = "{url}"\n\n[query]\nsync_seconds = 0.2\n\n'
        f'[privacy]\nkey_file = "{path.parent / "privacy.key"}"\n\n'
        "[[imap.accounts]]\n"
        f'name = "shop"\nhost = "127.0.0.1"\nport = {port or dovecot.port}\ntls = "none"\n'
        f'username = "{dovecot.user}"\npassword_file = "{path.parent / "imap.pass"}"\n'
    )
    return path


def last_success(daemon: DaemonProcess) -> float:
    listening = daemon.wait_event("metrics.listening")
    with urllib.request.urlopen(f"http://{listening['address']}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == LAST_SUCCESS and sample.labels == {"account": "shop"}:
                return float(sample.value)
    raise AssertionError(f"no {LAST_SUCCESS} for shop")


def uids(text: str) -> set[int]:
    """A UID set as the poller logs it (``3:5,9``)."""
    out: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition(":")
        out.update(range(int(low), int(high or low) + 1))
    return out


def unflagged(events: list[dict[str, Any]]) -> set[str]:
    """sha256 of what a daemon stored and never flagged."""
    marked = set().union(*(uids(e["uids"]) for e in events if e["event"] == "imap_marked"))
    return {e["sha256"] for e in events if e["event"] == "imap_stored" and e["uid"] not in marked}


class Mail:
    """Notices appended to the Dovecot account through real IMAP APPENDs, with the UID each
    got (RFC 4315 APPENDUID) and its sha256."""

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        self.rng = random.Random(1212)
        self.sha_by_uid: dict[int, str] = {}

    @property
    def count(self) -> int:
        return len(self.sha_by_uid)

    def append(self, n: int) -> None:
        with self.dovecot.client() as imap:
            for _ in range(n):
                raw = opt_out_notice(order_id(self.rng), relay_address(self.rng), seq=self.count)
                typ, data = imap.append("INBOX", "", None, raw)  # type: ignore[arg-type]
                found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
                assert typ == "OK" and found, data
                self.sha_by_uid[int(found.group(1))] = hashlib.sha256(raw).hexdigest()

    def above(self, position: int) -> set[str]:
        return {sha for uid, sha in self.sha_by_uid.items() if uid > position}


def state(url: str, *daemons: DaemonProcess) -> str:
    """What a failed wait shows: the messages not yet processed and each daemon's last events."""
    pending = sql(url, "SELECT id, source, claimed_by FROM raw_messages WHERE outcome = 'pending'")
    return f"pending {[dict(r) for r in pending]}; " + "; ".join(
        f"daemon {n}: {[{k: v for k, v in e.items() if k != 'timestamp'} for e in d.recent()]}"
        for n, d in enumerate(daemons, 1))


def processed(url: str) -> int:
    return int(sql(url, "SELECT count(*) FROM raw_messages WHERE source = 'imap:shop' AND outcome <> 'pending'")[0][0])


@pytest.mark.parametrize("death", ["sigkill", "between_store_and_flag"])
def test_two_daemons_take_each_message_once_and_the_other_takes_over_after_sigkill(
    death: str, dovecot: Dovecot, fresh_pg_url: str, tmp_path: Path
) -> None:
    """``sigkill``: the test kills the poller while it takes a burst of mail. ``between_store
    _and_flag``: a proxy holds the poller's flag command (UID STORE) after its durable store of
    the first 30, and the test kills it there, the worst moment to die."""
    url, mail, held = fresh_pg_url, Mail(dovecot), death == "between_store_and_flag"
    proxy = HoldingProxy(("127.0.0.1", dovecot.port), b" STORE ")
    metrics = {"INBOX_DAEMON_METRICS_LISTEN": "127.0.0.1:0"}
    first = DaemonProcess(tmp_path / "a", config(tmp_path / "a.toml", url, dovecot, proxy.port if held else None), env=metrics)
    second = DaemonProcess(tmp_path / "b", config(tmp_path / "b.toml", url, dovecot), env=metrics)
    try:
        assert first.cli("db", "upgrade").returncode == 0
        mail.append(30)  # before any daemon runs
        first.start()
        first.wait_event("imap_lease_acquired")
        wait_until(lambda: processed(url) == 30, timeout=30, explain=lambda: state(url, first, second))
        second.start()  # after the first processed them: nothing pending for its start-up recovery
        second.wait_event("imap_lease_busy")

        # SMTP and queries work on the daemon that does not poll.
        rng = random.Random(7)
        buyer = relay_address(rng)
        assert second.send(opt_out_notice(order_id(rng), buyer, seq=999))[0] == 250
        wait_until(lambda: first.query(f"CHECK {buyer}")[0].startswith("BLOCKED"), timeout=5)

        if held:
            assert proxy.held.wait(30)
            first.wait_count("imap_stored", 30)
        else:
            wait_until(lambda: last_success(second) > 0, timeout=20)  # the holder's, mirrored to the standby
            mail.append(10)  # while the first polls
            wait_until(lambda: processed(url) == 40, timeout=30, explain=lambda: state(url, first, second))
            stored = len(first.wait_count("imap_stored", 40))
            mail.append(40)
            first.wait_count("imap_stored", stored + 1)  # it is taking the burst: kill it now
        first.kill()
        killed, killed_at = time.monotonic(), time.time()
        saved = sql(url, "SELECT last_uid FROM imap_state")  # nobody moves it until the takeover
        position = saved[0]["last_uid"] if saved else 0
        stored_at_kill = {r["sha256"] for r in sql(url, "SELECT sha256 FROM raw_messages WHERE source = 'imap:shop'")}
        mail.append(10)  # after the kill

        taken = second.wait_event("imap_lease_taken_over", timeout=TAKEOVER_LIMIT_S)
        takeover = time.monotonic() - killed
        print(f"takeover {death}: {takeover:.1f} s after the kill")
        assert takeover < TAKEOVER_LIMIT_S
        assert first.proc is not None and taken["previous"].split("/")[1] == str(first.proc.pid)
        wait_until(lambda: processed(url) == mail.count, timeout=30, explain=lambda: state(url, first, second))
        wait_until(lambda: len(dovecot.flags()) == mail.count and flagged(dovecot.flags()), timeout=30)
        wait_until(lambda: last_success(second) >= killed_at, timeout=20)
        assert second.stop() == 0
    finally:
        first.ensure_stopped()
        second.ensure_stopped()
        proxy.close()

    rows = sql(url, "SELECT sha256, times_received, outcome FROM raw_messages WHERE source = 'imap:shop'")
    assert len(rows) == mail.count
    assert {r["outcome"] for r in rows} == {"opt_out"}
    decisions = [e["sha256"] for d in (first, second) for e in d.events
                 if e["event"] == "intake_decision" and e["source"] == "imap:shop"]
    assert sorted(decisions) == sorted(r["sha256"] for r in rows)  # each message decided once, by one daemon
    again = {r["sha256"] for r in rows if r["times_received"] > 1}
    # Fetched again only what the dead one had stored above its saved position.
    assert again <= stored_at_kill & mail.above(position)
    assert max(r["times_received"] for r in rows) <= 2
    if held:
        assert len(unflagged(first.events)) == 30 and unflagged(first.events) <= again

    # One poller at a time: the second selected the mailbox only after taking the lease over.
    names = [e["event"] for e in second.events]
    assert names.index("imap_lease_taken_over") < names.index("imap_selected")
    assert "imap_lease_released" in names  # a stopping daemon hands the mailbox on at once
    assert "imap_lease_lost" not in [e["event"] for e in first.events]
