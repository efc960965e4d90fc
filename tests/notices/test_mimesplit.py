"""The fast split gives FeedParser's own tree (compat32) for every sample it reads, and leaves
to FeedParser every sample FeedParser finds a defect in."""

from __future__ import annotations

import email
from email.message import Message
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.notices.mimesplit import split

from .expectations import OWN_SAMPLES, SHARED_CORPUS

SAMPLES = sorted(OWN_SAMPLES.rglob("*.eml")) + sorted(SHARED_CORPUS.glob("*.eml"))


def _tree(msg: Message) -> Any:
    payload = msg._payload  # type: ignore[attr-defined]  # get_payload() decodes 8-bit text
    inner = [_tree(p) for p in payload] if isinstance(payload, list) else payload
    return (msg.raw_items() and list(msg.raw_items()), msg.get_content_type(), inner,
            [type(d).__name__ for d in msg.defects])


def _has_defects(msg: Message) -> bool:
    return any(part.defects for part in msg.walk())


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_split_is_feedparsers_tree_or_declines(path: Path) -> None:
    text = path.read_bytes().decode("ascii", "surrogateescape")
    reference = email.message_from_string(text, policy=compat32)
    fast = split(text)
    if fast is None:
        return
    assert not _has_defects(reference), "the split read a message FeedParser finds damaged"
    assert _tree(fast) == _tree(reference)


def test_split_reads_most_samples() -> None:
    """The fast path is the common one: it must read the well-formed majority."""
    read = [split(p.read_bytes().decode("ascii", "surrogateescape")) is not None for p in SAMPLES]
    assert sum(read) >= 0.8 * len(read), f"{sum(read)} of {len(read)}"


@pytest.mark.parametrize("text", [
    "From someone@example Mon May  6 10:00:00 2024\nSubject: x\n\nbody\n",  # mbox From_ line
    " folded first\nSubject: x\n\nbody\n",
    "Subject: x\nnot a header\n\nbody\n",
    "Subject: x\n",  # no blank line
    "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nno closing boundary\n",
    "Content-Type: multipart/mixed; boundary=b\n\nno boundary line at all\n",
    "Content-Type: multipart/mixed\n\n--b\n\nx\n--b--\n",  # no boundary parameter
    "Subject: x\rCR only\r\n\r\nbody\r\n",
    "Content-Type: multipart/mixed; boundary*=''b\n\n--b\n\nx\n--b--\n",
])
def test_split_declines_what_feedparser_reads_its_own_way(text: str) -> None:
    assert split(text) is None


CONTENT_TYPES = [
    'text/plain; charset="UTF-8"; format=flowed; delsp=yes', "text/plain;charset=iso-8859-1",
    'text/plain; CHARSET = "Shift_JIS" ;', "text/plain; format", "text/plain; charset=<utf-8>",
    'text/plain; charset=""', 'text/plain; charset="a;b"', "text/plain; charset*=utf-8''x",
    'text/plain; charset=\\"x', "text/plain; charset=u\udcff8", "text/plain; charset=utf-8; charset=latin1",
    'text/plain; name="a b.txt"; charset = " utf-8 "', "text/plain; charset", "text/plain",
    'multipart/mixed; boundary="<b1> "', "multipart/mixed; boundary=<\"b2\">", 'multipart/mixed; boundary="b3 "',
    "multipart/mixed; BOUNDARY = b4 ; boundary=b5", "multipart/mixed; boundary", 'multipart/mixed; boundary=""',
    "multipart/mixed; boundary*0=b6", 'multipart/mixed; boundary="b;7"',
]


def test_parameter_reader_agrees_with_compat32() -> None:
    """The splitter's own Content-Type parameter reader gives what Message.get_param,
    get_boundary and get_content_charset give, on crafted values and every part of every sample."""
    from inbox_daemon.notices.mime import _charset
    from inbox_daemon.notices.mimesplit import boundary_of, param

    parts: list[Message] = []
    for value in CONTENT_TYPES:
        msg = Message()
        msg["Content-Type"] = value
        parts.append(msg)
    for path in SAMPLES:
        parts.extend(email.message_from_bytes(path.read_bytes(), policy=compat32).walk())
    for part in parts:
        for name, default in (("charset", ""), ("format", ""), ("delsp", "no")):
            assert param(part, name, default) == part.get_param(name, default), part.get("content-type")
        assert boundary_of(part) == part.get_boundary(), part.get("content-type")
        assert _charset(part) == part.get_content_charset(), part.get("content-type")


def test_split_messages_answer_get_after_any_change_of_fields() -> None:
    """The split's Message finds fields through a dict; every way of changing fields shows."""
    msg = split("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64 \n\nx\n")
    assert msg is not None
    assert msg.get("content-transfer-encoding") == "base64 "
    msg.replace_header("Content-Transfer-Encoding", "base64")
    assert msg.get("CONTENT-TRANSFER-ENCODING") == "base64"
    msg["X-New"] = "1"
    assert msg.get("x-new") == "1"
    del msg["x-new"]
    assert msg.get("x-new", "gone") == "gone"
    msg.set_param("charset", "latin-1")
    assert msg.get_content_charset() == "latin-1"
    msg.add_header("X-Added", "2")
    assert msg.get("x-added") == "2"
    msg.set_boundary("b")
    assert msg.get_boundary() == "b"
