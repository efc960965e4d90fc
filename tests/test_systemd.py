"""systemd integration through real processes: a real notify socket (READY, STATUS, WATCHDOG,
EXTEND_TIMEOUT_USEC, RELOADING, STOPPING), sockets handed over as fds 3.. the way systemd does,
SIGHUP reloads; and the unit files judged by systemd-analyze itself."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inbox_daemon import systemd
from inbox_daemon.config import load_config
from inbox_daemon.reload import plan_reload
from tests.support.daemon import EXE, DaemonProcess, wait_until, write_config
from tests.support.installed import EXAMPLE, EXAMPLE_KEYS
from tests.support.notices import opt_out_notice

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = ("inbox-daemon.service", "inbox-daemon.socket", "inbox-daemon-smtp.socket")
ANALYZE = shutil.which("systemd-analyze")
MAX_EXPOSURE = 2.0


class NotifySocket:
    """The receiving end of $NOTIFY_SOCKET, as systemd binds it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen: list[str] = []

    def next(self, timeout: float = 30.0) -> str:
        self.sock.settimeout(timeout)
        message = self.sock.recv(4096).decode()
        self.seen.append(message)
        return message

    def until(self, wanted: Callable[[str], bool], timeout: float = 30.0) -> str:
        """The first message ``wanted`` accepts; the others are kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            if wanted(message):
                return message

    def drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                self.seen.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def has(field: str) -> Callable[[str], bool]:
    return lambda message: field in message.split("\n")


# -- the unit files ------------------------------------------------------------------------------


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_unit_exposure_is_at_most_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert ANALYZE is not None
    out = subprocess.run([ANALYZE, "security", "--offline=yes", str(DEPLOY / "inbox-daemon.service")],
                         capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for inbox-daemon\.service: (\d+\.\d+)", out.stdout)
    assert found, out.stdout[-2000:] + out.stderr
    exposure = float(found.group(1))
    with capsys.disabled():  # shown in every run, not only when the test fails
        print(f"\nsystemd-analyze security --offline=yes deploy/inbox-daemon.service: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_units_verify_clean(tmp_path: Path) -> None:
    """``systemd-analyze verify`` checks that ExecStart= exists: the copies point at this venv's
    ``inbox-daemon`` instead of /opt/inbox-daemon/bin/inbox-daemon, nothing else changes."""
    assert ANALYZE is not None
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace("/opt/inbox-daemon/bin/inbox-daemon", EXE)
        (tmp_path / name).write_text(text)
    out = subprocess.run([ANALYZE, "verify", *(str(tmp_path / n) for n in UNITS)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_units_name_the_sockets_the_daemon_takes() -> None:
    """FileDescriptorName= of each socket unit is a name the daemon serves, and the service
    takes both units, reloads, has a watchdog and a file-descriptor limit."""
    names = {re.search(r"^FileDescriptorName=(\S+)", (DEPLOY / n).read_text(), re.M).group(1)  # type: ignore[union-attr]
             for n in UNITS[1:]}
    assert names == {"smtp", "query"}
    service = (DEPLOY / "inbox-daemon.service").read_text()
    for line in ("Sockets=inbox-daemon.socket inbox-daemon-smtp.socket", "ExecReload=/bin/kill -HUP $MAINPID",
                 "Type=notify", "NotifyAccess=main", "CapabilityBoundingSet=\n"):
        assert line in service
    assert re.search(r"^WatchdogSec=\d+s$", service, re.M) and re.search(r"^LimitNOFILE=\d+$", service, re.M)
    config = load_config(DEPLOY / "config.example.toml", environ={})
    listen = re.search(r"^ListenStream=(\S+)", (DEPLOY / "inbox-daemon.socket").read_text(), re.M)
    assert listen is not None and listen.group(1) == config.query_socket  # where `check` connects


def logged_events() -> set[str]:
    """Every event name the package logs: the string a ``log.info("name", ...)`` call starts with."""
    names = set()
    for path in (ROOT / "inbox_daemon").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("debug", "info", "warning", "error", "exception", "critical")
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names.add(node.args[0].value)
    return names


def test_every_log_event_is_explained_in_deploy_readme() -> None:
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", (DEPLOY / "README.md").read_text(), re.M))
    missing = logged_events() - documented
    assert not missing, f"add a row to the Log events table of deploy/README.md for: {sorted(missing)}"
    assert len(logged_events()) > 20  # the scan finds the package's events at all


# -- the notification protocol, in-process -----------------------------------------------------


def test_notify_without_socket_is_a_no_op_and_abstract_names_work(tmp_path: Path) -> None:
    assert systemd.notify("READY=1", environ={}) is False
    name = f"inbox-daemon-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(10)
        assert systemd.notify("STATUS=x", "WATCHDOG=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert receiver.recv(100) == b"STATUS=x\nWATCHDOG=1"
    assert systemd.notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_watchdog_interval_is_half_the_timeout_and_only_for_this_process() -> None:
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert systemd.watchdog_interval({}) is None


def test_listen_fds_only_for_this_process_and_unset_afterwards() -> None:
    env = {"LISTEN_FDS": "2", "LISTEN_PID": "1", "LISTEN_FDNAMES": "smtp:query"}
    assert systemd.listen_fds(env) == {}  # meant for another process: fds 3 and 4 are not ours
    assert env == {}
    assert systemd.listen_fds({"LISTEN_FDS": "many", "LISTEN_PID": str(os.getpid())}) == {}


def test_start_timeout_is_extended_again_and_again_while_the_body_runs(notify_socket: NotifySocket) -> None:
    """A start step longer than one extension keeps renewing it, from the loop, until it ends."""
    env = {"NOTIFY_SOCKET": notify_socket.path}

    async def long_load() -> None:
        async with systemd.extend_start_timeout(step=0.05, environ=env):
            for _ in range(4):  # the body ends only once four requests have come in
                await asyncio.to_thread(notify_socket.until, has("EXTEND_TIMEOUT_USEC=50000"), 10)

    asyncio.run(asyncio.wait_for(long_load(), 30))
    assert len([m for m in notify_socket.seen if has("EXTEND_TIMEOUT_USEC=50000")(m)]) == 4


def test_reload_applies_log_level_and_security_and_reports_the_rest(tmp_path: Path) -> None:
    before = load_config(write_config(tmp_path / "a.toml", {"log": {"level": "info"}}), environ={})
    after = load_config(write_config(tmp_path / "b.toml", {
        "log": {"level": "debug", "format": "console"},
        "security": {"require_registered_forwarder": True, "relay_domains": ["marketplace.amazon.de"]},
        "query": {"idle_seconds": 5},
    }), environ={})
    plan = plan_reload(before, after)
    assert set(plan.applied) == {"log.level", "security.require_registered_forwarder", "security.relay_domains"}
    assert set(plan.ignored) == {"log.format", "query.idle_seconds"}
    assert plan.config.log.level == "debug" and plan.config.security == after.security
    assert plan.config.log.format == before.log.format and plan.config.query == before.query


# -- a real daemon on a real notify socket -----------------------------------------------------


@pytest.fixture
def daemon(tmp_path: Path, notify_socket: NotifySocket) -> Iterator[DaemonProcess]:
    stall = tmp_path / "stall"
    stall.mkdir()
    os.mkfifo(stall / "release")
    proc = DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", {"log": {"level": "info"}}), env={
        "NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000",
        "PYTHONPATH": str(ROOT / "tests" / "support" / "loop_stall"), "STALL_DIR": str(stall)})
    yield proc
    proc.ensure_stopped()


def test_ready_after_start_up_extension_status_counts_and_stopping(daemon: DaemonProcess, notify_socket: NotifySocket) -> None:
    daemon.start()
    notify_socket.until(has("READY=1"))
    assert any("EXTEND_TIMEOUT_USEC=30000000" in m for m in notify_socket.seen[:-1])  # asked during the index load
    assert daemon.query("PING") == ["PONG"]  # ready means answering
    assert daemon.send(EXAMPLE.read_bytes())[0] == 250
    status = notify_socket.until(lambda m: "1 opt-outs" in m)
    assert re.search(r"STATUS=2 blocked keys; 1 messages: 1 opt-outs, 0 held, 0 errors; \d+ query connections", status)
    assert daemon.stop() == 0
    notify_socket.until(has("STOPPING=1"))


def test_watchdog_pings_come_from_the_loop_and_stop_while_it_stalls(
    daemon: DaemonProcess, notify_socket: NotifySocket, tmp_path: Path
) -> None:
    stall = tmp_path / "stall"
    daemon.start()
    for _ in range(3):
        notify_socket.until(has("WATCHDOG=1"))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGUSR1)  # tests/support/loop_stall: the loop's thread blocks
    wait_until(lambda: (stall / "stalled").exists(), timeout=30)
    notify_socket.drain()  # pings sent before the stall began
    with pytest.raises(TimeoutError):  # 5 watchdog periods, the loop blocked: no ping at all
        notify_socket.next(timeout=1.0)
    with open(stall / "release", "wb") as fifo:  # the handler returns, the loop turns again
        fifo.write(b"go")
    notify_socket.until(has("WATCHDOG=1"))
    assert daemon.query("PING") == ["PONG"]
    assert daemon.stop() == 0


# -- socket activation -------------------------------------------------------------------------

ACTIVATE = """#!/bin/bash
# Hand over as systemd does: the listening sockets at fds 3 and 4, LISTEN_PID = the daemon's pid.
exec 3<&"$SMTP_FD" 4<&"$QUERY_FD" {SMTP_FD}<&- {QUERY_FD}<&-
export LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=smtp:query
exec "$DAEMON_EXE" "$@"
"""


def test_inherited_sockets_serve_clients_that_connected_before_the_daemon(tmp_path: Path) -> None:
    smtp = socket.create_server(("127.0.0.1", 0), backlog=16)
    query = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    query_path = str(tmp_path / "q.sock")  # not the configured query.socket: the inherited one wins
    query.bind(query_path)
    query.listen(16)
    script = tmp_path / "activate"
    script.write_text(ACTIVATE)
    script.chmod(0o755)
    env = {"SMTP_FD": str(smtp.fileno()), "QUERY_FD": str(query.fileno()), "DAEMON_EXE": EXE}
    early_query = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    early_query.connect(query_path)  # queued in the kernel: nobody accepts yet
    early_query.sendall(b"PING\n")
    early_smtp = socket.create_connection(smtp.getsockname(), timeout=30)
    first = DaemonProcess(tmp_path / "home", env=env, exe=str(script))
    first.pass_fds = (smtp.fileno(), query.fileno())
    second = DaemonProcess(tmp_path / "home", env=env, exe=str(script))
    second.pass_fds = first.pass_fds
    try:
        ready = first.start().wait_event("ready")
        assert ready["socket_activated"] == ["query", "smtp"] and ready["query_socket"] == query_path
        assert first.smtp == smtp.getsockname()
        early_query.settimeout(30)
        assert early_query.recv(100) == b"PONG\n"
        assert early_smtp.recv(100).startswith(b"220 ")
        early_smtp.close()
        assert first.send(EXAMPLE.read_bytes())[0] == 250
        first.wait_event("intake_decision", outcome="opt_out")
        assert first.stop() == 0
        # a restart: the socket stays (systemd's), a client that connects meanwhile waits
        between = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        between.connect(query_path)
        between.sendall(f"CHECK {EXAMPLE_KEYS[0]}\n".encode())
        second.start()
        between.settimeout(30)
        assert between.recv(100).startswith(b"BLOCKED ")
        between.close()
        assert second.stop() == 0
    finally:
        first.ensure_stopped()
        second.ensure_stopped()
        for sock in (early_query, early_smtp, smtp, query):
            sock.close()


# -- SIGHUP ------------------------------------------------------------------------------------


def test_sighup_changes_log_level_and_forwarder_rules_without_dropping_connections(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    path = tmp_path / "c.toml"
    write_config(path, {"log": {"level": "info"}, "security": {"require_registered_forwarder": False}})
    daemon = DaemonProcess(tmp_path / "home", path, env={"NOTIFY_SOCKET": notify_socket.path})
    try:
        daemon.start()
        held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a sender tool's long-lived connection
        held.settimeout(30)
        held.connect(daemon.socket_path)
        held.sendall(b"PING\n")
        assert held.recv(100) == b"PONG\n"
        mta = smtplib.SMTP(*daemon.smtp, timeout=30)  # an MTA's cached connection
        mta.ehlo("mta.example")
        assert daemon.send(opt_out_notice("222-0000001-0000001", None))[0] == 250
        daemon.wait_event("intake_decision", outcome="opt_out")
        assert not [e for e in daemon.events if e["event"] == "smtp_stored"]  # a debug event

        write_config(path, {"log": {"level": "debug"}, "query": {"idle_seconds": 30}, "security": {
            "require_registered_forwarder": True, "forwarder_rate_per_hour": 50,
            "relay_domains": ["marketplace.amazon.*", "relay.example"]}})
        notify_socket.drain()
        daemon.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        reloaded = daemon.wait_event("config_reloaded")
        assert set(reloaded["applied"]) == {"log.level", "security.require_registered_forwarder",
                                            "security.forwarder_rate_per_hour", "security.relay_domains"}
        assert reloaded["ignored_until_restart"] == ["query.idle_seconds"]
        notify_socket.until(has("READY=1"))
        assert any(has("RELOADING=1")(m) for m in notify_socket.seen)

        held.sendall(b"PING\n")  # the same connection answers
        assert held.recv(100) == b"PONG\n"
        assert mta.sendmail("fwd@stranger.example", ["optout@sellers.example"],
                            opt_out_notice("222-0000002-0000002", None)) == {}
        mta.quit()
        daemon.wait_event("smtp_stored")  # debug now logged
        decision = daemon.wait_event("intake_decision", outcome="quarantined")
        assert decision["reason"].startswith("no seller identity")  # docs/threat-model.md
        # The address learner follows the reloaded relay domains too.
        assert daemon.query("CHECK k3v9qz2mw7hxr4t@relay.example 222-0000001-0000001")[0].startswith("BLOCKED")
        assert daemon.wait_event("address_learned")["address"] == daemon.tag("k3v9qz2mw7hxr4t@relay.example")

        path.write_text("[log\nlevel = ")  # a broken file changes nothing
        daemon.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        assert "not valid TOML" in daemon.wait_event("reload_failed")["error"]
        held.sendall(b"PING\n")
        assert held.recv(100) == b"PONG\n"
        held.close()
        assert daemon.stop() == 0
    finally:
        daemon.ensure_stopped()
