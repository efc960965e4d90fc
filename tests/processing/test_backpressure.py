"""Backpressure: past the processing backlog or the byte budget SMTP answers 451 4.3.2 (the
MTA holds the mail and retries); nothing acknowledged is lost and each message is processed
once."""

from __future__ import annotations

import random
import smtplib
import threading
import time
from pathlib import Path

from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.notices import opt_out_notice, order_id

ROOT = Path(__file__).resolve().parents[2]


def send_until_accepted(smtp: tuple[str, int], raws: list[bytes], codes: list[bytes]) -> None:
    """An MTA: each message again after a temporary failure, until it is accepted."""
    for raw in raws:
        while True:
            try:
                with smtplib.SMTP(*smtp, timeout=60) as client:
                    client.sendmail("fwd@seller.example", ["optout@sellers.example"], raw)
                codes.append(b"250")
                break
            except smtplib.SMTPResponseException as exc:
                codes.append(f"{exc.smtp_code} ".encode() + exc.smtp_error[:5])
                assert exc.smtp_code in (421, 451), exc
                time.sleep(0.1)  # the MTA's retry interval, shortened
            except smtplib.SMTPServerDisconnected:
                codes.append(b"closed")
                time.sleep(0.1)


def flood(daemon: DaemonProcess, raws: list[bytes], senders: int) -> list[bytes]:
    codes: list[bytes] = []
    threads = [threading.Thread(target=send_until_accepted, args=(daemon.smtp, raws[i::senders], codes))
               for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return codes


def test_a_full_backlog_answers_451_4_3_2_and_everything_is_processed_once(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {
        "parser": {"module": "tests.support.slow_parser", "workers": 1}, "intake": {"backlog": 3}})
    daemon = DaemonProcess(tmp_path / "home", config, env={"PYTHONPATH": str(ROOT), "SLOW_PARSER_SLEEP": "0.1"})
    rng = random.Random(95)
    orders = [order_id(rng) for _ in range(24)]
    try:
        daemon.start()
        codes = flood(daemon, [opt_out_notice(o, None) for o in orders], senders=6)
        assert codes.count(b"250") == len(orders)
        assert b"451 4.3.2" in codes
        decisions = daemon.wait_count("intake_decision", len(orders), timeout=60)
        assert len({d["raw_id"] for d in decisions}) == len(decisions) == len(orders)
        assert all(r.startswith("BLOCKED") for r in daemon.query(*(f"ORDER {o}" for o in orders)))
    finally:
        daemon.ensure_stopped()


def test_the_byte_budget_holds_large_messages_back(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {"intake": {"bytes_in_flight": 400_000}, "smtp": {"max_message_bytes": 300_000}})
    daemon = DaemonProcess(tmp_path / "home", config)
    rng = random.Random(96)
    orders = [order_id(rng) for _ in range(8)]
    padding = b"X-Padding: " + b"p" * 900 + b"\r\n"
    raws = [padding * 300 + opt_out_notice(o, None) for o in orders]  # ~270 KB each
    try:
        daemon.start()
        codes = flood(daemon, raws, senders=8)
        assert codes.count(b"250") == len(orders)
        # smtplib declares SIZE= (RFC 1870) as Postfix does: the budget is reserved before 354,
        # so a full budget is a 451 before the transfer, never a 421 half way through it.
        assert b"451 4.3.2" in codes and set(codes) == {b"250", b"451 4.3.2"}, codes
        wait_until(lambda: all(r.startswith("BLOCKED") for r in daemon.query(*(f"ORDER {o}" for o in orders))), timeout=60)
    finally:
        daemon.ensure_stopped()
