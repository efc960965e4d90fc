"""A real Postfix enforces the blocklist: the policy service, the socketmap table and ``postmap -q``.

One throwaway Postfix (tests/support/postfix.py) with three smtpd listeners: the outbound one
with ``check_policy_service``, one with ``check_recipient_access socketmap:...:blocklist``, and
the order-critical submission service without either (deploy/postfix/master.cf).
"""

from __future__ import annotations

import smtplib
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.lookup.socketmap import encode
from tests.support.daemon import DaemonProcess, write_config
from tests.support.postfix import PostfixInstance, free_port, require_postfix
from tests.support.seeding import seed_blocklist

EXEMPT = "orders@seller.example"


@dataclass
class Rig:
    daemon: DaemonProcess
    postfix: PostfixInstance
    policy: int  # the daemon's ports
    socketmap: int
    outbound: int  # Postfix's smtpd ports
    by_map: int
    critical: int
    rows: list[tuple[str, str]]  # blocked (order id, relay address)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_postfix()
    tmp = tmp_path_factory.mktemp("postfix")
    sections: dict[str, dict[str, Any]] = {"query": {"sync_seconds": 0.2}, "log": {"repeat_seconds": 1},
                "postfix": {"policy": "127.0.0.1:0", "socketmap": "127.0.0.1:0", "exempt_senders": [EXEMPT]}}
    daemon = DaemonProcess(tmp / "home", write_config(tmp / "c.toml", sections))
    postfix: PostfixInstance | None = None
    try:
        daemon.start()  # ports from the kernel, then kept: a restart must come back on the same ones
        policy, socketmap = (int(daemon.wait_event(f"{name}.listening")["address"].rpartition(":")[2])
                             for name in ("policy", "socketmap"))
        sections["postfix"].update(policy=f"127.0.0.1:{policy}", socketmap=f"127.0.0.1:{socketmap}")
        write_config(tmp / "c.toml", sections)
        rows = seed_blocklist(daemon, tmp, 3)
        outbound, by_map, critical = (free_port() for _ in range(3))
        postfix = PostfixInstance({
            "relay_domains": "marketplace.amazon.com",
            "smtpd_recipient_restrictions": f"check_policy_service inet:127.0.0.1:{policy}, permit_mynetworks, reject",
        }, [
            f"127.0.0.1:{outbound} inet n - n - - smtpd",
            f"127.0.0.1:{by_map} inet n - n - - smtpd -o {{ smtpd_recipient_restrictions = "
            f"check_recipient_access socketmap:inet:127.0.0.1:{socketmap}:blocklist, permit_mynetworks, reject }}",
            f"127.0.0.1:{critical} inet n - n - - smtpd -o {{ smtpd_recipient_restrictions = permit_mynetworks, reject }}",
        ])
        postfix.start()
        yield Rig(daemon, postfix, policy, socketmap, outbound, by_map, critical, rows)
    finally:
        if postfix is not None:
            postfix.stop()
        daemon.ensure_stopped()


def rcpt(port: int, recipient: str, sender: str = "tool@seller.example") -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("tool.seller.example")
        assert client.mail(sender)[0] == 250
        code, text = client.rcpt(recipient)
        return code, text.decode()


def test_policy_refuses_a_blocked_relay_address_and_accepts_another(rig: Rig) -> None:
    order, address = rig.rows[0]
    code, text = rcpt(rig.outbound, address)
    assert code // 100 == 5 and "5.7.1" in text and "buyer opted out of unsolicited seller messages" in text, text
    assert rcpt(rig.outbound, "someone-else@marketplace.amazon.com")[0] == 250
    with smtplib.SMTP("127.0.0.1", rig.outbound, timeout=30) as client:  # a whole message goes through
        refused = client.sendmail("tool@seller.example", ["someone-else@marketplace.amazon.com", rig.rows[1][1]],
                                  b"Subject: shipped\r\n\r\nYour parcel left.\r\n")
    assert list(refused) == [rig.rows[1][1]] and refused[rig.rows[1][1]][0] // 100 == 5


def test_exempt_sender_and_the_order_critical_service_are_not_checked(rig: Rig) -> None:
    address = rig.rows[0][1]
    assert rcpt(rig.outbound, address, sender=EXEMPT)[0] == 250
    assert rcpt(rig.outbound, address, sender="Orders@Seller.Example")[0] == 250
    assert rcpt(rig.critical, address)[0] == 250  # the second submission service: no policy check


def test_socketmap_as_a_recipient_access_table(rig: Rig) -> None:
    code, text = rcpt(rig.by_map, rig.rows[0][1])
    assert code // 100 == 5 and "5.7.1" in text and "opted out" in text, text
    assert rcpt(rig.by_map, "someone-else@marketplace.amazon.com")[0] == 250


def postmap(rig: Rig, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["postmap", "-q", key, f"socketmap:inet:127.0.0.1:{rig.socketmap}:blocklist"],
                          capture_output=True, text=True, timeout=60)


def test_postmap_finds_an_address_and_an_order_and_exits_1_for_an_unknown_key(rig: Rig) -> None:
    order, address = rig.rows[2]
    found = postmap(rig, address)
    assert found.returncode == 0 and found.stdout.startswith(f"REJECT 5.7.1 <{address}>: buyer opted out"), found
    by_order = postmap(rig, order)
    assert by_order.returncode == 0 and by_order.stdout.startswith(f"REJECT 5.7.1 <{order}>:"), by_order
    unknown = postmap(rig, "nobody@marketplace.amazon.com")
    assert unknown.returncode == 1 and unknown.stdout == "", unknown


def exchange(port: int, data: bytes, replies: int, end: bytes) -> bytes:
    """Send ``data`` raw, read until ``replies`` replies ending in ``end`` came back (or EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        got = b""
        while got.count(end) < replies:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_malformed_policy_blocks_are_deferred_and_logged(rig: Rig) -> None:
    good = f"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient={rig.rows[0][1]}\n\n".encode()
    got = exchange(rig.policy, b"garbage without equals\n\n" + b"x=" + b"y" * 20_000 + b"\n\n" + good, 3, b"\n\n")
    replies = got.split(b"\n\n")
    assert replies[0].startswith(b"action=DEFER_IF_PERMIT") and replies[1].startswith(b"action=DEFER_IF_PERMIT")
    assert replies[2].startswith(b"action=REJECT 5.7.1")
    first = rig.daemon.wait_event("policy.malformed", suppressed=0)  # then throttled: the second is in a summary
    summary = rig.daemon.wait_event("policy.malformed", summary=True)
    assert "not name=value" in first["reason"] and "attribute line over" in summary["reason"]
    assert summary["suppressed"] == 1


def test_socketmap_query_of_100000_bytes_is_refused_cleanly(rig: Rig) -> None:
    huge = encode("blocklist " + "a" * (100_000 - len("blocklist ")))
    follow = encode(f"blocklist {rig.rows[0][1]}")
    got = exchange(rig.socketmap, huge + follow, 2, b",")
    refusal = encode("PERM query over 1100 bytes")
    assert got.startswith(refusal), got[:200]
    length, _, rest = got[len(refusal):].partition(b":")
    assert int(length) == len(rest) - 1 and rest.endswith(b",")  # one whole netstring follows
    assert rest.startswith(f"OK REJECT 5.7.1 <{rig.rows[0][1]}>: buyer opted out".encode())
    with socket.create_connection(("127.0.0.1", rig.socketmap), timeout=30) as sock:
        sock.sendall(b"100001:" + b"a" * 1000)
        reply = sock.recv(65536)
        assert reply == encode("PERM query over 100000 bytes")
        assert sock.recv(65536) == b""  # then the connection ends: the stream cannot be resynchronised


def test_daemon_restart_while_postfix_holds_a_policy_connection(rig: Rig) -> None:
    blocked, unknown = rig.rows[1][1], "someone-else@marketplace.amazon.com"
    with smtplib.SMTP("127.0.0.1", rig.outbound, timeout=60) as client:
        client.ehlo("tool.seller.example")
        client.mail("tool@seller.example")
        assert client.rcpt(unknown)[0] == 250  # this smtpd now holds a policy connection
        assert rig.daemon.stop() == 0
        rig.daemon.start()
        client.rset()
        client.mail("tool@seller.example")
        code, text = client.rcpt(blocked)  # the same smtpd, its policy connection gone stale
        assert code // 100 == 5 and b"opted out" in text, (code, text, rig.postfix.log()[-2000:])
        assert client.rcpt(unknown)[0] == 250


def test_256_idle_connections_from_another_local_user_do_not_lock_postfix_out(rig: Rig) -> None:
    """Every local user reaches the policy service from 127.0.0.1, so there a peer is the user
    that owns the other end (lookup/limits.py): this test's 256 idle connections are one peer,
    held to max_connections_per_peer (192 of the 256), and Postfix's smtpd (user postfix) still
    gets its own."""
    assert rig.daemon.stop() == 0  # Postfix's kept policy connections go: it must connect anew
    rig.daemon.start()
    held = [socket.create_connection(("127.0.0.1", rig.policy), timeout=10) for _ in range(256)]
    try:
        code, text = rcpt(rig.outbound, rig.rows[0][1])
        assert code // 100 == 5 and "5.7.1" in text, text  # answered, not deferred for want of a slot
        assert rcpt(rig.outbound, "someone-else@marketplace.amazon.com")[0] == 250
        refused = rig.daemon.wait_event("policy.too_many_connections")
        assert refused["limit"] == "refused_peer" and refused["max_connections_per_peer"] == 192
    finally:
        for sock in held:
            sock.close()
