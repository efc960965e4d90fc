"""Bare-LF end-of-data variants inside DATA (SMTP smuggling): a real daemon process and a raw
SMTP client that writes them. The daemon never splits a message and logs, rate-limited."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id

SMUGGLED = (b"From: attacker@evil.example\r\nTo: optout@sellers.example\r\nSubject: smuggled\r\n\r\nforged\r\n")


def reply(stream: object) -> bytes:
    """One (possibly multi-line) SMTP reply."""
    lines = []
    while True:
        line = stream.readline()  # type: ignore[attr-defined]
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


def test_bare_lf_variants_are_kept_whole_and_logged_once_per_interval(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", {}))
    try:
        daemon.start()
        rng = random.Random(90)
        orders = [order_id(rng) for _ in range(3)]
        with socket.create_connection(daemon.smtp, timeout=30) as sock:
            stream = sock.makefile("rb")
            assert reply(stream).startswith(b"220")
            sock.sendall(b"EHLO smuggler.example\r\n")
            assert reply(stream).startswith(b"250")
            for order, variant in zip(orders, (b"\n.\n", b"\r\n.\n", b"\n.\r\n")):
                sock.sendall(b"MAIL FROM:<a@evil.example>\r\n")
                assert reply(stream).startswith(b"250")
                sock.sendall(b"RCPT TO:<optout@sellers.example>\r\n")
                assert reply(stream).startswith(b"250")
                sock.sendall(b"DATA\r\n")
                assert reply(stream).startswith(b"354")
                body = opt_out_notice(order, None).rstrip(b"\r\n")
                sock.sendall(body + variant + b"MAIL FROM:<x@evil.example>\r\n" + SMUGGLED + b"\r\n.\r\n")
                assert reply(stream).startswith(b"250")  # one message: the smuggled part stays inside
            sock.sendall(b"QUIT\r\n")
            assert reply(stream).startswith(b"221")
        daemon.wait_count("intake_decision", 3)
        logged = [e for e in daemon.events if e.get("event") == "smtp_bare_lf_end_of_data"]
        assert len(logged) == 1 and logged[0]["variant"] == "\\n.\\n" and logged[0]["peer"].startswith("127.0.0.1:")
        listed = daemon.cli("messages", "list", check=True).stdout.splitlines()
        assert [line.split("\t")[2] for line in listed] == ["smtp"] * 3  # three messages, never six
        for line in listed:
            kept = daemon.cli("messages", "show", line.split("\t")[0], "--raw", check=True).stdout
            assert "MAIL FROM:<x@evil.example>" in kept and "Subject: smuggled" in kept
        assert daemon.stop() == 0
    finally:
        daemon.ensure_stopped()
