"""One table of spellings, one answer on every lookup path: ``keys`` itself, the query socket
(pure Python, the C accelerator, the C loop), the Postfix lookup, the client library and CSV."""

from __future__ import annotations

import pytest

from inbox_daemon import keys
from inbox_daemon.client import request_line
from inbox_daemon.lookup import BlocklistIndex, protocol
from inbox_daemon.lookup.postfix_policy import lookup as postfix_lookup
from inbox_daemon.lookup.protocol import Responder
from inbox_daemon.processing.csvfile import read_buyers

from .wire import serve_lines

RELAY = "abcdefghijklmno@marketplace.amazon.com"
BLOCKED = {RELAY, "someone+tag@example.com", "113-5663737-4342765", "D01-1234567-7654321"}
# (spelling, its canonical form or None when it is no key)
CASES: list[tuple[str, str | None]] = [
    (RELAY, RELAY),
    ("abcdefghijklmno+x@marketplace.amazon.com", RELAY),
    ("ABCDEFGHIJKLMNO@MARKETPLACE.AMAZON.COM", RELAY),
    ("ABCDEFGHIJKLMNO+Promo.7@Marketplace.Amazon.Com", RELAY),
    ("<abcdefghijklmno+x@marketplace.amazon.com>", RELAY),
    ("abcdefghijklmno+x+y@marketplace.amazon.com", RELAY),
    ("abcdefghijklmno@marketplace.amazon.co.uk", "abcdefghijklmno@marketplace.amazon.co.uk"),
    ("someone+tag@example.com", "someone+tag@example.com"),  # the tag is example.com's to define
    ("SomeOne+Tag@Example.COM", "someone+tag@example.com"),
    ("someone@example.com", "someone@example.com"),
    ("+tag@marketplace.amazon.com", "+tag@marketplace.amazon.com"),
    ("a_b.c-d@e.f", "a_b.c-d@e.f"),
    ("a@.example.com", None),
    ("a@example..com", None),
    ("a@example.com.", None),
    ("a@b@example.com", None),
    ("x" * 300 + "@" + "y" * 30 + ".com", None),  # longer than 320 octets
    ("113-5663737-4342765", "113-5663737-4342765"),
    ("D01-1234567-7654321", "D01-1234567-7654321"),  # a digital order
    ("d01-1234567-7654321", "D01-1234567-7654321"),
    ("D02-1234567-7654321", "D02-1234567-7654321"),
    ("D01-1234567-765432", None),
    ("X01-1234567-7654321", None),
    ("DD1-1234567-7654321", None),
]


def _index() -> BlocklistIndex:
    index = BlocklistIndex()
    for key in BLOCKED:
        parsed = keys.parse(key)
        assert parsed is not None
        (index.set_order if parsed.kind == "order" else index.set_address)(parsed.value, 1_795_673_854, 2)
    return index


def _line(spelling: str) -> bytes:
    verb = "CHECK" if "@" in spelling else "ORDER"
    return f"{verb} {spelling}".encode()


def _expected(spelling: str, canonical: str | None) -> bytes:
    if canonical is None:
        return b"ERR bad address\n" if "@" in spelling else b"ERR bad order id\n"
    return b"BLOCKED 2026-11-26T06:17:34Z 2\n" if canonical in BLOCKED else b"OK\n"


@pytest.mark.parametrize(("spelling", "canonical"), CASES)
def test_keys_and_the_python_paths(spelling: str, canonical: str | None) -> None:
    parsed = keys.parse(spelling)
    assert (parsed.value if parsed else None) == canonical
    if parsed is not None:
        assert "hidden" in repr(parsed) and parsed.value not in f"{parsed!r} {parsed}"  # never the plain key
    index = _index()
    module = protocol.FASTPATH
    protocol.FASTPATH = None
    try:
        assert Responder(index).respond_lines([_line(spelling)]) == _expected(spelling, canonical)
    finally:
        protocol.FASTPATH = module
    assert bool(postfix_lookup(index, spelling)) == (canonical in BLOCKED)
    # the canonical key goes on the wire; what is no key goes as given, as CHECK (the daemon's ERR)
    assert request_line(spelling) == (_line(canonical).decode() if canonical else f"CHECK {spelling}")
    buyers, _ = read_buyers(f"email,order_id\n{'' if '@' not in spelling else spelling},"
                            f"{spelling if '@' not in spelling else ''}\n".encode())
    assert [b.email or b.order_id for b in buyers] == ([canonical] if canonical else [])


@pytest.mark.parametrize(("spelling", "canonical"), CASES)
def test_the_c_accelerator(spelling: str, canonical: str | None) -> None:
    if protocol.FASTPATH is None:
        pytest.skip("inbox_daemon.lookup._fastpath is not built")
    assert Responder(_index()).respond_lines([_line(spelling)]) == _expected(spelling, canonical)


def test_every_spelling_through_the_socket(native: bool) -> None:
    """The C loop answers plain lines itself and hands the rest to Python: same bytes as the table."""
    lines = [_line(spelling) for spelling, _ in CASES] * 2
    expected = b"".join(_expected(spelling, canonical) for spelling, canonical in CASES) * 2

    assert serve_lines(_index(), lines, len(expected), native=native) == expected


@pytest.mark.parametrize(("spelling", "canonical"), [case for case in CASES if "@" not in case[0]])
def test_an_order_id_beside_an_address_in_check(spelling: str, canonical: str | None) -> None:
    """``CHECK <address> <order-id>`` reads the order id as ORDER does (a digital order too), and
    the client sends it so."""
    other = "nobody@marketplace.amazon.com"
    line = f"CHECK {other} {spelling}".encode()
    assert Responder(_index()).respond_lines([line]) == _expected(spelling, canonical)
    assert request_line((other, spelling)) == f"CHECK {other} {canonical or spelling}"
