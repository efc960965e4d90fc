"""SMTP intake through a real daemon process and a real smtplib client."""

from __future__ import annotations

import random
import smtplib
import socket
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import content_policy_notice, opt_out_notice, order_id, relay_address


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = write_config(tmp_path / "c.toml", {
        "smtp": {"recipients": ["optout@sellers.example"], "max_message_bytes": 200_000, "timeout_seconds": 2.0},
    })
    proc = DaemonProcess(tmp_path / "home", config)
    yield proc.start()
    proc.ensure_stopped()


def test_notice_is_stored_applied_and_answers_blocked(daemon: DaemonProcess) -> None:
    rng = random.Random(1)
    order, buyer = order_id(rng), relay_address(rng, "co.uk")
    code, text = daemon.send(opt_out_notice(order, buyer, "co.uk"))
    assert code == 250, text
    daemon.wait_event("intake_decision", outcome="opt_out")
    blocked, by_order, other = daemon.query(f"CHECK {buyer.upper()}", f"ORDER {order}", "CHECK nobody1234567@marketplace.amazon.com")
    assert blocked.startswith("BLOCKED ") and blocked.endswith(" 1")
    assert by_order.startswith("BLOCKED ")
    assert other == "OK"


def test_look_alike_is_kept_but_blocks_nobody(daemon: DaemonProcess) -> None:
    rng = random.Random(2)
    order, buyer = order_id(rng), relay_address(rng)
    assert daemon.send(content_policy_notice(order, buyer))[0] == 250
    decision = daemon.wait_event("intake_decision")
    assert decision["outcome"] == "not_opt_out" and decision["reason"]
    assert daemon.query(f"CHECK {buyer} {order}") == ["OK"]
    listing = daemon.cli("messages", "list", "--outcome", "not_opt_out")
    assert listing.returncode == 0 and "not_opt_out" in listing.stdout


def test_same_bytes_twice_stored_once_counted_once(daemon: DaemonProcess) -> None:
    rng = random.Random(3)
    order = order_id(rng)
    raw = opt_out_notice(order, None)
    assert daemon.send(raw)[0] == 250
    daemon.wait_event("intake_decision", outcome="opt_out")
    assert daemon.send(raw)[0] == 250
    daemon.wait_event("intake_duplicate")
    (reply,) = daemon.query(f"ORDER {order}")
    assert reply.startswith("BLOCKED ") and reply.endswith(" 1")
    listing = daemon.cli("messages", "list")
    assert len(listing.stdout.strip().splitlines()) == 1


def test_unknown_recipient_is_refused_with_550(daemon: DaemonProcess) -> None:
    code, text = daemon.send(b"Subject: x\r\n\r\nx\r\n", rcpt="someone@elsewhere.example")
    assert code == 550 and b"5.1.1" in text


def test_oversized_message_is_refused_with_552(daemon: DaemonProcess) -> None:
    code, _ = daemon.send(b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * 300)
    assert code == 552


def test_idle_client_is_timed_out(daemon: DaemonProcess) -> None:
    with socket.create_connection(daemon.smtp, timeout=10) as sock:
        greeting = sock.recv(1024)
        assert greeting.startswith(b"220")
        data = b""
        while chunk := sock.recv(1024):  # the server closes after timeout_seconds (2 s here)
            data += chunk
        assert b"421" in data


def test_smtp_session_survives_bad_commands(daemon: DaemonProcess) -> None:
    with smtplib.SMTP(*daemon.smtp, timeout=10) as client:
        assert client.docmd("NONSENSE")[0] == 500
        assert client.ehlo("x.example")[0] == 250
        assert client.noop()[0] == 250
