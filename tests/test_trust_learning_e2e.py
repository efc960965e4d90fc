"""What a query client may teach the blocklist with ``CHECK <address> <order>``: a real daemon
process, its Unix socket and TCP listener, the CLI reading the audit trail.

Only relay addresses inside ``security.relay_domains``, only onto an opt-out without an address
(another address is held for review, not merged), every change audited with the client's
identity (SO_PEERCRED uid on the Unix socket, address on TCP); ``query.learn_addresses`` off
turns it off.
"""

from __future__ import annotations

import json
import os
import random
import socket
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address


def make_daemon(tmp_path: Path, query: dict[str, Any]) -> DaemonProcess:
    sections = {"smtp": {"recipients": ["optout@sellers.example"]}, "query": {"sync_seconds": 0.2, **query}}
    return DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", sections))


def ask_tcp(address: str, line: str) -> str:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"{line}\n".encode())
        return sock.makefile("rb").readline().decode().strip()


def test_learning_is_narrow_audited_and_held_on_conflict(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, {"tcp": "127.0.0.1:0"})
    try:
        ready = daemon.start().wait_event("ready")
        rng = random.Random(60)
        first, second = order_id(rng), order_id(rng)
        relay, other, via_tcp = relay_address(rng), relay_address(rng), relay_address(rng)
        for order in (first, second):
            assert daemon.send(opt_out_notice(order, None))[0] == 250  # Amazon names only the order
        daemon.wait_count("intake_decision", 2)

        # A stranger's own address: answered (the order is blocked), never recorded.
        assert daemon.query(f"CHECK ceo@competitor.example {first}")[0].startswith("BLOCKED")
        refused = daemon.wait_event("learn_refused")
        assert refused["domain"] == "competitor.example" and refused["client"] == f"uid {os.getuid()}"
        assert daemon.query("CHECK ceo@competitor.example") == ["OK"]

        assert daemon.query(f"CHECK {relay} {first}")[0].startswith("BLOCKED")
        assert daemon.wait_event("address_learned")["client"] == f"uid {os.getuid()}"
        assert daemon.query(f"CHECK {relay}")[0].startswith("BLOCKED")

        # Another address for the same order: a conflict, held for review, not merged.
        assert daemon.query(f"CHECK {other} {first}")[0].startswith("BLOCKED")
        daemon.wait_event("learn_conflict", address=daemon.tag(other))
        assert daemon.query(f"CHECK {other}") == ["OK"]

        # Over loopback TCP too the client is its user (every local user connects from 127.0.0.1).
        assert ask_tcp(ready["query_tcp"], f"CHECK {via_tcp} {second}").startswith("BLOCKED")
        assert daemon.wait_event("address_learned", address=daemon.tag(via_tcp))["client"] == f"uid {os.getuid()}"

        trail = daemon.cli("audit", check=True).stdout
        assert f"\tquery uid {os.getuid()}\tlearn\t{daemon.stored(relay)}\t" in trail  # pseudonyms, never the keys
        assert f"\tquery uid {os.getuid()}\tlearn_conflict\t{daemon.stored(other)}\t" in trail
        assert f"\tquery uid {os.getuid()}\tlearn\t{daemon.stored(via_tcp)}\t" in trail
        assert not [key for key in (relay, other, via_tcp, first, second) if key in trail]
        assert "competitor.example" not in trail
        logged = [json.dumps(e) for e in daemon.events if e.get("level") in ("info", "warning")]
        assert not [line for line in logged for key in (relay, other, via_tcp, first, second) if key in line]
        shown = daemon.cli("blocklist", "show", first, check=True).stdout
        assert f"address: {daemon.stored(relay)} learned from CHECK by query uid {os.getuid()}" in shown
        assert f"held for review: {daemon.stored(other)} named by CHECK from query uid {os.getuid()}" in shown
        noticed_order, noticed = order_id(rng), relay_address(rng)
        assert daemon.send(opt_out_notice(noticed_order, noticed))[0] == 250
        daemon.wait_event("intake_decision", outcome="opt_out", buyers_new=1)
        assert f"address: {daemon.stored(noticed)} from notice evidence" in daemon.cli("blocklist", "show", noticed_order).stdout
    finally:
        daemon.ensure_stopped()


def test_learning_switched_off_records_nothing(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, {"learn_addresses": False})
    try:
        daemon.start()
        rng = random.Random(61)
        order, relay = order_id(rng), relay_address(rng)
        assert daemon.send(opt_out_notice(order, None))[0] == 250
        daemon.wait_event("intake_decision", outcome="opt_out")
        assert daemon.query(f"CHECK {relay} {order}")[0].startswith("BLOCKED")
        assert daemon.stop() == 0  # stopping drains whatever learning was queued
        assert not [e for e in daemon.events if e.get("event", "").startswith(("address_learned", "learn"))]
        shown = daemon.cli("blocklist", "show", order, check=True).stdout
        assert "address:" not in shown and relay not in shown
    finally:
        daemon.ensure_stopped()
