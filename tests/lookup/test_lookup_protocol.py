"""The sans-IO query protocol: framing over 1, 16 and 4096-byte reads, every command and error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inbox_daemon import keys
from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.lookup.protocol import (
    LINE_TOO_LONG,
    MAX_LINE,
    Check,
    Counters,
    ErrorReply,
    LineDecoder,
    LineTooLong,
    Order,
    Ping,
    Responder,
    Stats,
    answer,
    blocked_reply,
    parse_request,
)

RELAY = "jxxvbothd0wtflh@marketplace.amazon.com"
ORDER = "114-3941689-8772232"
FIRST_SEEN = 1_795_673_854  # 2026-11-26T06:17:34Z
BLOCKED = b"BLOCKED 2026-11-26T06:17:34Z 3\n"


@pytest.fixture
def index() -> BlocklistIndex:
    index = BlocklistIndex()
    index.set_address(RELAY, FIRST_SEEN, 3)
    index.set_order(ORDER, FIRST_SEEN, 3)
    return index


def run_session(index: BlocklistIndex, stream: bytes, chunk: int) -> tuple[bytes, bool]:
    """Feed ``stream`` in ``chunk``-byte reads as the server does; the replies and whether it closed."""
    decoder, replies = LineDecoder(), list[bytes]()
    for start in range(0, len(stream), chunk):
        for line in decoder.feed(stream[start : start + chunk]):
            if isinstance(line, LineTooLong):
                return b"".join(replies) + b"ERR line too long\n", True
            replies.append(answer(parse_request(line), index))
    return b"".join(replies), False


# Each request with its reply: every command and error. The conversation stays open throughout.
CONVERSATION = [
    (f"CHECK {RELAY}", BLOCKED),
    (f"check {RELAY.upper()}", BLOCKED),
    (f'CHECK "Jane Buyer" <{RELAY}>', BLOCKED),
    (f"CHECK <{RELAY}>", BLOCKED),
    ("CHECK jxxvbothd0wtflh+x@marketplace.amazon.com", BLOCKED),
    ("CHECK other@marketplace.amazon.com", b"OK\n"),
    (f"CHECK other@marketplace.amazon.com {ORDER}", BLOCKED),
    (f"CHECK Jane <other@marketplace.amazon.com> {ORDER}", BLOCKED),
    (f"CHECK {RELAY} 999-9999999-9999999", BLOCKED),
    ("CHECK other@marketplace.amazon.com 999-9999999-9999999", b"OK\n"),
    (f"  CHECK\t{RELAY}  ", BLOCKED),
    (f"ORDER {ORDER}", BLOCKED),
    (f"order {ORDER}", BLOCKED),
    ("ORDER 999-9999999-9999999", b"OK\n"),
    ("PING", b"PONG\n"),
    ("ping", b"PONG\n"),
    ("", b"ERR empty line\n"),
    ("   ", b"ERR empty line\n"),
    ("HELLO", b"ERR unknown command\n"),
    ("CHECK", b"ERR CHECK needs an address\n"),
    ("CHECK   ", b"ERR CHECK needs an address\n"),
    ("CHECK not-an-address", b"ERR bad address\n"),
    (f"CHECK {ORDER}", b"ERR bad address\n"),
    ("CHECK a@b c@d e@f", b"ERR CHECK takes an address and an optional order id\n"),
    (f"CHECK {RELAY} 12-34", b"ERR bad order id\n"),
    (f"CHECK <{RELAY}> 12-34", b"ERR bad order id\n"),
    ("ORDER", b"ERR ORDER needs an order id\n"),
    ("ORDER 114-3941689-877223", b"ERR bad order id\n"),
    (f"ORDER {ORDER} extra", b"ERR bad order id\n"),
    ("PING now", b"ERR PING takes no arguments\n"),
    ("STATS please", b"ERR STATS takes no arguments\n"),
    ("CHECK caf\xe9@marketplace.amazon.com", b"ERR line is not ASCII\n"),
    ("\x00\x01\x02", b"ERR unknown command\n"),
    (f"CHECK {RELAY}", BLOCKED),
]


@pytest.mark.parametrize("chunk", [1, 16, 4096])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_pipelined_conversation_over_any_read_size(index: BlocklistIndex, chunk: int, ending: bytes) -> None:
    stream = b"".join(request.encode("latin-1") + ending for request, _ in CONVERSATION)
    replies, closed = run_session(index, stream, chunk)
    assert replies == b"".join(reply for _, reply in CONVERSATION)
    assert not closed


@pytest.mark.parametrize("chunk", [1, 16, 4096])
def test_over_long_line_ends_the_session_after_earlier_replies(index: BlocklistIndex, chunk: int) -> None:
    stream = b"PING\n" + b"CHECK " + b"a" * 2000 + b"@b\nPING\n"
    assert run_session(index, stream, chunk) == (b"PONG\nERR line too long\n", True)


@pytest.mark.parametrize("chunk", [1, 16, 4096])
def test_line_limit_counts_bytes_before_the_lf(index: BlocklistIndex, chunk: int) -> None:
    longest = b"PING" + b" " * (MAX_LINE - 4)  # 1024 bytes: allowed (and answered)
    assert run_session(index, longest + b"\n", chunk) == (b"PONG\n", False)
    assert run_session(index, longest + b" \n", chunk)[1]  # 1025: too long
    assert run_session(index, longest + b"\r\n", chunk)[1]  # the CR counts: 1025


def test_decoder_flags_a_long_line_before_its_lf_arrives() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"x" * MAX_LINE) == []
    assert decoder.feed(b"x") == [LINE_TOO_LONG]
    assert decoder.feed(b"\nPING\n") == []  # nothing after the marker


def test_decoder_keeps_partial_lines() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"PI") == []
    assert decoder.feed(b"NG\r") == []
    assert decoder.feed(b"\nPING\nST") == [b"PING", b"PING"]
    assert decoder.feed(b"ATS\n\n") == [b"STATS", b""]


def test_parse_request_shapes() -> None:
    check = parse_request(f"CHECK Jane <{RELAY.upper()}> {ORDER}".encode())
    assert isinstance(check, Check) and check.address == keys.parse(RELAY) and check.order == keys.parse(ORDER)
    assert isinstance(parse_request(f"ORDER {ORDER}".encode()), Order)
    assert parse_request(b"PING") == Ping() and parse_request(b"STATS") == Stats()
    assert parse_request(b"NOPE") == ErrorReply("unknown command")


def test_learning_an_address_from_a_blocked_order(index: BlocklistIndex) -> None:
    learned: list[tuple[str, str]] = []

    def ask(line: str) -> bytes:
        return answer(parse_request(line.encode()), index, on_address_learned=lambda a, o, c: learned.append((a, o)))

    assert ask(f"CHECK Jane <New@Marketplace.Amazon.com> {ORDER}") == BLOCKED
    assert learned == [("new@marketplace.amazon.com", ORDER)]
    assert ask(f"CHECK {RELAY} {ORDER}") == BLOCKED  # the address is already blocked: nothing to learn
    assert ask("CHECK new@marketplace.amazon.com 999-9999999-9999999") == b"OK\n"
    assert ask("CHECK new@marketplace.amazon.com") == b"OK\n"  # the daemon, not the protocol, updates the index
    assert learned == [("new@marketplace.amazon.com", ORDER)]


def test_stats_and_counters(index: BlocklistIndex) -> None:
    counters = Counters()
    for line in (f"CHECK {RELAY}", "CHECK x@y", f"ORDER {ORDER}", "PING", "BAD"):
        answer(parse_request(line.encode()), index, counters=counters)
    reply = answer(Stats(), index, counters=counters, stats=lambda: {"notices": 7, "entries": -1})
    assert reply.startswith(b"STATS ") and reply.endswith(b"\n") and reply.count(b"\n") == 1
    assert json.loads(reply[6:]) == {"entries": 2, "lookups": 3, "hits": 2, "notices": 7}


def test_blocked_reply_format() -> None:
    assert blocked_reply((FIRST_SEEN << 32) | 3) == BLOCKED
    assert blocked_reply(1) == b"BLOCKED 1970-01-01T00:00:00Z 1\n"  # first seen unknown


def test_decoder_ignores_empty_reads() -> None:
    assert LineDecoder().feed(b"") == []


WORDS = st.sampled_from(
    ["CHECK", "check", "ORDER", "PING", "STATS", RELAY, RELAY.upper(), "a+b@marketplace.amazon.com", "x@y",
     "@x", "x@", "a@b@c", "<x@y>", "Jane", "<", ">", ORDER, "12-3", "caf\xe9@x", "a_b.c-d@e.f", "\x00", "\t", ""]
)


@given(st.lists(WORDS, max_size=4).map(" ".join))
def test_responder_fast_path_agrees_with_the_general_path(line: str) -> None:
    index = BlocklistIndex()
    index.set_address(RELAY, FIRST_SEEN, 3)
    index.set_address("a_b.c-d@e.f", FIRST_SEEN, 1)
    index.set_order(ORDER, FIRST_SEEN, 3)
    raw = line.encode("latin-1")
    general, fast = Counters(), Counters()
    responder = Responder(index, counters=fast, stats=dict)
    assert responder.respond(raw) == answer(parse_request(raw), index, counters=general, stats=dict)
    assert (fast.lookups, fast.hits) == (general.lookups, general.hits)
