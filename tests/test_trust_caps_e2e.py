"""Buyers per notice: one message cannot add more than ``security.max_buyers_per_notice``
opt-outs; a real daemon process and smtplib. The per-forwarder hourly cap still counts."""

from __future__ import annotations

import random
from pathlib import Path

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address


def attached_notices(count: int, rng: random.Random) -> tuple[bytes, list[str]]:
    """One forward carrying ``count`` notices as message/rfc822 attachments, and their orders."""
    orders = [order_id(rng) for _ in range(count)]
    parts = b"".join(b"--b1\r\nContent-Type: message/rfc822\r\n\r\n" + opt_out_notice(o, relay_address(rng), seq=i)
                     + b"\r\n" for i, o in enumerate(orders))
    raw = (b"From: ops@acme.example\r\nTo: optout@sellers.example\r\nSubject: Fwd: notices\r\n"
           b"Message-ID: <many-%d@acme.example>\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n'
           b"See attached.\r\n" % count) + parts + b"--b1--\r\n"
    return raw, orders


def test_a_message_over_the_buyer_cap_is_held_and_adds_nobody(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {"security": {"forwarder_rate_per_hour": 200}})
    daemon = DaemonProcess(tmp_path / "home", config)
    try:
        daemon.start()
        rng = random.Random(80)
        flood, flooded = attached_notices(26, rng)  # the default cap is 25
        fine, named = attached_notices(25, rng)
        assert daemon.send(flood)[0] == 250 and daemon.send(fine)[0] == 250
        decided = daemon.wait_count("intake_decision", 2)
        assert sorted((d["outcome"], d["reason"]) for d in decided) == [
            ("opt_out", None),
            ("quarantined", "too many buyers: 26 in one message (security.max_buyers_per_notice = 25)"),
        ]
        replies = daemon.query(*(f"ORDER {o}" for o in flooded + named))
        assert [r.startswith("BLOCKED") for r in replies] == [False] * 26 + [True] * 25
        listed = daemon.cli("quarantine", "list", "--outcome", "quarantined", check=True).stdout
        assert "too many buyers: 26" in listed
    finally:
        daemon.ensure_stopped()
