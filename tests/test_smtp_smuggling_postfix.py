"""SMTP smuggling through the MTA in front: a real Postfix relaying to a real daemon process.

With Postfix's defaults (3.7: ``smtpd_forbid_bare_newline = no``) a ``<LF>.<LF>`` inside DATA
ends the message there and what follows is read as commands: a second, forged message reaches
the daemon. With the settings deploy/README.md gives ("SMTP smuggling") Postfix refuses the bare LF and
nothing is smuggled; ordinary mail still flows."""

from __future__ import annotations

import contextlib
import random
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id
from tests.support.postfix import PostfixInstance, free_port, require_postfix

# deploy/README.md, "SMTP smuggling": what the guide tells operators to set. Debian 12's Postfix
# 3.7.11 takes yes|no here ("normal" is the value from Postfix 3.9 on: the guide gives both).
GUIDE = {"smtpd_forbid_bare_newline": "yes", "smtpd_forbid_bare_newline_exclusions": "",
         "smtpd_forbid_unauth_pipelining": "yes", "smtpd_data_restrictions": "reject_unauth_pipelining"}
FORGED = (b"MAIL FROM:<a@evil.example>\r\nRCPT TO:<optout@sellers.example>\r\nDATA\r\n"
          b"From: ops@acme.example\r\nTo: optout@sellers.example\r\nSubject: smuggled\r\n\r\nforged\r\n")


def smuggle(port: int, order: str) -> bytes:
    """One session: a notice, ``<LF>.<LF>``, then a forged message, then QUIT; every reply
    after DATA, until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        stream = sock.makefile("rb")
        for step in (b"", b"EHLO client.example\r\n", b"MAIL FROM:<fwd@seller.example>\r\n",
                     b"RCPT TO:<optout@sellers.example>\r\n", b"DATA\r\n"):
            sock.sendall(step)
            while (line := stream.readline())[3:4] == b"-":
                pass
            assert line[:1] in (b"2", b"3"), line
        sock.sendall(opt_out_notice(order, None).rstrip(b"\r\n") + b"\n.\n" + FORGED + b"\r\n.\r\n")
        replies = stream.readline()
        with contextlib.suppress(OSError):
            sock.sendall(b"QUIT\r\n")
            while line := stream.readline():
                replies += line
        return replies


@contextlib.contextmanager
def relaying(tmp_path: Path, main: dict[str, str]) -> Iterator[tuple[DaemonProcess, int]]:
    """A daemon, and a Postfix on a free port relaying sellers.example to it."""
    require_postfix()
    daemon = DaemonProcess(tmp_path / "home", write_config(tmp_path / "c.toml", {}))
    port = free_port()
    postfix = None
    try:
        daemon.start()
        postfix = PostfixInstance(
            {"relayhost": f"[127.0.0.1]:{daemon.smtp[1]}", "default_transport": "smtp", "relay_transport": "smtp",
             "relay_domains": "sellers.example", "smtp_tls_security_level": "none", "smtp_helo_name": "mta.test.example",
             **main},
            [f"127.0.0.1:{port} inet n - n - - smtpd", "smtp unix - - n - - smtp"]).start()
        yield daemon, port
    finally:
        if postfix is not None:
            postfix.stop()
        daemon.ensure_stopped()


def subjects(daemon: DaemonProcess) -> list[str]:
    listed = daemon.cli("messages", "list", check=True).stdout.splitlines()
    found = []
    for line in listed:
        raw = daemon.cli("messages", "show", line.split("\t")[0], "--raw", check=True).stdout
        top = raw.replace("\r\n", "\n").split("\n\n", 1)[0]  # the message's own header block
        found.append("smuggled" if "\nSubject: smuggled" in "\n" + top else "notice")
    return sorted(found)


def test_postfix_defaults_let_a_smuggled_message_through(tmp_path: Path) -> None:
    with relaying(tmp_path, {}) as (daemon, port):
        assert smuggle(port, order_id(random.Random(92))).count(b" queued as ") == 2  # split in two
        daemon.wait_count("intake_decision", 2)
        assert subjects(daemon) == ["notice", "smuggled"]  # the attack the guide closes


def test_the_guide_settings_keep_it_one_message(tmp_path: Path) -> None:
    with relaying(tmp_path, GUIDE) as (daemon, port):
        reply = smuggle(port, order_id(random.Random(93)))
        # Refused ("bare <LF> received"), or taken whole as one message: never split.
        assert reply.count(b" queued as ") <= 1 and reply[:1] in (b"2", b"5"), reply
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:  # ordinary mail still flows
            client.sendmail("fwd@seller.example", ["optout@sellers.example"], opt_out_notice(order_id(random.Random(94)), None))
        daemon.wait_count("intake_decision", 2 if reply.startswith(b"2") else 1)
        assert set(subjects(daemon)) == {"notice"}

