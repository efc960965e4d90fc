"""The fast split gives FeedParser's own tree (compat32) for every sample it reads, and leaves
to FeedParser every sample FeedParser finds a defect in."""

from __future__ import annotations

import email
import re
from email.message import Message
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    get_boundary and get_content_charset give, on crafted values and every part of every sample,
    split by FeedParser and by ``split``."""
    from inbox_daemon.notices.mime import _charset
    from inbox_daemon.notices.mimesplit import boundary_of, param

    parts: list[Message] = []
    for value in CONTENT_TYPES:
        msg = Message()
        msg["Content-Type"] = value
        parts.append(msg)
    for value in CONTENT_TYPES:  # and as split parts, which read their parameters once
        fast = split(f"Content-Type: {value}\n\nbody\n")
        if fast is not None and not fast.is_multipart():
            parts.append(fast)
    for path in SAMPLES:
        text = path.read_bytes().decode("ascii", "surrogateescape")
        parts.extend(email.message_from_string(text, policy=compat32).walk())
        fast = split(text)
        if fast is not None:
            parts.extend(fast.walk())
    for part in parts:
        for name, default in (("charset", ""), ("format", ""), ("delsp", "no"), ("charset", "x")):
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


ODD_CONTENT_TYPES = ["text", "a/b/c", "TEXT/HTML ; charset=x", " Text/Plain", "text/pl\udcffain; charset=x",
                     "", ";", "multipart/", "/"]


def test_split_messages_answer_content_type_and_fields_as_compat32() -> None:
    """The split's own ``get_content_type`` and ``get`` give what compat32's Message gives,
    the default type, a value with undecodable bytes (a ``Header``) and a malformed type included."""
    read = 0
    for value in [*CONTENT_TYPES, *ODD_CONTENT_TYPES, None]:
        field = "" if value is None else f"Content-Type: {value}\n"
        text = f"{field}Subject: caf\udce9\n\nbody\n"
        fast, reference = split(text), email.message_from_string(text, policy=compat32)
        if fast is None:  # a multipart type without its boundary lines: FeedParser's to read
            assert value is not None and "multipart" in value.lower()
            continue
        read += 1
        assert fast.get_content_type() == reference.get_content_type(), value
        for name in ("content-type", "Subject", "x-absent"):
            got, expected = fast.get(name), reference.get(name)
            assert type(got) is type(expected) and str(got) == str(expected), (value, name)
    assert read > 20


CRAFTED_PAYLOADS = [
    ("", "caf\udce9 =3D\n"), ("7BIT", "plain\n"), ("8bit", "caf\udcc3\udca9\n"), ("binary", "x\0y\n"),
    ("quoted-printable", "caf=C3=A9 soft=\nbreak =ZZ\n"), ("Quoted-Printable", "caf\udce9=3D\n"),
    ("base64", "Y2Fmw6k=\n"), ("base64", "Y2Fmw6k\n"), ("x-uuencode", "begin 644 x\n#8V%F\n`\nend\n"),
    ("x-unknown", "as =3D is\n"), ("", "caf\u00e9 never bytes\n"),
]


def test_decoded_payload_is_compat32s_decode() -> None:
    """``decoded_payload`` gives ``get_payload(decode=True)`` and the same defects, on crafted
    transfer encodings and every part of every sample, split or read by FeedParser."""
    from inbox_daemon.notices.mimesplit import decoded_payload

    parts: list[tuple[Message, Message]] = []
    for cte, payload in CRAFTED_PAYLOADS:
        for make in (split, lambda text: email.message_from_string(text, policy=compat32)):
            pair = [make(f"Content-Transfer-Encoding: {cte}\n\n{payload}") for _ in range(2)]
            parts.append((pair[0], pair[1]))  # type: ignore[arg-type]
    for path in SAMPLES:
        text = path.read_bytes().decode("ascii", "surrogateescape")
        for make in (split, lambda text: email.message_from_string(text, policy=compat32)):
            ours, theirs = make(text), make(text)
            if ours is not None and theirs is not None:
                parts.extend(zip(ours.walk(), theirs.walk(), strict=True))
    assert len(parts) > 500
    for ours, theirs in parts:
        if ours.is_multipart():
            continue
        assert decoded_payload(ours) == theirs.get_payload(decode=True), ours.get("content-transfer-encoding")
        assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["--b", "--", "-", "b", " ", "\t", "\r", "\n", "x", "\r\n"]), max_size=30),
       st.sampled_from(["b", "-b", "b-", "b b"]))
def test_boundary_lines_are_the_boundary_regex_at_line_starts(pieces: list[str], boundary: str) -> None:
    """The substring search finds what FeedParser's boundary-line regex finds at line starts."""
    from inbox_daemon.notices.mimesplit import _boundary_lines

    body = "".join(pieces)
    regex = re.compile("--" + re.escape(boundary) + r"(--)?[ \t]*(?:\r?\n|\Z)")
    expected = [(m.start(), m.end(), m.group(1) is not None) for m in regex.finditer(body)
                if not m.start() or body[m.start() - 1] == "\n"]
    assert _boundary_lines(body, boundary) == expected


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["Subject: x", "A:", "X-Y:  y z", " folded", "\tfolded", "not a field", "From x",
                                 " ", "B :b", ":", "C:c\r", "", "D:\x7f"]), min_size=1, max_size=8))
def test_header_blocks_are_read_as_the_field_grammar_reads_them(lines: list[str]) -> None:
    """A block is read (every line a field's first line or a fold, the first no fold) exactly
    when the grammar of RFC 5322 section 2.2 as one regex matches it whole."""
    from inbox_daemon.notices.mimesplit import header_fields

    block = "".join(line + "\n" for line in lines)
    field = r"[\041-\071\073-\176]++:[^\n]*+(?:\n[ \t][^\n]*+)*+"
    grammar = re.compile(f"(?:{field}\n)++")
    assert (header_fields(block) is not None) == (grammar.fullmatch(block) is not None), block


# The field grammar as one regex, as the splitter read fields before (``header_source_parse``'s
# values: folds kept, leading blanks and the last line's CR dropped).
_FIELDS = re.compile(r"^([\041-\071\073-\176]+):[ \t]*([^\r\n]*+(?:\r?\n[ \t][^\r\n]*+)*+)", re.MULTILINE)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(["Subject: x", "A:", "X-Y:  y z", " folded", "\tfolded", "  ", "\t", "B:\t b ",
                                 "C:c", "D: d:e", "E:\u00e9", "F\u00e9:f", "G:\udcff", "H\x7f:h", "I\x01:i", "J\tK:j",
                                 ":l"]), min_size=1, max_size=8),
       st.lists(st.booleans(), min_size=8, max_size=8))
def test_header_fields_are_the_field_regex_values(lines: list[str], crlf: list[bool]) -> None:
    """Every field's name and value, LF or CRLF line by line, are what the field regex finds, and
    a block is declined exactly when the regex's fields and the folds do not account for every
    line (how the splitter checked a block before)."""
    from inbox_daemon.notices.mimesplit import header_fields

    block = "".join(line + ("\r\n" if cr else "\n") for line, cr in zip(lines, crlf))
    expected = _FIELDS.findall(block)
    whole = len(expected) + block.count("\n ") + block.count("\n\t") == block.count("\n")
    assert header_fields(block) == (expected if whole else None), block
