"""The query protocol, sans-IO: bytes in, requests out; requests in, reply bytes out.

No sockets here (STYLE habit 8): ``LineDecoder`` frames, ``parse_request`` reads one line,
``answer`` turns a request into one reply line. The server only wires them to a transport.
The wire format is documented in docs/query-protocol.md; keep the two in step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Final, NamedTuple, cast

from inbox_daemon import keys
from inbox_daemon.lookup.index import BlocklistIndex

try:
    from inbox_daemon.lookup import _fastpath
except ImportError:  # not built (no compiler, or the build failed): pure Python throughout
    _fastpath = None  # type: ignore[assignment]

__all__ = [
    "MAX_LINE",
    "LineTooLong",
    "LINE_TOO_LONG",
    "LineDecoder",
    "Check",
    "Order",
    "Ping",
    "Stats",
    "Request",
    "ErrorReply",
    "Counters",
    "parse_request",
    "answer",
    "Responder",
    "blocked_reply",
    "OK",
    "PONG",
    "ERR_LINE_TOO_LONG",
    "ERR_TOO_MANY_CONNECTIONS",
]

MAX_LINE: Final = 1024  # bytes before the LF, a CR included (docs/query-protocol.md)

OK: Final = b"OK\n"
PONG: Final = b"PONG\n"
ERR_LINE_TOO_LONG: Final = b"ERR line too long\n"
ERR_TOO_MANY_CONNECTIONS: Final = b"ERR too many connections\n"


class LineTooLong:
    """Marks where a line went over MAX_LINE; the decoder yields nothing after it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LINE_TOO_LONG"


LINE_TOO_LONG: Final = LineTooLong()


class LineDecoder:
    """Splits a byte stream into lines (LF, or CRLF) of at most MAX_LINE bytes."""

    __slots__ = ("_pending", "_failed")

    def __init__(self) -> None:
        self._pending = b""
        self._failed = False

    @property
    def partial(self) -> bool:
        """True while a line has begun and not ended (a request deadline runs)."""
        return bool(self._pending)

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        """The lines completed by ``data``, without their ending; LINE_TOO_LONG ends the list."""
        if self._failed:
            return []
        if not self._pending and data[-1:] == b"\n" and data.find(b"\n") == len(data) - 1 and len(data) <= MAX_LINE + 1:
            return [data[:-2] if data[-2:-1] == b"\r" else data[:-1]]  # one whole line: the usual read
        if self._pending:
            data = self._pending + data
        pieces = data.split(b"\n")
        self._pending = pieces.pop()
        too_long = len(self._pending) > MAX_LINE  # no need to wait for its LF to know
        if pieces and max(map(len, pieces)) > MAX_LINE:  # the CR, if any, counts: before the LF
            del pieces[next(i for i, line in enumerate(pieces) if len(line) > MAX_LINE) :]
            too_long = True
        lines: list[bytes | LineTooLong]
        if b"\r" in data:
            lines = [line[:-1] if line[-1:] == b"\r" else line for line in pieces]
        else:
            lines = cast(list[bytes | LineTooLong], pieces)  # the list is only ever appended to
        return self._fail(lines) if too_long else lines

    def _fail(self, lines: list[bytes | LineTooLong]) -> list[bytes | LineTooLong]:
        self._failed = True
        self._pending = b""
        lines.append(LINE_TOO_LONG)
        return lines


class Check(NamedTuple):
    """``CHECK <address> [<order-id>]``, the keys parsed once (``keys.BuyerKey``); the index
    digests them into its pseudonyms.

    Requests are NamedTuples: built on every query, they cost half a frozen dataclass.
    """

    address: keys.BuyerKey
    order: keys.BuyerKey | None = None


class Order(NamedTuple):
    """``ORDER <order-id>``."""

    order: keys.BuyerKey


@dataclass(frozen=True, slots=True)
class Ping:
    """``PING``."""


@dataclass(frozen=True, slots=True)
class Stats:
    """``STATS``."""


Request = Check | Order | Ping | Stats


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """``ERR <reason>``: bad input gets a named reply and the connection lives on."""

    reason: str

    def encode(self) -> bytes:
        return f"ERR {self.reason}\n".encode("ascii")


_PING = Ping()
_STATS = Stats()
_ERR_EMPTY = ErrorReply("empty line")
_ERR_NOT_ASCII = ErrorReply("line is not ASCII")
_ERR_UNKNOWN = ErrorReply("unknown command")
_ERR_CHECK_EMPTY = ErrorReply("CHECK needs an address")
_ERR_CHECK_ARGS = ErrorReply("CHECK takes an address and an optional order id")
_ERR_BAD_ADDRESS = ErrorReply("bad address")
_ERR_ORDER_EMPTY = ErrorReply("ORDER needs an order id")
_ERR_BAD_ORDER = ErrorReply("bad order id")
_ERR_NO_ARGUMENTS = {b"PING": ErrorReply("PING takes no arguments"), b"STATS": ErrorReply("STATS takes no arguments")}


def parse_request(line: bytes) -> Request | ErrorReply:
    """One request line (without its LF) -> a request, or the error to reply."""
    parts = line.split(None, 1)
    if not parts:
        return _ERR_EMPTY
    if not line.isascii():
        return _ERR_NOT_ASCII
    verb = parts[0].upper()
    argument = parts[1].decode("ascii").strip() if len(parts) == 2 else ""
    if verb == b"CHECK":
        return _parse_check(argument)
    if verb == b"ORDER":
        return _parse_order(argument)
    if verb == b"PING" or verb == b"STATS":
        if argument:
            return _ERR_NO_ARGUMENTS[verb]
        return _PING if verb == b"PING" else _STATS
    return _ERR_UNKNOWN


def _parse_check(argument: str) -> Check | ErrorReply:
    if not argument:
        return _ERR_CHECK_EMPTY
    gt = argument.rfind(">")
    if gt >= 0:  # a display name or brackets: the address ends at the last ">"
        address, order_id = argument[: gt + 1], argument[gt + 1 :].strip()
    else:
        words = argument.split()
        if len(words) > 2:
            return _ERR_CHECK_ARGS
        address, order_id = words[0], (words[1] if len(words) == 2 else "")
    parsed = keys.BuyerKey.email(address)
    if parsed is None:
        return _ERR_BAD_ADDRESS
    if not order_id:
        return Check(parsed)
    order = keys.BuyerKey.order(order_id)
    if order is None:
        return _ERR_BAD_ORDER
    return Check(parsed, order)


def _parse_order(argument: str) -> Order | ErrorReply:
    if not argument:
        return _ERR_ORDER_EMPTY
    order = keys.BuyerKey.order(argument)
    return _ERR_BAD_ORDER if order is None else Order(order)


@dataclass(slots=True)
class Counters:
    """What STATS reports about lookups; the server owns one."""

    lookups: int = 0  # CHECK and ORDER requests answered
    hits: int = 0  # of which BLOCKED


@lru_cache(maxsize=1 << 16)
def blocked_reply(packed: int) -> bytes:
    """``BLOCKED <first-seen> <count>`` for ``first_seen << 32 | count`` (cached: many repeat)."""
    first_seen = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(packed >> 32))
    return f"BLOCKED {first_seen} {packed & 0xFFFFFFFF}\n".encode("ascii")


AddressLearned = Callable[[str, str, str | None], None]  # (address, order id, client identity)
StatsSource = Callable[[], Mapping[str, Any]]


def answer(
    request: Request | ErrorReply,
    index: BlocklistIndex,
    *,
    counters: Counters | None = None,
    on_address_learned: AddressLearned | None = None,
    stats: StatsSource | None = None,
    client: str | None = None,
) -> bytes:
    """The reply line for one parsed request; ``client`` (the peer's uid or address) goes to
    ``on_address_learned`` for the audit trail."""
    if isinstance(request, Check):
        return _answer_check(request, index, counters, on_address_learned, client)
    if isinstance(request, Order):
        return _count(index.lookup_key(index.key(request.order)), counters)
    if isinstance(request, Ping):
        return PONG
    if isinstance(request, Stats):
        return _answer_stats(index, counters, stats)
    return request.encode()


def _answer_check(
    request: Check, index: BlocklistIndex, counters: Counters | None, learned: AddressLearned | None,
    client: str | None = None,
) -> bytes:
    packed = index.lookup_key(index.key(request.address))
    if not packed and request.order is not None:
        packed = index.lookup_key(index.key(request.order))
        if packed and learned is not None:
            # The order is blocked and the address was not: the daemon records the address on
            # that opt-out and updates the index itself (docs/query-protocol.md, CHECK).
            learned(request.address.value, request.order.value, client)
    return _count(packed, counters)


def _count(packed: int, counters: Counters | None) -> bytes:
    if counters is not None:
        counters.lookups += 1
        if packed:
            counters.hits += 1
    return blocked_reply(packed) if packed else OK


def _answer_stats(index: BlocklistIndex, counters: Counters | None, stats: StatsSource | None) -> bytes:
    figures: dict[str, Any] = {"entries": len(index)}
    if counters is not None:
        figures.update(lookups=counters.lookups, hits=counters.hits)
    if stats is not None:
        for name, value in stats().items():
            figures.setdefault(name, value)
    return b"STATS " + json.dumps(figures, separators=(",", ":"), default=str).encode("ascii") + b"\n"


# Bytes that may stand in an address that ``keys.address`` leaves as it is. Deleting them from a
# token leaves exactly b"@" for such an address; anything else (upper case, "+", brackets,
# non-ASCII, a second "@") takes the general path, and so does a token ``keys.address`` refuses
# for its dots or length (``_plain``). lookup/_fastpath.c's is_plain_check is the same test.
_PLAIN_ADDRESS_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789._-"


def _plain(token: bytes) -> bool:
    """Whether ``keys.address`` would return ``token`` (ASCII) unchanged: the fast-path test."""
    return (
        token.translate(None, _PLAIN_ADDRESS_BYTES) == b"@"
        and token[0] != 64
        and token[-1] != 64
        and token[-1] != 46
        and b"@." not in token
        and b".." not in token
        and len(token) <= keys.MAX_ADDRESS
    )




# The C accelerator of pipelined reads (lookup/_fastpath.c answer_lines, which digests the
# addresses itself), or None for pure Python throughout. Responder.respond is the reference;
# tests set this to None to compare the two.
FASTPATH: ModuleType | None = _fastpath


class Responder:
    """``answer(parse_request(line), ...)`` with a fast path for the commonest request.

    Sender tools send ``CHECK <relay-address>`` on every message; for a lower-case address
    without tag or brackets this skips the general parser (about 3x less work per request).
    tests/lookup check that both paths give the same reply for every kind of line.
    """

    __slots__ = ("index", "counters", "_learned", "_stats", "_lookup", "_address_key")

    def __init__(
        self,
        index: BlocklistIndex,
        *,
        counters: Counters | None = None,
        on_address_learned: AddressLearned | None = None,
        stats: StatsSource | None = None,
    ) -> None:
        self.index = index
        self.counters = counters if counters is not None else Counters()
        self._learned = on_address_learned
        self._stats = stats
        self._lookup = index.lookup_key
        self._address_key = index.address_bytes_key

    def respond(self, line: bytes, client: str | None = None) -> bytes:
        if line[:6] == b"CHECK ":
            token = line[6:]
            if _plain(token):
                packed = self._lookup(self._address_key(token))
                counters = self.counters
                counters.lookups += 1
                if packed:
                    counters.hits += 1
                    return blocked_reply(packed)
                return OK
        return answer(
            parse_request(line),
            self.index,
            counters=self.counters,
            on_address_learned=self._learned,
            stats=self._stats,
            client=client,
        )

    def respond_lines(self, lines: list[bytes], start: int = 0, stop: int | None = None, client: str | None = None) -> bytes:
        """The replies to ``lines[start:stop]``, joined: a pipelined read's answer, in one write.

        With the C accelerator, runs of fast-path lines are answered in C; each other line by
        ``respond``, in order. Either way the bytes and the counters are ``respond``'s.

        """
        if stop is None:
            stop = len(lines)
        fast, respond = FASTPATH, self.respond
        if fast is None:
            return b"".join([respond(line, client) for line in lines[start:stop]])
        counters, tables = self.counters, self.index.shared_tables()
        replies: list[bytes] = []
        while start < stop:
            run, start, lookups, hits = fast.answer_lines(lines, start, stop, tables)
            replies.append(run)
            counters.lookups += lookups
            counters.hits += hits
            if start < stop:  # a line the C code leaves to Python (it may change the index)
                replies.append(respond(lines[start], client))
                start += 1
        return b"".join(replies)
