"""No relay address or order id in plain text at rest in the blocklist, the change feed or the
audit trail, and every lookup path still answers BLOCKED for the same buyers.

One run per engine against a real daemon: an opt-out notice over SMTP (smtplib), a CSV import
through the CLI, an address learnt from ``CHECK <address> <order>``. Then the blocklist, change
and audit tables are scanned byte for byte (SQLite: their rows as ``iterdump`` writes them;
PostgreSQL: ``pg_dump`` of those tables) for every key of the run, and each key is asked over the
query socket (the C loop where built, and the pure Python server), the Postfix policy service,
the socketmap and the client library. An export re-imported restores a removed key; under
another database's key its pseudonyms are refused.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from inbox_daemon.client import Client
from inbox_daemon.lookup import QueryServer
from inbox_daemon.lookup.follow import load_index
from inbox_daemon.lookup.socketmap import encode
from inbox_daemon.store import Store
from tests.support.daemon import DaemonProcess, ask_unix, wait_until, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address

TABLES = ("opt_outs", "blocklist_changes", "audit_log")


def _sqlite_rows(path: Path) -> bytes:
    """The rows of the blocklist, change and audit tables as SQL text (``iterdump``)."""
    with sqlite3.connect(path) as conn:
        return "\n".join(line for line in conn.iterdump()
                         if any(line.startswith(f'INSERT INTO "{t}"') for t in TABLES)).encode()


def _pg_rows(url: str) -> bytes:
    parsed = make_url(url)
    args = ["pg_dump", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
            "--data-only", *[f"--table={t}" for t in TABLES], parsed.database or ""]
    return subprocess.run(args, capture_output=True, check=True, timeout=60).stdout


def _python_path(config_url: str, key_file: Path, keys_: list[str], sock: str) -> list[str]:
    """The same keys through the pure Python server (no C) on an index loaded from the store."""
    from inbox_daemon.lookup import protocol
    from inbox_daemon.privacy import load_keyring

    async def main() -> list[str]:
        async with await Store.open(config_url) as store:
            store.keyring = load_keyring(key_file, create=False)
            index = await load_index(store)
        server = QueryServer(index, unix_path=sock, tcp=None, native=False)
        saved, protocol.FASTPATH = protocol.FASTPATH, None
        await server.start()
        def ask() -> list[str]:
            with Client(sock) as client:
                return [str(client.check(k) if "@" in k else client.order(k)) for k in keys_]

        try:
            return await asyncio.to_thread(ask)
        finally:
            await server.stop()
            protocol.FASTPATH = saved

    return asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_no_plain_key_at_rest_and_every_path_blocks(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    rng = random.Random(19)
    url = str(request.getfixturevalue("fresh_pg_url")) if engine == "postgresql" else f"sqlite:///{tmp_path / 'inbox.db'}"
    policy, socketmap = str(tmp_path / "policy"), str(tmp_path / "map")
    config = write_config(tmp_path / "c.toml", {"database": {"url": url}, "query": {"sync_seconds": 0.2},
                                                 "postfix": {"policy": policy, "socketmap": socketmap}})
    daemon = DaemonProcess(tmp_path / "home", config)
    noticed = (order_id(rng), relay_address(rng))
    imported = [(order_id(rng), relay_address(rng)) for _ in range(3)]
    learnt_order, learnt_address = order_id(rng), relay_address(rng)
    try:
        assert daemon.cli("db", "upgrade").returncode == 0
        daemon.start()
        assert daemon.send(opt_out_notice(*noticed))[0] == 250  # smtplib, to the daemon's listener
        assert daemon.send(opt_out_notice(learnt_order, None))[0] == 250
        daemon.wait_count("intake_decision", 2)
        csv_file = tmp_path / "buyers.csv"
        csv_file.write_text("order_id,email\n" + "".join(f"{o},{e}\n" for o, e in imported))
        assert daemon.cli("blocklist", "import", str(csv_file), "--by", "ops").returncode == 0
        wait_until(lambda: daemon.query(f"CHECK {imported[-1][1]}")[0].startswith("BLOCKED"), timeout=10)
        assert daemon.query(f"CHECK {learnt_address} {learnt_order}")[0].startswith("BLOCKED")
        wait_until(lambda: daemon.query(f"CHECK {learnt_address}")[0].startswith("BLOCKED"), timeout=10)

        plain = [k for pair in [noticed, *imported, (learnt_order, learnt_address)] for k in pair]
        asked = [f"CHECK {k.upper()}" if "@" in k else f"ORDER {k}" for k in plain]
        assert all(r.startswith("BLOCKED ") for r in daemon.query(*asked))  # the C loop where built
        with Client(daemon.socket_path) as client:
            assert all(client.check(k).blocked if "@" in k else client.order(k).blocked for k in plain)
        for key in plain:
            block = f"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient={key if '@' in key else ''}\n\n"
            if "@" in key:
                assert ask_unix(policy, block.encode()).startswith(b"action=") and b"DUNNO" not in ask_unix(policy, block.encode())
            assert b":OK " in ask_unix(socketmap, encode(f"blocklist {key}")), key
        assert daemon.query("CHECK nobody123456789@marketplace.amazon.com") == ["OK"]

        exported = daemon.cli("blocklist", "export", "--csv", check=True).stdout
        assert daemon.cli("blocklist", "remove", imported[0][0], "--reason", "test").returncode == 0
        wait_until(lambda: daemon.query(f"ORDER {imported[0][0]}") == ["OK"], timeout=10)
        daemon.stop()

        rest = _sqlite_rows(tmp_path / "inbox.db") if engine == "sqlite" else _pg_rows(url)
        found = [key for key in plain for form in (key, key.upper()) if form.encode() in rest]
        assert found == [], f"plain keys at rest: {len(found)}"
        assert daemon.stored(noticed[0]).encode() in rest  # the scan reads the rows

        python = _python_path(url, tmp_path / "privacy.key", plain, str(tmp_path / "py.sock"))
        assert [r.split()[0] for r in python] == ["OK" if k in imported[0] else "BLOCKED" for k in plain]  # removed: its row

        daemon.start()  # the export, imported again, blocks what was removed
        (tmp_path / "export.csv").write_text(exported)
        out = daemon.cli("blocklist", "import", str(tmp_path / "export.csv"), "--by", "ops", check=True).stdout
        assert "0 skipped" in out
        wait_until(lambda: daemon.query(f"ORDER {imported[0][0]}")[0].startswith("BLOCKED"), timeout=10)
    finally:
        daemon.ensure_stopped()

    other = DaemonProcess(tmp_path / "other")  # its own database and privacy key
    try:
        assert other.cli("db", "upgrade").returncode == 0
        refused = other.cli("blocklist", "import", str(tmp_path / "export.csv"), "--by", "ops")
        assert "pseudonym made with another privacy key" in refused.stderr
        assert not [k for k in plain if k in refused.stderr + refused.stdout]
    finally:
        other.ensure_stopped()
