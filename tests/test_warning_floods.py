"""Floods of a repeated warning, against real daemon processes: each kind is one line at once
and one summary (``log.repeat_seconds``; here longer than the test, so the summary is the one
written at stop), and between them the summary counts every occurrence that was not logged."""

from __future__ import annotations

import os
import random
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.client import Client
from inbox_daemon.lookup.socketmap import encode
from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address
from tests.support.pgcluster import pg_bin, throwaway_cluster

QUIET = 600  # log.repeat_seconds: no summary before the daemon stops


def start(tmp_path: Path, sections: dict[str, dict[str, Any]]) -> DaemonProcess:
    sections = {"log": {"repeat_seconds": QUIET}, "query": {"sync_seconds": 0.2},
                "smtp": {"recipients": ["optout@sellers.example"]}, **sections}
    return DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", sections)).start()


def lines(daemon: DaemonProcess, event: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events if e.get("event") == event]


def told(logged: list[dict[str, Any]]) -> int:
    """How many occurrences the lines account for: each first line its own, plus what was suppressed."""
    return sum((0 if e.get("summary") else e.get("occurrences", 1)) + e["suppressed"] for e in logged)


def one_line_and_a_summary(daemon: DaemonProcess, event: str) -> list[dict[str, Any]]:
    logged = lines(daemon, event)
    assert len(logged) == 2, [e.get("summary") for e in logged][:10]
    assert logged[0]["suppressed"] == 0 and not logged[0].get("summary")
    assert logged[1]["summary"] is True and logged[1]["suppressed"] > 0
    return logged


@pytest.fixture
def mta(tmp_path: Path) -> Iterator[tuple[DaemonProcess, tuple[str, int], tuple[str, int]]]:
    daemon = start(tmp_path, {"postfix": {"policy": "127.0.0.1:0", "socketmap": "127.0.0.1:0", "max_connections": 4}})
    try:
        policy, socketmap = (daemon.wait_event(f"{name}.listening")["address"].rsplit(":", 1)
                             for name in ("policy", "socketmap"))
        yield daemon, (policy[0], int(policy[1])), (socketmap[0], int(socketmap[1]))
    finally:
        daemon.ensure_stopped()


def exchange(address: tuple[str, int], data: bytes, replies: int, end: bytes) -> bytes:
    """Send ``data`` while reading, until ``replies`` replies ending in ``end`` came back."""
    with socket.create_connection(address, timeout=60) as sock:
        sock.setblocking(True)
        got, sent = bytearray(), 0
        sock.settimeout(0.05)
        while got.count(end) < replies:
            if sent < len(data):
                try:
                    sent += sock.send(data[sent : sent + 65536])
                except TimeoutError:
                    pass
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                break
            got += chunk
        return bytes(got)


def test_200_kb_of_bare_newlines_to_the_policy_service_is_two_lines(
    mta: tuple[DaemonProcess, tuple[str, int], tuple[str, int]],
) -> None:
    daemon, policy, _ = mta
    got = exchange(policy, b"\n" * 200_000, 200_000, b"\n\n")
    assert got.count(b"action=DEFER_IF_PERMIT") == 200_000  # each still answered, fail closed
    assert daemon.stop() == 0
    logged = one_line_and_a_summary(daemon, "policy.malformed")
    assert told(logged) == 200_000 and logged[0]["reason"] == "empty attribute block"


def test_malformed_socketmap_requests_are_two_lines(
    mta: tuple[DaemonProcess, tuple[str, int], tuple[str, int]],
) -> None:
    daemon, _, socketmap = mta
    bad = [encode("no-space"), b"4:\xff\xfe\xfd\xfc,", encode("unknown-map x")]
    requests = [bad[i % 2] for i in range(20_000)]  # not '<name> <key>', not UTF-8
    got = exchange(socketmap, b"".join(requests), 20_000, b",")
    assert got.count(b"PERM ") == 20_000
    assert daemon.stop() == 0
    assert told(one_line_and_a_summary(daemon, "socketmap.malformed")) == 20_000


def test_too_many_connections_to_the_policy_service_is_two_lines(
    mta: tuple[DaemonProcess, tuple[str, int], tuple[str, int]],
) -> None:
    daemon, policy, _ = mta
    held = [socket.create_connection(policy, timeout=10) for _ in range(3)]  # one user's cap: ¾ of 4
    try:
        request = b"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=a@marketplace.amazon.com\n\n"
        for sock in held:  # each admitted: answered
            sock.sendall(request)
            assert sock.recv(1024).startswith(b"action=DUNNO")
        for _ in range(500):
            with socket.create_connection(policy, timeout=10) as refused:
                assert refused.recv(1024) == b""  # closed unanswered: Postfix's own default applies
    finally:
        for sock in held:
            sock.close()
    assert daemon.stop() == 0
    refusals = one_line_and_a_summary(daemon, "policy.too_many_connections")
    assert told(refusals) == 500 and {e["limit"] for e in refusals} == {"refused_peer"}


def test_11000_learn_conflicts_from_one_client_are_two_lines(tmp_path: Path) -> None:
    daemon = start(tmp_path, {})
    try:
        rng = random.Random(18)
        order, address, marker_order, marker = order_id(rng), relay_address(rng), order_id(rng), relay_address(rng)
        assert daemon.send(opt_out_notice(order, address))[0] == 250
        assert daemon.send(opt_out_notice(marker_order, None))[0] == 250
        daemon.wait_count("intake_decision", 2)
        others = [relay_address(rng) for _ in range(11_000)]
        with Client(daemon.socket_path, timeout=60) as client:
            assert all(reply.blocked for reply in client.check_many([(other, order) for other in others]))
            # The learner takes requests in order: once the marker is learned, every conflict before it is decided.
            deadline = time.monotonic() + 300
            while not any(e.get("event") == "address_learned" for e in daemon.recent(1 << 30)):
                assert time.monotonic() < deadline, daemon.recent()
                assert client.check(marker, marker_order).blocked  # submitted again if it was dropped
                time.sleep(0.2)  # the learner's pace, not a wait for an event: it logs none per item
        assert daemon.stop() == 0
        conflicts = one_line_and_a_summary(daemon, "learn_conflict")
        assert {e["client"] for e in conflicts} == {f"uid {os.getuid()}"}
        dropped = lines(daemon, "learn_queue_full")  # the learner's queue holds 10,000
        assert len(dropped) <= 2 and told(conflicts) <= 11_000
        assert told(conflicts) + told(dropped) >= 11_000
    finally:
        daemon.ensure_stopped()


def test_deferred_smtp_is_two_lines(tmp_path: Path) -> None:
    if pg_bin() is None:
        pytest.fail("PostgreSQL's initdb is missing (apt-get install postgresql)")
    with throwaway_cluster() as cluster:
        daemon = DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", {
            "database": {"url": cluster.url}, "log": {"repeat_seconds": QUIET},
            "smtp": {"recipients": ["optout@sellers.example"]}}))
        try:
            assert daemon.cli("db", "upgrade").returncode == 0
            daemon.start()
            cluster.stop()  # the database is gone: every DATA is answered 451 and logged smtp_deferred
            rng = random.Random(19)
            codes = []
            with smtplib.SMTP(*daemon.smtp, timeout=60) as client:
                for _ in range(300):
                    try:
                        client.sendmail("fwd@seller.example", ["optout@sellers.example"],
                                        opt_out_notice(order_id(rng), relay_address(rng)))
                        codes.append(250)
                    except smtplib.SMTPResponseException as exc:
                        codes.append(exc.smtp_code)
            assert codes == [451] * 300
            assert daemon.stop() == 0
            assert told(one_line_and_a_summary(daemon, "smtp_deferred")) == 300
        finally:
            daemon.ensure_stopped()
