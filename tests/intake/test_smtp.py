"""SMTP intake through a real daemon process and a real smtplib client."""

from __future__ import annotations

import random
import smtplib
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


class _Raw:
    """A raw SMTP session on a socket: send lines, read the last line of each reply."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=30)
        self.stream = self.sock.makefile("rb")
        self.reply()  # the greeting

    def reply(self) -> bytes:
        while True:
            line = self.stream.readline()
            if line[3:4] != b"-":
                return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def _dialogue(address: tuple[str, int], commands: list[bytes]) -> list[bytes]:
    """One raw SMTP session: the reply line to each command (after the greeting and EHLO)."""
    session = _Raw(address)
    try:
        session.command(b"EHLO test.example")
        return [session.command(c) for c in commands]
    finally:
        session.close()


def test_envelope_addresses_with_nul_control_characters_or_bad_utf8_are_refused(daemon: DaemonProcess) -> None:
    answers = _dialogue(daemon.smtp, [
        b"MAIL FROM:<fwd\x00@seller.example>",
        b"MAIL FROM:<fwd\xff\xfe@seller.example>",
        b"MAIL FROM:<fwd@seller.example>",
        b"RCPT TO:<optout\x01@sellers.example>",
        b"RCPT TO:<optout\xc3@sellers.example>",
        b"RCPT TO:<optout@sellers.example>",
    ])
    # aiosmtpd itself answers 500 (syntax) to some bytes that are not UTF-8, before the handler
    assert answers[0][:9] == b"501 5.1.7" and answers[1][:9] in (b"501 5.1.7", b"500 Error")
    assert answers[2].startswith(b"250")
    assert answers[3][:9] == b"553 5.1.3" and answers[4][:9] in (b"553 5.1.3", b"500 Error")
    assert answers[5][:9] == b"250 2.1.5"  # the session lives on


def test_header_values_the_database_cannot_hold_are_stored_and_applied(tmp_path: Path, fresh_pg_url: str) -> None:
    """PostgreSQL refuses NUL in text: the raw bytes keep it, the text columns a sanitised copy."""
    config = write_config(tmp_path / "c.toml", {"database": {"url": fresh_pg_url}})
    proc = DaemonProcess(tmp_path / "home", config)
    try:
        assert proc.cli("db", "upgrade").returncode == 0
        proc.start()
        rng = random.Random(4)
        order = order_id(rng)
        raw = opt_out_notice(order, None).replace(b"Message-ID: <", b"Message-ID: <nul\x00\xff-")
        forwarded = (b"From: Ops \x00<ops\x00@acme.example>\r\nTo: optout@sellers.example\r\n"
                     b"Subject: Fwd: notice\r\nMIME-Version: 1.0\r\n"
                     b"Content-Type: message/rfc822\r\n\r\n") + opt_out_notice(order_id(rng), None, seq=1)
        assert proc.send(raw)[0] == 250
        assert proc.send(forwarded)[0] == 250
        decisions = proc.wait_count("intake_decision", 2)
        assert {d["outcome"] for d in decisions} == {"opt_out"}
        assert proc.query(f"ORDER {order}")[0].startswith("BLOCKED")
        assert proc.cli("messages", "list", "--outcome", "error").stdout == ""
    finally:
        proc.ensure_stopped()


def _trickle(address: tuple[str, int], raw: bytes, chunk: int, pause: float) -> bytes:
    """MAIL, RCPT, DATA, then the message a few bytes at a time: a slow but never silent sender."""
    import time

    session = _Raw(address)
    try:
        for line in (b"EHLO slow.example", b"MAIL FROM:<fwd@seller.example>", b"RCPT TO:<optout@sellers.example>", b"DATA"):
            session.command(line)
        body = raw + b".\r\n"
        try:
            for at in range(0, len(body), chunk):
                session.sock.sendall(body[at:at + chunk])
                time.sleep(pause)  # the pace of the slow sender, not a wait for the daemon
        except OSError:
            pass
        return session.reply()
    finally:
        session.close()


def test_a_slow_sender_is_not_idle_but_a_transaction_has_a_total_limit(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {"smtp": {"timeout_seconds": 1.0, "transaction_seconds": 4.0}})
    proc = DaemonProcess(tmp_path / "home", config)
    try:
        proc.start()
        rng = random.Random(5)
        notice = opt_out_notice(order_id(rng), None)
        step = max(1, len(notice) // 10)
        assert _trickle(proc.smtp, notice, step, 0.25).startswith(b"250")  # ~2.5 s, silent at most 0.25 s
        assert _trickle(proc.smtp, opt_out_notice(order_id(rng), None), step // 4, 0.2).startswith(b"421 4.4.2")
    finally:
        proc.ensure_stopped()


PATHS = ["<Fwd.Seller@Seller.Example>", "<>", "fwd@seller.example", "<fwd@seller.example> SIZE=1000 BODY=8BITMIME", "",
         "<fwd@seller.example", '<"quoted local"@seller.example>', "<@relay.example:fwd@seller.example>",
         "<fwd@[127.0.0.1]>", "<fwd\x00@seller.example>", "<f\udcffwd@seller.example>", "< fwd @ seller.example >",
         "<" + "l" * 80 + "@seller.example>", "not an address at all", "<a@b>>", "<<a@b>"]


@pytest.mark.parametrize("limit", [0, 64])
@pytest.mark.parametrize("arg", PATHS)
def test_mail_and_rcpt_paths_are_read_as_aiosmtpd_reads_them(arg: str, limit: int) -> None:
    """The listener's ``_getaddr`` (without the class aiosmtpd makes per call) answers as
    aiosmtpd's own, including the local-part limit."""
    from aiosmtpd.smtp import SMTP

    from inbox_daemon.intake.smtp import _CappedSMTP

    ours, theirs = object.__new__(_CappedSMTP), object.__new__(SMTP)
    ours.local_part_limit = theirs.local_part_limit = limit
    assert ours._getaddr(arg) == theirs._getaddr(arg)


_ATOM = st.text("abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=4)
_DOT_ATOM = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)
_BLANKS = st.sampled_from(["", " ", "\t", "  ", "\r", " \r", "\x1c"])
_REST = st.sampled_from(["", "SIZE=1000", "SIZE=1000 BODY=8BITMIME", "(comment) SIZE=1", ">", "\r", "x y", " \r\n x", "\x1c",
                         "\t(comment)"])
_PIECES = st.sampled_from(["<", ">", "@", ".", "..", " ", "\t", '"', "\\", "(", ")", ":", ",", "[", "]", "fwd",
                           "seller", "example", "\x00", "\udcff", "é", "SIZE=1", "\r\n", "l" * 70])


@settings(max_examples=1000, deadline=None)
@given(st.one_of(
    st.builds("{}<{}@{}>{}{}".format, _BLANKS, _DOT_ATOM, _DOT_ATOM, _BLANKS, _REST),
    st.lists(_PIECES, max_size=10).map("".join),
), st.sampled_from([0, 8, 64]))
def test_any_path_is_read_as_aiosmtpd_reads_it(arg: str, limit: int) -> None:
    """Plain paths take the listener's regex, the rest aiosmtpd's parser: both answer alike."""
    from aiosmtpd.smtp import SMTP

    from inbox_daemon.intake.smtp import _CappedSMTP

    ours, theirs = object.__new__(_CappedSMTP), object.__new__(SMTP)
    ours.local_part_limit = theirs.local_part_limit = limit
    assert _outcome(ours._getaddr, arg) == _outcome(theirs._getaddr, arg)


def _outcome(getaddr: Callable[[str], object], arg: str) -> object:
    try:
        return getaddr(arg)
    except Exception as exc:  # aiosmtpd's parser raises on some paths ('<', '"'): alike
        return type(exc)
