"""The listeners' one limits policy on real daemon processes: a flood on the metrics listener
does not take the descriptors SMTP and the query socket need, and a Postfix policy request
trickled a byte at a time is closed at its deadline (more bytes do not extend it)."""

from __future__ import annotations

import random
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from inbox_daemon.client import Client
from inbox_daemon.lookup.limits import raise_descriptor_limit
from tests.support.daemon import EXE, DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address

NOFILE = 1024  # systemd's default LimitNOFILE= soft limit, here the hard one too


def limited_exe(tmp_path: Path) -> str:
    """The daemon under ``prlimit --nofile=1024:1024``: it cannot raise its limit past that."""
    wrapper = tmp_path / "inbox-daemon-1024"
    wrapper.write_text(f'#!/bin/sh\nexec prlimit --nofile={NOFILE}:{NOFILE} -- {EXE} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def flood(address: tuple[str, int], count: int) -> Iterator[socket.socket]:
    """``count`` connections that send nothing and stay open (non-blocking connects)."""
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(address)
        yield sock


def test_a_metrics_flood_leaves_descriptors_for_smtp_and_query(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {"metrics": {"listen": "127.0.0.1:0"}, "query": {"sync_seconds": 0.2},
                                                "smtp": {"recipients": ["optout@sellers.example"]}})
    daemon = DaemonProcess(tmp_path / "home", config, exe=limited_exe(tmp_path))
    held: list[socket.socket] = []
    try:
        daemon.start()
        host, port = daemon.wait_event("metrics.listening")["address"].rsplit(":", 1)
        raise_descriptor_limit()  # this process holds the flood's ends
        held = list(flood((host, int(port)), 1500))  # more than the daemon's whole descriptor limit
        with Client(daemon.socket_path, timeout=20) as client:
            assert client.ping()
        rng = random.Random(7)
        order = order_id(rng)
        assert daemon.send(opt_out_notice(order, relay_address(rng)))[0] == 250
        daemon.wait_event("intake_decision", outcome="opt_out")
        with Client(daemon.socket_path, timeout=20) as client:
            assert client.order(order).blocked
        shares = daemon.wait_event("listener_limits")
        assert shares["metrics"] <= 16 and shares["descriptor_limit"] == NOFILE
    finally:
        for sock in held:
            sock.close()
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
