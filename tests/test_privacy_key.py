"""The privacy key and the database belong together: a fresh database gets a new key file
(0600) and its check value; a wrong or missing key refuses to start and writes nothing."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from inbox_daemon.privacy import load_keyring, new_keyring
from inbox_daemon.store.engine import make_engine
from tests.conftest import run_async
from tests.support.daemon import DaemonProcess, write_config

NOTICE = Path(__file__).resolve().parents[1] / "examples" / "opt-out-notice.eml"
TABLES = ("raw_messages", "opt_outs", "evidence", "blocklist_changes", "audit_log", "privacy_check")


@pytest.fixture(params=["sqlite", "postgresql"])
def daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    home = tmp_path / "home"
    home.mkdir()
    config = None
    if request.param == "postgresql":
        url = request.getfixturevalue("fresh_pg_url")
        config = write_config(tmp_path / "c.toml", {"database": {"url": url}, "privacy": {"key_file": str(home / "privacy.key")}})
    process = DaemonProcess(home, config)
    yield process
    process.ensure_stopped()


def _url(daemon: DaemonProcess) -> str:
    if daemon.config is not None:
        return daemon.config.read_text().split('"')[1]  # [database] url, the first string
    return f"sqlite:///{daemon.home / 'inbox-daemon.db'}"


async def _rows(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return {t: sorted(map(repr, (await conn.execute(text(f"SELECT * FROM {t}"))).all())) for t in TABLES}
    finally:
        await engine.dispose()


def _snapshot(daemon: DaemonProcess) -> Any:
    """Every row of the tables a start could write, and the SQLite file's bytes."""
    rows = run_async(_rows(_url(daemon)))
    db = daemon.home / "inbox-daemon.db"
    return rows, hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else None


def _first_start(daemon: DaemonProcess) -> Path:
    assert daemon.cli("db", "upgrade").returncode == 0
    key = daemon.home / "privacy.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    daemon.start()
    code, _ = daemon.send(NOTICE.read_bytes())
    assert code == 250
    daemon.wait_event("intake_decision", outcome="opt_out")
    assert daemon.stop() == 0
    return key


def test_a_fresh_database_gets_a_key_and_its_check_value(daemon: DaemonProcess) -> None:
    key = _first_start(daemon)
    rows, _ = _snapshot(daemon)
    (check,) = rows["privacy_check"]
    assert load_keyring(key, create=False).check_value() in check
    daemon.start()  # the same key again: starts
    assert daemon.query("PING") == ["PONG"]


def test_a_wrong_key_refuses_to_start_and_writes_nothing(daemon: DaemonProcess) -> None:
    key = _first_start(daemon)
    key.unlink()
    new_keyring().save(key)
    before = _snapshot(daemon)
    for args in (("serve",), ("blocklist", "remove", "x@marketplace.amazon.com", "--reason", "r"), ("db", "upgrade")):
        refused = daemon.cli(*args)
        assert refused.returncode != 0, args
        assert "is not the key this database was written with" in refused.stderr, args
        assert "refusing to start" in refused.stderr
    assert _snapshot(daemon) == before


def test_a_missing_key_refuses_to_start_and_makes_no_new_one(daemon: DaemonProcess) -> None:
    key = _first_start(daemon)
    key.unlink()
    before = _snapshot(daemon)
    refused = daemon.cli("serve")
    assert refused.returncode != 0
    assert "does not exist" in refused.stderr and "restore that key file" in refused.stderr
    assert not key.exists()
    assert _snapshot(daemon) == before
