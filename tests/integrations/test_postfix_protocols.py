"""The policy and socketmap protocols, sans-IO, fed in reads of 1, 16 and 4096 bytes."""

from __future__ import annotations

import pytest

from inbox_daemon.lookup import BlocklistIndex
from inbox_daemon.lookup.postfix_policy import MAX_LINE, Malformed, PolicyDecoder, PolicySession, PolicySettings
from inbox_daemon.lookup.protocol import Counters
from inbox_daemon.lookup.socketmap import MAX_SKIP, SocketmapSession, encode

RELAY = "jxxvbothd0wtflh@marketplace.amazon.com"
ORDER = "114-3941689-8772232"
SINCE = 1_795_673_854  # 2026-11-26T06:17:34Z
SIZES = [1, 16, 4096]


def make_index() -> BlocklistIndex:
    index = BlocklistIndex()
    index.set_address(RELAY, SINCE, 3)
    index.set_order(ORDER, SINCE, 3)
    return index


def feed(session: PolicySession | SocketmapSession, data: bytes, size: int) -> bytes:
    return b"".join(session.feed(data[i : i + size]) for i in range(0, len(data), size))


def block(recipient: str, *, state: str = "RCPT", sender: str = "tool@seller.example", **extra: str) -> bytes:
    attrs = {"request": "smtpd_access_policy", "protocol_state": state, "protocol_name": "ESMTP",
             "client_address": "127.0.0.1", "sender": sender, "recipient": recipient, **extra}
    return b"".join(f"{k}={v}\n".encode() for k, v in attrs.items()) + b"\n"


REJECT = f"action=REJECT 5.7.1 <{RELAY.upper()}>: buyer opted out of unsolicited seller messages (since 2026-11-26T06:17:34Z)\n\n".encode()
DUNNO = b"action=DUNNO\n\n"
DEFER = b"action=DEFER_IF_PERMIT 4.3.5 opt-out policy service: malformed request\n\n"


def policy(action: str = "REJECT", exempt: tuple[str, ...] = ("orders@seller.example", "@shipping.example")) -> PolicySession:
    return PolicySession(make_index(), PolicySettings(action, frozenset(exempt)), Counters())


@pytest.mark.parametrize("size", SIZES)
def test_policy_many_requests_on_one_connection(size: int) -> None:
    session = policy()
    stream = (block(RELAY.upper()) + block("someone@marketplace.amazon.com") + block(RELAY, state="MAIL")
              + block(RELAY, sender="Orders@Seller.example") + block(RELAY, sender="x@shipping.example")
              + block("") + block(f"<{RELAY}>"))
    replies = feed(session, stream, size)
    assert replies == REJECT + DUNNO * 5 + REJECT.replace(RELAY.upper().encode(), f"<{RELAY}>".encode())
    assert session.problems == []


@pytest.mark.parametrize("action, reply", [
    ("HOLD", f"action=HOLD <{RELAY}>: buyer opted out"), ("DISCARD", f"action=DISCARD <{RELAY}>: buyer opted out"),
    ("DEFER", f"action=DEFER 4.7.1 <{RELAY}>: buyer opted out"),
])
def test_policy_action_is_configurable(action: str, reply: str) -> None:
    assert policy(action).feed(block(RELAY)).startswith(reply.encode())


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("bad, reason", [
    (b"request=smtpd_access_policy\nno equals sign here\n\n", "not name=value"),
    (b"request=smtpd_access_policy\nrecipient=a\0b@x.example\n\n", "not name=value"),
    (b"request=smtpd_access_policy\nrecipient=\xff\xfe@x.example\n\n", "not UTF-8"),
    (b"request=smtpd_access_policy\nhelo_name=" + b"h" * (10 * 1024 * 1024) + b"\n\n", "attribute line over"),
    (b"".join(b"x%d=y\n" % i for i in range(500)) + b"\n", "more than 128 attributes"),
    (b"request=junk\nprotocol_state=RCPT\nrecipient=" + RELAY.encode() + b"\n\n", "not smtpd_access_policy"),
    (b"recipient=" + RELAY.encode() + b"\n\n", "not smtpd_access_policy"),
    (b"\n", "empty attribute block"),
])
def test_policy_malformed_block_defers_and_the_stream_stays_in_step(size: int, bad: bytes, reason: str) -> None:
    session = policy()
    if len(bad) > 1_000_000 and size < 4096:
        size = 4096  # ten megabytes one byte at a time proves nothing more and takes minutes
    reject = REJECT.replace(RELAY.upper().encode(), RELAY.encode())
    assert feed(session, block(RELAY) + bad + block(RELAY), size) == reject + DEFER + reject
    assert len(session.problems) == 1 and reason in session.problems[0]


def test_policy_decoder_memory_is_bounded() -> None:
    decoder = PolicyDecoder()
    for _ in range(100):
        assert decoder.feed(b"x" * 100_000) == []
        assert len(decoder._pending) <= MAX_LINE
    spoiled, fresh = decoder.feed(b"\nrequest=smtpd_access_policy\n\nrequest=smtpd_access_policy\n\n")
    assert isinstance(spoiled, Malformed) and "attribute line over" in spoiled.reason
    assert fresh == {"request": "smtpd_access_policy"}


# -- socketmap ---------------------------------------------------------------------------------


def query(text: str) -> bytes:
    return encode(text)


MAP_REJECT = f"REJECT 5.7.1 <{RELAY}>: buyer opted out of unsolicited seller messages (since 2026-11-26T06:17:34Z)"


@pytest.mark.parametrize("size", SIZES)
def test_socketmap_answers(size: int) -> None:
    session = SocketmapSession(make_index(), "REJECT", Counters())
    stream = b"".join(query(q) for q in [
        f"blocklist {RELAY}", f"blocklist {ORDER}", "blocklist nobody@marketplace.amazon.com",
        "blocklist marketplace.amazon.com", "blocklist jxxvbothd0wtflh@", "blocklist 111-1111111-1111111",
        f"other {RELAY}", "nospace", "blocklist ",
    ])
    replies = feed(session, stream, size)
    assert replies == b"".join([
        encode(f"OK {MAP_REJECT}"), encode(f"OK {MAP_REJECT.replace(f'<{RELAY}>', f'<{ORDER}>')}"),
        encode("NOTFOUND "), encode("NOTFOUND "), encode("NOTFOUND "), encode("NOTFOUND "),
        encode("PERM unknown map 'other'; the map is 'blocklist'"), encode("PERM query is not '<name> <key>'"),
        encode("NOTFOUND "),
    ])
    assert not session.closing


DIGITAL = "D01-5512093-7730148"  # a digital order (Kindle, apps, video)


@pytest.mark.parametrize("size", SIZES)
def test_socketmap_answers_a_digital_order_in_either_case(size: int) -> None:
    """A blocked digital order is found as Postfix asks for it, ``D`` or ``d``; its neighbour is not."""
    index = make_index()
    index.set_order(DIGITAL.lower(), SINCE, 1)
    session = SocketmapSession(index, "REJECT", Counters())
    asked = [DIGITAL, DIGITAL.lower(), "D01-5512093-7730149", "DD1-5512093-7730148"]
    replies = feed(session, b"".join(query(f"blocklist {key}") for key in asked), size)
    assert replies == b"".join([
        encode(f"OK {MAP_REJECT.replace(f'<{RELAY}>', f'<{DIGITAL}>')}"),
        encode(f"OK {MAP_REJECT.replace(f'<{RELAY}>', f'<{DIGITAL.lower()}>')}"),
        encode("NOTFOUND "), encode("NOTFOUND "),
    ])
    assert not session.closing and session.problems == []


@pytest.mark.parametrize("size", SIZES)
def test_socketmap_long_queries_are_refused_cleanly(size: int) -> None:
    session = SocketmapSession(make_index(), "REJECT", Counters())
    huge = query("blocklist " + "a" * (MAX_SKIP - len("blocklist ")))  # exactly 100,000 bytes
    replies = feed(session, huge + query(f"blocklist {RELAY}"), max(size, 1024))
    assert replies == encode("PERM query over 1100 bytes") + encode(f"OK {MAP_REJECT}")
    assert not session.closing and session.problems == ["query over 1100 bytes"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("stream, reason", [
    (b"100001:" + b"a" * 64, "query over 100000 bytes"),
    (b"abc:blocklist x,", "bad netstring length"),
    (b"9999999", "bad netstring length"),
    (b"5:hello;", "netstring without its comma"),
])
def test_socketmap_garbage_is_refused_and_closes(size: int, stream: bytes, reason: str) -> None:
    session = SocketmapSession(make_index(), "REJECT", Counters())
    replies = feed(session, query(f"blocklist {ORDER}") + stream + query(f"blocklist {RELAY}"), size)
    assert replies.startswith(encode(f"OK {MAP_REJECT.replace(f'<{RELAY}>', f'<{ORDER}>')}"))
    assert replies.endswith(encode(f"PERM {reason}"))  # nothing after: the stream is out of step
    assert session.closing and session.problems == [reason]
