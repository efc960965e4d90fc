"""Postfix's socketmap lookup table (socketmap_table(5)), sans-IO: netstrings in and out.

A request is the netstring ``<name> <key>``; the reply the netstring ``OK <data>``,
``NOTFOUND ``, ``TEMP``/``TIMEOUT``/``PERM <reason>``. With the map name ``blocklist`` a
blocked relay address or order id answers an access(5) action, so
``check_recipient_access socketmap:inet:HOST:PORT:blocklist`` refuses it at RCPT time.
Netstrings are D. J. Bernstein's ``<length>:<bytes>,`` (https://cr.yp.to/proto/netstrings.txt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.lookup.postfix_policy import lookup, opted_out_action
from inbox_daemon.lookup.protocol import Counters

__all__ = [
    "MAP_NAME",
    "MAX_QUERY",
    "MAX_SKIP",
    "Query",
    "Refusal",
    "NetstringDecoder",
    "encode",
    "answer",
    "SocketmapSession",
]

MAP_NAME: Final = "blocklist"
MAX_QUERY: Final = 1100  # "blocklist " and an address: an address is at most 254 bytes (RFC 5321 4.5.3.1)
MAX_SKIP: Final = 100_000  # longer queries are read past and refused; longer still, the connection ends
_MAX_DIGITS: Final = len(str(MAX_SKIP))


@dataclass(frozen=True, slots=True)
class Query:
    """One request: the map name and the key, as Postfix sent them."""

    name: str
    key: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused with ``PERM <reason>``; ``fatal`` when the stream is out of step."""

    reason: str
    fatal: bool = False


def encode(payload: str) -> bytes:
    data = payload.encode("utf-8", "replace")
    return b"%d:%s," % (len(data), data)


class NetstringDecoder:
    """Frames netstrings; too long ones are skipped without being held in memory."""

    def __init__(self) -> None:
        self._buffer = b""
        self._length: int | None = None  # of the netstring being read, once its prefix is in
        self._skip = 0  # bytes still to drop of a too-long netstring (its comma included)
        self._failed = False

    @property
    def pending(self) -> bool:
        """True while a netstring has begun and not ended (its request deadline runs)."""
        return bool(self._buffer) or self._length is not None or self._skip > 0

    def feed(self, data: bytes) -> list[Query | Refusal]:
        if self._failed:
            return []
        self._buffer += data
        out: list[Query | Refusal] = []
        while not self._failed:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                self._skip -= dropped
                self._buffer = self._buffer[dropped:]
                if self._skip:
                    break
                continue
            item = self._next()
            if item is None:
                break
            out.append(item)
        return out

    def _next(self) -> Query | Refusal | None:
        if self._length is None:
            colon = self._buffer.find(b":", 0, _MAX_DIGITS + 1)
            if colon < 0:
                if len(self._buffer) > _MAX_DIGITS or not self._buffer.isdigit() and self._buffer:
                    return self._fail("bad netstring length")
                return None
            digits = self._buffer[:colon]
            if not digits.isdigit():
                return self._fail("bad netstring length")
            self._length, self._buffer = int(digits), self._buffer[colon + 1 :]
            if self._length > MAX_SKIP:
                return self._fail(f"query over {MAX_SKIP} bytes")
            if self._length > MAX_QUERY:
                self._skip, self._length = self._length + 1, None
                return Refusal(f"query over {MAX_QUERY} bytes")
        if len(self._buffer) < self._length + 1:
            return None
        body, end = self._buffer[: self._length], self._buffer[self._length : self._length + 1]
        self._buffer, self._length = self._buffer[self._length + 1 :], None
        if end != b",":
            return self._fail("netstring without its comma")
        return _query(body)

    def _fail(self, reason: str) -> Refusal:
        self._failed = True
        self._buffer = b""
        return Refusal(reason, fatal=True)


def _query(body: bytes) -> Query | Refusal:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal("query is not UTF-8")
    name, space, key = text.partition(" ")
    if not space or not name or "\0" in text:
        return Refusal("query is not '<name> <key>'")
    return Query(name, key)


def answer(request: Query | Refusal, index: BlocklistIndex, action: str, counters: Counters | None = None) -> bytes:
    """The reply netstring for one request."""
    if isinstance(request, Refusal):
        return encode(f"PERM {request.reason}")
    if request.name != MAP_NAME:
        return encode(f"PERM unknown map {request.name[:64]!r}; the map is {MAP_NAME!r}")
    key = request.key.strip()
    packed = lookup(index, key, counters) if key else 0
    return encode(f"OK {opted_out_action(action, key, packed)}") if packed else encode("NOTFOUND ")


class SocketmapSession:
    """One Postfix connection: bytes in, reply bytes out; ``closing`` after a fatal refusal."""

    def __init__(self, index: BlocklistIndex, action: str, counters: Counters) -> None:
        self._decoder = NetstringDecoder()
        self._index, self._action, self._counters = index, action, counters
        self.problems: list[str] = []  # refused requests since the last look; the server logs them
        self.closing = False

    @property
    def pending(self) -> bool:
        return self._decoder.pending

    def feed(self, data: bytes) -> bytes:
        replies = []
        for request in self._decoder.feed(data):
            if isinstance(request, Refusal):
                self.problems.append(request.reason)
                self.closing = self.closing or request.fatal
            replies.append(answer(request, self._index, self._action, self._counters))
        return b"".join(replies)
