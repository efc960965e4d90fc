"""SMTP intake in a process of its own (``intake/smtp_process.py``), through a real daemon, a
real smtplib client and real signals: what it acknowledges is applied by the parent, its death
ends the daemon non-zero with nothing lost, the parent's death ends it, and signals meant for
the whole unit do not stop it before the parent says so."""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _listener_of(port: int, among: list[int]) -> int | None:
    """Which of ``among`` holds the listening socket of ``port`` (its inode in /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
            inodes.add(parts[9])
    for pid in among:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if any(link == f"socket:[{inode}]" for link in links for inode in inodes):
            return pid
    return None


def _smtp_child(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    child = _listener_of(daemon.smtp[1], _children(daemon.proc.pid))
    assert child is not None, "no child process of the daemon holds the SMTP socket"
    return child


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    proc = DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", {"smtp": {"own_process": True}}))
    yield proc.start()
    proc.ensure_stopped()


def test_a_child_process_holds_the_smtp_socket_and_what_it_acknowledges_is_blocked(daemon: DaemonProcess) -> None:
    assert daemon.proc is not None
    child = _smtp_child(daemon)
    assert child != daemon.proc.pid
    rng = random.Random(31)
    sent = [(order_id(rng), relay_address(rng)) for _ in range(5)]
    for order, buyer in sent:
        code, text = daemon.send(opt_out_notice(order, buyer))
        assert code == 250, text
    daemon.wait_count("intake_decision", len(sent))
    answers = daemon.query(*(f"CHECK {buyer} {order}" for order, buyer in sent))
    assert all(a.startswith("BLOCKED ") for a in answers), answers
    stats = daemon.query("STATS")[0]
    assert '"messages":5' in stats and '"notices":5' in stats, stats


def test_signals_for_the_whole_unit_leave_the_child_to_the_parent(daemon: DaemonProcess) -> None:
    """systemd's stop sends SIGTERM to every process of the unit: the child keeps serving until
    the parent, stopping, tells it to stop; then both are gone and the parent exits 0."""
    child = _smtp_child(daemon)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        os.kill(child, sig)
    rng = random.Random(32)
    code, text = daemon.send(opt_out_notice(order_id(rng), relay_address(rng)))
    assert code == 250, text
    daemon.wait_event("intake_decision", outcome="opt_out")
    assert daemon.stop() == 0
    assert _gone(child, 10)


def test_a_killed_smtp_process_ends_the_daemon_non_zero_and_a_restart_applies_what_it_acknowledged(
    daemon: DaemonProcess,
) -> None:
    rng = random.Random(33)
    sent = [(order_id(rng), relay_address(rng)) for _ in range(3)]
    for order, buyer in sent:
        assert daemon.send(opt_out_notice(order, buyer))[0] == 250
    os.kill(_smtp_child(daemon), signal.SIGKILL)
    daemon.wait_event("smtp_process_ended", timeout=10)
    daemon.wait_event("stopped", timeout=10)
    assert daemon.stop(timeout=10) == 1  # it has exited by itself: stop only collects the code
    daemon.start()
    deadline = time.monotonic() + 30
    while not all(a.startswith("BLOCKED ") for a in daemon.query(*(f"ORDER {o}" for o, _ in sent))):
        assert time.monotonic() < deadline, daemon.recent()
        time.sleep(0.05)


def test_a_killed_daemon_leaves_no_smtp_process_and_frees_the_port(daemon: DaemonProcess) -> None:
    child = _smtp_child(daemon)
    port = daemon.smtp[1]
    daemon.kill()
    assert _gone(child, 10), "the SMTP process outlived its parent"
    with socket.socket() as sock:  # the port can be bound again at once (a restart would)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_own_process_false_serves_smtp_on_the_daemons_own_loop(tmp_path: Path) -> None:
    proc = DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", {"smtp": {"own_process": False}}))
    proc.start()
    try:
        assert proc.proc is not None
        assert _listener_of(proc.smtp[1], [proc.proc.pid]) == proc.proc.pid
        rng = random.Random(34)
        order, buyer = order_id(rng), relay_address(rng)
        assert proc.send(opt_out_notice(order, buyer))[0] == 250
        proc.wait_event("intake_decision", outcome="opt_out")
        assert proc.query(f"ORDER {order}")[0].startswith("BLOCKED ")
    finally:
        proc.ensure_stopped()
