"""The listeners' one limits policy on real daemon processes: a flood on the metrics listener
does not take the descriptors SMTP and the query socket need, and a Postfix policy request
trickled a byte at a time is closed at its deadline (more bytes do not extend it)."""

from __future__ import annotations

import ast
import os
import random
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from inbox_daemon.client import Client
from inbox_daemon.lookup.limits import LISTEN_BACKLOG, raise_descriptor_limit
from tests.support.daemon import EXE, DaemonProcess, wait_until, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address

NOFILE = 1024  # systemd's default LimitNOFILE= soft limit, here the hard one too
FLOOD_CONNECT_S = 6.0  # a dropped SYN is sent again after 1 s and 3 s
DESCRIPTOR_SLACK = 8  # what the daemon opens meanwhile on its own (database, log), and refusals not yet closed


def limited_exe(tmp_path: Path) -> str:
    """The daemon under ``prlimit --nofile=1024:1024``: it cannot raise its limit past that."""
    wrapper = tmp_path / "inbox-daemon-1024"
    wrapper.write_text(f'#!/bin/sh\nexec prlimit --nofile={NOFILE}:{NOFILE} -- {EXE} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def descriptors(pid: int) -> int:
    """How many descriptors the process holds now."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def flood(address: tuple[str, int], count: int) -> Iterator[socket.socket]:
    """``count`` connections that send nothing and stay open. Each connect completes before the
    next begins, so the daemon has taken the flood in before the test asks anything of it
    (connects left in flight would reach it only after the checks). One that does not
    complete in time means the daemon no longer accepts."""
    for n in range(count):
        try:
            yield socket.create_connection(address, timeout=FLOOD_CONNECT_S)
        except TimeoutError:
            raise AssertionError(f"connection {n + 1} of the flood was not accepted within {FLOOD_CONNECT_S} s: "
                                 "the daemon has stopped accepting") from None


def test_a_metrics_flood_leaves_descriptors_for_smtp_and_query(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {"metrics": {"listen": "127.0.0.1:0"}, "query": {"sync_seconds": 0.2},
                                                "smtp": {"recipients": ["optout@sellers.example"]}})
    daemon = DaemonProcess(tmp_path / "home", config, exe=limited_exe(tmp_path))
    held: list[socket.socket] = []
    try:
        daemon.start()
        host, port = daemon.wait_event("metrics.listening")["address"].rsplit(":", 1)
        shares = daemon.wait_event("listener_limits")
        assert shares["metrics"] <= 16 and shares["descriptor_limit"] == NOFILE
        assert daemon.proc is not None
        before = descriptors(daemon.proc.pid)
        raise_descriptor_limit()  # this process holds the flood's ends
        held.extend(flood((host, int(port)), 1500))  # more than the daemon's whole descriptor limit
        # The flood holds the metrics cap and no more (each refused connection's descriptor is
        # given back at once); a listener without a cap keeps every one for its request deadline.
        wait_until(lambda: descriptors(daemon.proc.pid) - before <= shares["metrics"] + DESCRIPTOR_SLACK, timeout=3,
                   explain=lambda: f"the daemon holds {descriptors(daemon.proc.pid) - before} more descriptors")
        with Client(daemon.socket_path, timeout=20) as client:
            assert client.ping()
        rng = random.Random(7)
        order = order_id(rng)
        assert daemon.send(opt_out_notice(order, relay_address(rng)))[0] == 250
        daemon.wait_event("intake_decision", outcome="opt_out")
        with Client(daemon.socket_path, timeout=20) as client:
            assert client.order(order).blocked
    finally:
        for sock in held:
            sock.close()
        daemon.ensure_stopped()


def test_the_listeners_share_what_the_descriptor_limit_leaves_after_smtp(tmp_path: Path) -> None:
    """At 1,024 descriptors the four listeners want more than there is (query 1,024, Postfix
    256 each, metrics 16): together they get at most what is left after SMTP's reserve, and
    each enforces its own share."""
    config = write_config(tmp_path / "c.toml", {
        "metrics": {"listen": "127.0.0.1:0"}, "smtp": {"recipients": ["optout@sellers.example"]},
        "postfix": {"policy": "127.0.0.1:0", "socketmap": "127.0.0.1:0"}})
    daemon = DaemonProcess(tmp_path / "home", config, exe=limited_exe(tmp_path))
    try:
        daemon.start()
        shares = daemon.wait_event("listener_limits")
        listeners = ("query", "policy", "socketmap", "metrics")
        assert shares["descriptor_limit"] == NOFILE and shares["reserved_for_smtp"] >= 256 + 128
        assert sum(shares[name] for name in listeners) <= NOFILE - shares["reserved_for_smtp"], shares
        assert all(shares[name] >= 4 for name in listeners), shares  # a small listener is not shut out
        assert daemon.wait_event("query.limits")["max_connections"] == shares["query"]
        for name in ("policy", "socketmap"):
            listening = daemon.wait_event(f"{name}.listening")
            assert listening["max_connections"] == shares[name]
            assert listening["max_connections_per_peer"] <= shares[name] - shares[name] // 4
    finally:
        daemon.ensure_stopped()


def test_a_trickled_policy_request_is_closed_at_its_deadline(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {"postfix": {"policy": "127.0.0.1:0", "request_seconds": 0.5}})
    daemon = DaemonProcess(tmp_path / "home", config)
    try:
        daemon.start()
        host, port = daemon.wait_event("policy.listening")["address"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.setblocking(False)
            closed_after = None
            for sent in range(1, 201):  # a byte every 50 ms: 10 s in all, never a whole block
                try:
                    sock.send(b"x")
                    if sock.recv(64) == b"":
                        closed_after = sent
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    closed_after = sent
                    break
                time.sleep(0.05)  # the trickle's pace, part of the attack
            assert closed_after is not None and closed_after < 200
    finally:
        daemon.ensure_stopped()


def listen_backlogs(pid: int) -> dict[str, int]:
    """The kernel's accept-queue limit of each socket ``pid`` listens on (ss(8): Send-Q of a
    listening socket is its backlog), by local address. With both -t and -x, every line
    starts with its Netid: Netid, State, Recv-Q, Send-Q, Local, ..."""
    out = subprocess.run(["ss", "-ltnxpH"], capture_output=True, text=True, check=True).stdout
    return {fields[4]: int(fields[3]) for fields in map(str.split, out.splitlines()) if f"pid={pid}," in fields[-1]}


def test_every_lookup_listener_queues_a_flood_of_connects(tmp_path: Path) -> None:
    """A listen queue of asyncio's default 100 lets one peer reconnecting in a loop fill it,
    and then every other peer's SYN is dropped before any per-peer cap sees it: each lookup
    listener asks the kernel for LISTEN_BACKLOG (within net.core.somaxconn)."""
    config = write_config(tmp_path / "c.toml", {
        "metrics": {"listen": "127.0.0.1:0"}, "smtp": {"recipients": ["optout@sellers.example"]},
        "query": {"tcp": "127.0.0.1:0"}, "postfix": {"policy": "127.0.0.1:0", "socketmap": "127.0.0.1:0"}})
    daemon = DaemonProcess(tmp_path / "home", config)
    try:
        daemon.start()
        assert daemon.proc is not None
        wanted = {daemon.wait_event(f"{name}.listening")["address"] for name in ("policy", "socketmap", "metrics")}
        wanted.add(daemon.socket_path)
        host, port = ast.literal_eval(next(e["tcp"] for e in daemon.events if e.get("event") == "query.listening" and "tcp" in e))
        wanted.add(f"{host}:{port}")
        backlogs = listen_backlogs(daemon.proc.pid)
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert wanted <= backlogs.keys(), (wanted, backlogs)
        assert all(backlogs[address] == min(LISTEN_BACKLOG, somaxconn) for address in wanted), backlogs
    finally:
        daemon.ensure_stopped()
