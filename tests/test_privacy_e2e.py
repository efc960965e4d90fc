"""Buyer data at rest, end to end with real processes.

One run per engine takes notices over SMTP (smtplib to a running daemon) and from an IMAP
mailbox on a real Dovecot, and a CSV import; then no database byte (SQLite's file with its WAL
and shared memory, or a ``pg_dump`` of the whole database) and no line the daemon or the CLI
wrote holds a relay address (in any case, with or without its ``+tag``), a buyer's name, an
order id or the message text, and every buyer answers BLOCKED on every lookup path.

Rotating the data key seals everything again and the old key can be retired; a purge removes
the bytes and ``messages show`` says when; a purge killed with SIGKILL half way leaves every row
whole or purged, never between; a daemon that meets a message sealed under a key it lacks keeps
it with the reason and goes on."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.client import Client
from inbox_daemon.lookup.socketmap import encode
from inbox_daemon.privacy import load_keyring
from inbox_daemon.store import Delivery, Store
from tests.conftest import run_async
from tests.intake.dovecot import Dovecot
from tests.support.daemon import EXE, DaemonProcess, ask_unix, wait_until, write_config
from tests.support.notices import notice_message_id, opt_out_notice, order_id, relay_address

NAMES = ["Henrietta Vollmar-Quisling", "Bartholomew Oyelaran", "Ximena Zapatero-Lindqvist", "Ottilie Brennan-Achebe"]
TEXT = ["the kettle arrived dented, reference zebra-umbrella-7731", "please stop writing to me, marigold"]


def notice_with_buyer_data(order: str, buyer: str, name: str, text: str, seq: int) -> bytes:
    """An opt-out notice that a seller forwarded with a note naming the buyer and quoting them."""
    plain = opt_out_notice(order, buyer, seq=seq)
    head, _, body = plain.partition(b"\r\n\r\n")
    note = f"Note from the seller: buyer {name} wrote \"{text}\".\r\n\r\n".encode()
    return head + b"\r\n\r\n" + note + body


def secrets_of_run() -> list[bytes]:
    return [s.encode() for s in NAMES + TEXT]


def found_in(blob: bytes) -> list[str]:
    return [s.decode() for s in secrets_of_run() if s in blob]


def run_intake(daemon: DaemonProcess, tmp_path: Path) -> list[tuple[str, str]]:
    """Two notices over SMTP, one CSV import with a name column; the (order, address) pairs."""
    rng = random.Random(19)
    buyers = [(order_id(rng), relay_address(rng)) for _ in range(3)]
    for seq, ((order, address), name, text) in enumerate(zip(buyers[:2], NAMES, TEXT)):
        assert daemon.send(notice_with_buyer_data(order, address, name, text, seq))[0] == 250
        daemon.wait_event("intake_decision", outcome="opt_out", raw_id=seq + 1)
    csv_file = tmp_path / "buyers.csv"
    order, address = buyers[2]
    csv_file.write_text(f"order_id,email,buyer_name\n{order},{address},{NAMES[2]}\n")
    out = daemon.cli("blocklist", "import", str(csv_file), "--by", "test")
    assert out.returncode == 0, out.stderr
    return buyers


def answers(daemon: DaemonProcess, buyers: list[tuple[str, str]]) -> list[str]:
    lines = [line for order, address in buyers for line in (f"ORDER {order}", f"CHECK {address}")]
    return [reply.split()[0] for reply in daemon.query(*lines)]


def sqlite_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob("inbox-daemon.db*")))


def pg_dump(url: str) -> bytes:
    return subprocess.run(["pg_dump", "--dbname", url], capture_output=True, check=True, timeout=120).stdout


@dataclass(frozen=True)
class Buyer:
    """One buyer of the run: a name, an order id, and a relay address as Amazon made it
    (``canonical``) and as the notice or the CSV row wrote it (``sent``: another case, a +tag)."""

    name: str
    order: str
    local: str
    sent: str

    @property
    def canonical(self) -> str:
        return f"{self.local}@marketplace.amazon.com"

    def needles(self) -> dict[str, str]:
        """What must not be found, by what it is; the local part stands for every form of the
        address (any case, with or without a tag, with another relay domain)."""
        return {"name": self.name, "surname": self.name.rpartition(" ")[2], "order id": self.order,
                "relay address": self.local}


SENT_FORMS = ["{}+Gift@Marketplace.Amazon.COM", "{}@MARKETPLACE.amazon.com", "{}+x7@marketplace.amazon.com", "{}@marketplace.amazon.com"]


def buyers_of_run(rng: random.Random) -> list[Buyer]:
    locals_ = [relay_address(rng).partition("@")[0] for _ in NAMES]
    return [Buyer(name, order_id(rng), local, form.format(local.upper() if n % 2 == 0 else local))
            for n, (name, local, form) in enumerate(zip(NAMES, locals_, SENT_FORMS))]


def plain_buyer_data(blob: bytes, buyers: list[Buyer]) -> list[str]:
    """Which buyer data ``blob`` holds in plain text, in any case: "<what> of buyer <n>" each,
    with the bytes around it (never the plain value beyond what is already in the blob)."""
    needles = [(f"{what} of buyer {n}", text) for n, b in enumerate(buyers) for what, text in b.needles().items()]
    folded = blob.lower()
    found = [(label, folded.find(text.lower().encode())) for label, text in needles + [("message text", t) for t in TEXT]]
    return [f"{label}: ...{blob[max(0, at - 60):at + 60]!r}..." for label, at in found if at >= 0]


def lookups(daemon: DaemonProcess, policy: str, socketmap: str, buyers: list[Buyer]) -> dict[str, list[bool]]:
    """Whether each buyer's address (canonical and as sent) and order id is blocked, per path."""
    addresses = [a for b in buyers for a in (b.canonical, b.sent)]
    orders = [b.order for b in buyers]
    with Client(daemon.socket_path) as client:
        library = [client.check(a).blocked for a in addresses] + [client.order(o).blocked for o in orders]
    query = daemon.query(*[f"CHECK {a}" for a in addresses], *[f"ORDER {o}" for o in orders])
    rcpt = "request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient={}\n\n"
    return {
        "query socket": [reply.startswith("BLOCKED ") for reply in query],
        "client library": library,
        "postfix policy": [ask_unix(policy, rcpt.format(a).encode()).startswith(b"action=REJECT ") for a in addresses],
        "socketmap": [b":OK " in ask_unix(socketmap, encode(f"blocklist {k}")) for k in addresses + orders],
    }


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_no_buyer_data_in_plain_text_at_rest_or_in_logs_and_every_path_blocks(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, dovecot: Dovecot
) -> None:
    buyers = buyers_of_run(random.Random(1919))
    by_smtp, by_imap, *imported = buyers
    home, policy, socketmap = tmp_path / "home", str(tmp_path / "policy"), str(tmp_path / "map")
    account = {"name": "shop", "host": "127.0.0.1", "port": dovecot.port, "tls": "none",
               "username": dovecot.user, "password": dovecot.password, "poll_seconds": 0.2}
    sections: dict[str, dict[str, Any]] = {"query": {"sync_seconds": 0.2}, "imap": {"accounts": [account]},
                                           "postfix": {"policy": policy, "socketmap": socketmap}}
    url = ""
    if engine == "postgresql":
        url = request.getfixturevalue("fresh_pg_url")
        sections["database"] = {"url": url}
    daemon = DaemonProcess(home, write_config(tmp_path / "c.toml", sections))
    daemon.stdout = stdout = tmp_path / "daemon.stdout"
    cli: list[subprocess.CompletedProcess[str]] = []  # what the commands wrote counts as log lines too
    try:
        cli.append(daemon.cli("db", "upgrade", check=True))
        dovecot.append(notice_with_buyer_data(by_imap.order, by_imap.sent, by_imap.name, TEXT[1], 1))
        daemon.start()
        assert daemon.send(notice_with_buyer_data(by_smtp.order, by_smtp.sent, by_smtp.name, TEXT[0], 0))[0] == 250
        decided = daemon.wait_count("intake_decision", 2)
        assert sorted((e["source"], e["outcome"]) for e in decided) == [("imap:shop", "opt_out"), ("smtp", "opt_out")]
        csv_file = tmp_path / "buyers.csv"
        csv_file.write_text("order_id,email,buyer_name\n" + "".join(f"{b.order},{b.sent},{b.name}\n" for b in imported))
        cli.append(daemon.cli("blocklist", "import", str(csv_file), "--by", "ops", check=True))
        imported_orders = [f"ORDER {b.order}" for b in imported]  # the import reaches it by the change feed
        wait_until(lambda: all(r.startswith("BLOCKED") for r in daemon.query(*imported_orders)))
        assert lookups(daemon, policy, socketmap, buyers) == {path: [True] * n for path, n in
                                                               [("query socket", 12), ("client library", 12),
                                                                ("postfix policy", 8), ("socketmap", 12)]}
        at_rest = sqlite_bytes(home) if engine == "sqlite" else pg_dump(url)  # SQLite: with its -wal, -shm
        assert engine == "postgresql" or (home / "inbox-daemon.db-wal").exists()
        daemon.stop()
    finally:
        daemon.ensure_stopped()
    at_rest += sqlite_bytes(home) if engine == "sqlite" else b""  # checkpointed at stop
    assert daemon.stored(by_imap.canonical).encode() in at_rest and b"raw_messages" in at_rest  # it reads the rows
    assert plain_buyer_data(at_rest, buyers) == []
    logged = json.dumps(daemon.events, ensure_ascii=False).encode() + stdout.read_bytes()
    logged += "".join(out.stdout + out.stderr for out in cli).encode()
    assert len(daemon.events) > 10 and daemon.message_tag(notice_message_id(by_smtp.order)).encode() in logged
    assert plain_buyer_data(logged, buyers) == []


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_no_buyer_name_or_message_text_at_rest_and_buyers_still_blocked(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    home = tmp_path / "home"
    key = tmp_path / "privacy.key"
    sections: dict[str, dict[str, Any]] = {"query": {"sync_seconds": 0.2}, "privacy": {"key_file": str(key)}}
    url = ""
    if engine == "postgresql":
        url = request.getfixturevalue("fresh_pg_url")
        sections["database"] = {"url": url}
    daemon = DaemonProcess(home, write_config(tmp_path / "c.toml", sections))
    try:
        assert daemon.cli("db", "upgrade").returncode == 0
        daemon.start()
        buyers = run_intake(daemon, tmp_path)
        wait_until(lambda: answers(daemon, buyers) == ["BLOCKED"] * 6)  # the import reaches it by the change feed
        shown = daemon.cli("messages", "show", "1", "--raw")
        assert NAMES[0] in shown.stdout  # opened for the operator while kept
        daemon.stop()
        assert len(daemon.events) > 5 and found_in(json.dumps(daemon.events).encode()) == []  # every log line

        at_rest = sqlite_bytes(home) if engine == "sqlite" else pg_dump(url)
        assert b"raw_messages" in at_rest or engine == "sqlite"  # the dump is of the right database
        assert found_in(at_rest) == []
        assert key.stat().st_mode & 0o777 == 0o600

        rotated = daemon.cli("privacy", "rotate-key", "--retire")
        assert rotated.returncode == 0, rotated.stderr
        assert "3 messages sealed under k2" in rotated.stdout and "retired data keys k1" in rotated.stdout
        assert sorted(json.loads(key.read_text())["data_keys"]) == ["k2"]
        assert NAMES[2] in daemon.cli("messages", "show", "3", "--raw").stdout
        at_rest = sqlite_bytes(home) if engine == "sqlite" else pg_dump(url)
        assert found_in(at_rest) == []

        later = (datetime.now(UTC) + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        dry = daemon.cli("privacy", "purge", "--dry-run", "--now", later)
        assert "due\topt_out\t3" in dry.stdout and "purged" not in dry.stdout
        purged = daemon.cli("privacy", "purge", "--now", later)
        assert purged.returncode == 0 and "purged 3 messages" in purged.stdout, purged.stdout
        shown = daemon.cli("messages", "show", "1")
        assert "bytes: purged by retention at " in shown.stdout
        assert daemon.cli("messages", "show", "1", "--raw").returncode == 1

        daemon.start()
        assert answers(daemon, buyers) == ["BLOCKED"] * 6  # the opt-outs outlive the evidence
    finally:
        daemon.ensure_stopped()


def seed_old_messages(url: str, key_file: Path, count: int) -> None:
    """``count`` decided messages received 60 days ago, sealed with the daemon's key file."""
    old = datetime.now(UTC) - timedelta(days=60)

    async def go() -> None:
        async with await Store.open(url, keyring=load_keyring(key_file, create=False)) as store:
            for start in range(0, count, 2000):
                batch = [Delivery(b"message %d: buyer Ada Quist" % n, "smtp", received_at=old)
                         for n in range(start, min(count, start + 2000))]
                await store.save_raw_many(batch)
            async with store.engine.begin() as conn:
                await conn.exec_driver_sql("UPDATE raw_messages SET outcome = 'not_opt_out'")

    run_async(go(), timeout=120)


def row_states(url: str) -> dict[str, int]:
    async def go() -> dict[str, int]:
        async with await Store.open(url) as store, store.engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT length(data) = 0, key_id IS NULL, purged_at IS NULL, count(*) FROM raw_messages GROUP BY 1, 2, 3"
            )
            names = {(0, 0, 1): "kept", (1, 1, 0): "purged"}
            return {names.get((int(a), int(b), int(c)), f"half {a}{b}{c}"): int(n) for a, b, c, n in rows}

    return run_async(go())


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_purge_killed_half_way_leaves_every_row_whole_or_purged(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    home, count = tmp_path / "home", 20_000
    url = f"sqlite:///{home / 'inbox-daemon.db'}"
    sections: dict[str, dict[str, Any]] = {"privacy": {"key_file": str(tmp_path / "privacy.key")}}
    if engine == "postgresql":
        url = request.getfixturevalue("fresh_pg_url")
        sections["database"] = {"url": url}
    daemon = DaemonProcess(home, write_config(tmp_path / "c.toml", sections), env={"PYTHONUNBUFFERED": "1"})
    assert daemon.cli("db", "upgrade").returncode == 0
    assert daemon.cli("messages", "list").returncode == 0  # the first command makes the key file
    seed_old_messages(url, tmp_path / "privacy.key", count)

    with subprocess.Popen([EXE, "privacy", "purge", "--batch", "50", "--config", str(daemon.config)],
                          env=daemon.env, stdout=subprocess.PIPE, text=True) as purge:
        assert purge.stdout is not None
        while not (line := purge.stdout.readline()).startswith("purged"):
            assert line, "purge ended before its first batch"
        purge.send_signal(signal.SIGKILL)
        purge.wait(10)
    states = row_states(url)
    assert set(states) == {"kept", "purged"} and sum(states.values()) == count, states

    again = daemon.cli("privacy", "purge")
    assert again.returncode == 0 and f"purged {states['kept']} messages" in again.stdout
    assert row_states(url) == {"purged": count}


def test_a_message_sealed_under_a_key_the_daemon_lacks_is_kept_with_the_reason(tmp_path: Path) -> None:
    """Another host ran ``privacy rotate-key`` and stored mail under the new key before this
    daemon got the new key file: the message is an error with the reason, the daemon serves on,
    and once the file is copied and the daemon restarted, reprocessing applies it."""
    home = tmp_path / "home"
    daemon = DaemonProcess(home, write_config(tmp_path / "c.toml", {"query": {"sync_seconds": 0.2}}))
    try:
        assert daemon.cli("db", "upgrade").returncode == 0
        assert daemon.cli("messages", "list").returncode == 0  # makes the key file
        newer = load_keyring(home / "privacy.key", create=False).with_new_data_key()
        rng = random.Random(5)
        order, address = order_id(rng), relay_address(rng)

        async def store_elsewhere() -> None:
            async with await Store.open(f"sqlite:///{home / 'inbox-daemon.db'}", keyring=newer) as store:
                await store.save_raw_many([Delivery(opt_out_notice(order, address), "smtp")])

        run_async(store_elsewhere())
        daemon.start()  # recovers the pending message
        event = daemon.wait_event("sealed_message_unreadable")
        assert "'k2', which is not in the key file" in event["error"] and str(newer.data_keys["k2"]) not in event["error"]
        daemon.wait_event("intake_decision", outcome="error")
        assert daemon.query("PING", f"ORDER {order}") == ["PONG", "OK"]
        assert "cannot open the stored bytes" in daemon.cli("messages", "list", "--outcome", "error").stdout
        daemon.stop()

        newer.save(home / "privacy.key")  # the operator copies the new key file over
        daemon.start()
        assert daemon.cli("quarantine", "reprocess").returncode == 0
        wait_until(lambda: daemon.query(f"ORDER {order}")[0].startswith("BLOCKED"))
    finally:
        daemon.ensure_stopped()


def test_db_upgrade_seals_messages_an_older_version_stored_plain(tmp_path: Path) -> None:
    home = tmp_path / "home"
    daemon = DaemonProcess(home, write_config(tmp_path / "c.toml", {}))
    assert daemon.cli("db", "upgrade", "--revision", "0009").returncode == 0
    body = notice_with_buyer_data("111-2222222-3333333", "abcdefghij12345@marketplace.amazon.com", NAMES[0], TEXT[0], 0)
    db = home / "inbox-daemon.db"
    with sqlite3.connect(db) as conn:  # as version 0009 wrote it
        conn.execute("INSERT INTO raw_messages (sha256, data, size, source, envelope_to, received_at, times_received,"
                      " outcome) VALUES (?, ?, ?, 'smtp', '[]', '2026-11-01 00:00:00.000000', 1, 'opt_out')",
                      (hashlib.sha256(body).hexdigest(), body, len(body)))
    upgraded = daemon.cli("db", "upgrade")
    assert upgraded.returncode == 0 and "1 stored messages sealed" in upgraded.stdout, upgraded.stderr
    assert (home / "privacy.key").exists() and found_in(sqlite_bytes(home)) == []
    assert NAMES[0] in daemon.cli("messages", "show", "1", "--raw").stdout
