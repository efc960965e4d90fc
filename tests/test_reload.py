"""A reload (SIGHUP) is all or nothing and never lowers trust without saying so, against real
daemon processes: a half-written or empty file, a missing DKIM keys file and a config file
others may write are refused and keep the running settings (a forged notice is still held);
each weakened ``[security]`` setting is logged; a SIGHUP during start-up is applied once ready."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from inbox_daemon.config import SecurityConfig, load_config
from inbox_daemon.daemon import Daemon
from inbox_daemon.reload import weakened
from tests.support.daemon import EXE, DaemonProcess, wait_until, write_config
from tests.support.notices import notice_message_id, opt_out_notice

ROOT = Path(__file__).resolve().parents[1]
GUARDED = {"log": {"level": "info"}, "smtp": {"recipients": ["optout@sellers.example"]},
           "security": {"require_registered_forwarder": True, "relay_domains": ["marketplace.amazon.*"]}}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "c.toml", GUARDED)


@pytest.fixture
def daemon(tmp_path: Path, config: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "home", config, env={"PYTHONPATH": str(ROOT)})
    yield proc
    proc.ensure_stopped()


def hup(daemon: DaemonProcess) -> None:
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)


def reload_outcome(daemon: DaemonProcess, seen: int) -> dict[str, Any]:
    """The first reload_failed or config_reloaded after the ``seen`` earlier ones."""
    events = daemon._wait(lambda e: e.get("event") in ("reload_failed", "config_reloaded"), seen + 1, 30, "reload")
    return events[seen]


def forged_is_held(daemon: DaemonProcess, order: str) -> None:
    """A notice from an unregistered forwarder: held while only sellers' notices apply."""
    assert daemon.send(opt_out_notice(order, None), sender="attacker@evil.example")[0] == 250
    decision = daemon.wait_event("intake_decision", message_id=daemon.message_tag(notice_message_id(order)))
    assert decision["outcome"] == "quarantined", decision
    assert daemon.query(f"ORDER {order}") == ["OK"]


def test_an_empty_or_half_written_file_is_refused_and_forged_notices_stay_held(
    daemon: DaemonProcess, config: Path
) -> None:
    daemon.start()
    forged_is_held(daemon, "222-0000001-0000001")
    cases = [
        ("", "sets nothing"),  # truncated to nothing, as an editor's write can leave it for a moment
        ('[log]\nlevel = "info"\n', "no longer sets security.relay_domains, security.require_registered_forwarder"),
        ('[log]\nlevel = "info"\n[smtp]\nrecipients = ["optout@sellers.example"]\n[security]\n'
         'require_registered_forwarder = true\n', "no longer sets security.relay_domains"),
    ]
    for n, (text, reason) in enumerate(cases):
        config.write_text(text)
        hup(daemon)
        outcome = reload_outcome(daemon, n)
        assert outcome["event"] == "reload_failed" and reason in outcome["error"], outcome
        forged_is_held(daemon, f"222-0000001-000001{n}")
    assert not [e for e in daemon.events if e.get("event") == "trust_weakened" and e.get("when") == "reload"]


def test_a_reload_that_weakens_trust_names_each_setting(daemon: DaemonProcess, config: Path) -> None:
    daemon.start()
    at_start = [e for e in daemon.events if e.get("event") == "trust_weakened"]
    assert at_start == []  # the file is as strict as the production stance
    write_config(config, {"log": {"level": "info"}, "smtp": {"recipients": ["optout@sellers.example"]}, "security": {
        "require_registered_forwarder": False, "relay_domains": ["marketplace.amazon.*", "relay.example"],
        "trusted_relays": ["10.0.0.0/8"], "max_buyers_per_notice": 200}})
    hup(daemon)
    assert reload_outcome(daemon, 0)["event"] == "config_reloaded"
    weakened = {e["key"]: e for e in daemon.events if e.get("event") == "trust_weakened"}
    assert set(weakened) == {"security.require_registered_forwarder", "security.relay_domains",
                             "security.trusted_relays", "security.max_buyers_per_notice"}
    assert all(e["level"] == "warning" and e["when"] == "reload" for e in weakened.values())
    assert weakened["security.max_buyers_per_notice"]["was"] == "25"


def test_the_embedded_defaults_say_at_start_that_anyone_may_add(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "home")
    try:
        daemon.start()
        (event,) = [e for e in daemon.events if e.get("event") == "trust_weakened"]
        assert event["key"] == "security.require_registered_forwarder" and event["when"] == "start"
        assert event["level"] == "warning"
    finally:
        daemon.ensure_stopped()


def test_a_reload_whose_dkim_keys_file_is_missing_changes_nothing(daemon: DaemonProcess, config: Path,
                                                                   tmp_path: Path) -> None:
    daemon.start()
    missing = tmp_path / "no-such-keys"
    write_config(config, {**GUARDED, "log": {"level": "debug"},
                          "security": {**GUARDED["security"], "dkim_keys_file": str(missing)}})
    hup(daemon)
    outcome = reload_outcome(daemon, 0)
    assert outcome["event"] == "reload_failed" and "security.dkim_keys_file" in outcome["error"], outcome
    assert daemon.send(opt_out_notice("222-0000002-0000001", None))[0] == 250
    daemon.wait_event("intake_decision", outcome="quarantined")
    assert not [e for e in daemon.events if e.get("level") == "debug"]  # log.level was not half-applied
    assert not [e for e in daemon.events if e.get("event") in ("task_died", "text")]  # no stray traceback
    assert daemon.query("PING") == ["PONG"]


def serve_once(config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INBOX_DAEMON_HOME": str(home), "INBOX_DAEMON_SMTP_PORT": "0"}
    return subprocess.run([EXE, "serve", "--config", str(config)], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("how", ["group-writable", "world-writable", "another-user"])
def test_a_config_file_others_may_write_is_refused_at_start(config: Path, tmp_path: Path, how: str) -> None:
    if how == "another-user":
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file away")
        os.chown(config, 65534, -1)
    else:
        config.chmod(0o664 if how == "group-writable" else 0o646)
    proc = serve_once(config, tmp_path / "home")
    assert proc.returncode == 78, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert str(config) in line and ("writable by others" in line or "belongs to uid 65534" in line), line


def test_a_config_file_made_writable_by_others_is_refused_at_reload(daemon: DaemonProcess, config: Path) -> None:
    daemon.start()
    write_config(config, {**GUARDED, "security": {**GUARDED["security"], "require_registered_forwarder": False}})
    config.chmod(0o666)
    hup(daemon)
    outcome = reload_outcome(daemon, 0)
    assert outcome["event"] == "reload_failed" and "writable by others" in outcome["error"], outcome
    forged_is_held(daemon, "222-0000003-0000001")


def test_a_sighup_during_start_up_is_applied_once_ready(tmp_path: Path, config: Path) -> None:
    stall = tmp_path / "stall"
    stall.mkdir()
    os.mkfifo(stall / "release")
    sections = {**GUARDED, "parser": {"module": "tests.support.import_stall"}}
    write_config(config, sections)
    daemon = DaemonProcess(tmp_path / "home", config, env={"PYTHONPATH": str(ROOT), "IMPORT_STALL_DIR": str(stall)})
    started: list[BaseException | None] = []

    def start() -> None:
        try:
            daemon.start(timeout=60)
            started.append(None)
        except BaseException as exc:  # reported by the test thread below
            started.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    try:
        wait_until(lambda: (stall / "importing").exists(), timeout=30)  # serve is reading its config
        write_config(config, {**sections, "log": {"level": "debug"}})
        hup(daemon)  # systemctl reload while the daemon starts
        with open(stall / "release", "wb") as fifo:
            fifo.write(b"go")
        thread.join(90)
        assert started == [None], started
        reloaded = daemon.wait_event("config_reloaded")
        assert reloaded["applied"] == ["log.level"]
        assert daemon.query("PING") == ["PONG"]
        assert daemon.stop() == 0
    finally:
        if thread.is_alive():  # the daemon died or hung in its stall: let the import go on
            try:
                os.close(os.open(stall / "release", os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(30)
        daemon.ensure_stopped()


def test_a_sighup_while_the_parts_start_waits_for_ready(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    """A SIGHUP that comes once the loop handles signals but before the parts it would reload
    exist (here during the index load): deferred, then applied once, after ``ready``."""
    for name, value in {"INBOX_DAEMON_HOME": str(tmp_path / "home"), "INBOX_DAEMON_SMTP_PORT": "0",
                        "INBOX_DAEMON_WEB_LISTEN": "127.0.0.1:0"}.items():
        monkeypatch.setenv(name, value)
    write_config(config, {**GUARDED, "parser": {"workers": 0}})
    load_index = Daemon._load_index

    async def hup_while_loading(self: Daemon) -> Any:
        write_config(config, {**GUARDED, "parser": {"workers": 0}, "log": {"level": "debug"}})
        os.kill(os.getpid(), signal.SIGHUP)  # systemctl reload while the daemon starts
        await until_logged(logs, "reload_deferred", "config_reloaded", "reload_failed")
        return await load_index(self)

    async def until_logged(logs: list[dict[str, Any]], *events: str) -> None:
        while not any(e["event"] in events for e in logs):
            await asyncio.sleep(0.01)  # the signal is taken on the loop's next turn

    async def main() -> None:
        daemon = Daemon(load_config(str(config)))
        running = asyncio.create_task(daemon.run())
        try:
            await asyncio.wait_for(until_logged(logs, "config_reloaded", "reload_failed"), 15)
        finally:
            daemon.stop_event.set()
            assert await running == 0

    monkeypatch.setattr(Daemon, "_load_index", hup_while_loading)
    with structlog.testing.capture_logs() as logs:
        run(main(), 60)
    events = [e["event"] for e in logs]
    assert events.index("reload_deferred") < events.index("ready") < events.index("config_reloaded"), events
    assert events.count("config_reloaded") == 1 and "reload_failed" not in events
    assert [e["applied"] for e in logs if e["event"] == "config_reloaded"] == [["log.level"]]


def test_which_changes_weaken_trust_and_which_do_not() -> None:
    strict = SecurityConfig(require_registered_forwarder=True, require_dkim=True, trusted_relays=("10.0.0.0/8",),
                            forwarder_rate_per_hour=200, relay_domains=("marketplace.amazon.*",))

    def keys(**changes: Any) -> list[str]:
        return [w.key for w in weakened(strict, SecurityConfig(**{**strict.__dict__, **changes}))]

    assert keys() == []
    assert keys(trusted_relays=("10.1.0.0/16",), relay_domains=("marketplace.amazon.de",), forwarder_rate_per_hour=50,
                max_buyers_per_notice=5) == []  # narrower, lower: stricter
    assert keys(require_dkim=False) == ["security.require_dkim"]
    assert keys(trusted_relays=("10.0.0.0/8", "192.0.2.1")) == ["security.trusted_relays"]
    assert keys(trusted_relays=("0.0.0.0/0",)) == ["security.trusted_relays"]
    assert keys(forwarder_rate_per_hour=0) == ["security.forwarder_rate_per_hour"]  # no cap at all
    assert keys(forwarder_rate_per_hour=201) == ["security.forwarder_rate_per_hour"]
    assert keys(trusted_arc_sealers=("sealer.example",)) == ["security.trusted_arc_sealers"]
    assert keys(dkim_domains=("*",)) == ["security.dkim_domains"]
