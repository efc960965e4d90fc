"""The client library sender tools import: ask the daemon whether a buyer opted out.

Sync (``Client``) and asyncio (``AsyncClient``), over the Unix socket or TCP, one connection
reused across calls, requests pipelined (docs/query-protocol.md). Every call either returns a
typed ``Reply`` or raises ``QueryError``: an ``ERR`` reply, a refused or broken connection, a
timeout and an unexpected line all raise, so a tool that cannot get an answer does not send
(failing open would mail a buyer who opted out). A connection the daemon closed between calls
(idle timeout, restart) is reopened once, transparently: every request is a read, safe to repeat.

    with Client("/run/inbox-daemon/query.sock") as client:
        if not client.check("jxxvbothd0wtflh@marketplace.amazon.com", "114-3941689-8772232").blocked:
            send()
"""

from __future__ import annotations

import asyncio
import json
import selectors
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Final

from inbox_daemon.keys import address as _address
from inbox_daemon.keys import order_id as _order_id
from inbox_daemon.errors import QueryError

__all__ = ["Reply", "Client", "AsyncClient", "QueryError", "Key", "request_line", "parse_target"]

_MAX_REPLY: Final = 64 * 1024  # a STATS line is the longest reply; anything longer is garbled
_READ: Final = 256 * 1024

Key = str | tuple[str, str | None]
"""What ``check_many`` takes per recipient: an address or order id, or (address, order id)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to CHECK or ORDER."""

    blocked: bool
    first_seen: datetime | None = None  # UTC, when blocked
    count: int = 0  # notices, when blocked

    def __str__(self) -> str:
        """The reply as the daemon sent it: ``OK`` or ``BLOCKED <first-seen> <count>``."""
        if not self.blocked:
            return "OK"
        moment = self.first_seen or datetime(1970, 1, 1, tzinfo=timezone.utc)
        return f"BLOCKED {moment:%Y-%m-%dT%H:%M:%SZ} {self.count}"

    @classmethod
    def parse(cls, line: str) -> Reply:
        """``OK`` or ``BLOCKED <first-seen> <count>``; QueryError for anything else (ERR too)."""
        if line == "OK":
            return cls(False)
        if line.startswith("ERR"):
            raise QueryError(f"the daemon said: {line}")
        words = line.split(" ")
        if len(words) != 3 or words[0] != "BLOCKED":
            raise QueryError(f"unexpected reply: {line!r}")
        try:
            first_seen = _moment(words[1])
            count = int(words[2])
        except ValueError as exc:
            raise QueryError(f"unexpected reply: {line!r}") from exc
        return cls(True, first_seen, count)


@lru_cache(maxsize=4096)
def _moment(text: str) -> datetime:
    """``2026-11-26T06:17:34Z`` -> an aware datetime (cached: a campaign repeats few dates)."""
    if len(text) != 20 or text[10] != "T" or text[19] != "Z":
        raise ValueError(text)
    return datetime.fromisoformat(text[:19]).replace(tzinfo=timezone.utc)


def request_line(key: Key) -> str:
    """The request for one key: ``ORDER`` for a bare order id, else ``CHECK``.

    Keys go out in their canonical form (``inbox_daemon.keys``); one that is not a key goes as
    given, and the daemon's ``ERR`` for it raises QueryError."""
    if isinstance(key, tuple):
        address, order_id = key
        address = _address(address) or address
        if not order_id:
            return f"CHECK {address}"
        return f"CHECK {address} {_order_id(order_id) or order_id}"
    order = _order_id(key)
    return f"ORDER {order}" if order is not None else f"CHECK {_address(key) or key}"


def parse_target(target: str | tuple[str, int]) -> tuple[str | None, tuple[str, int] | None]:
    """``/path`` (or ``./path``) -> a Unix socket; ``host:port`` or (host, port) -> TCP."""
    if isinstance(target, tuple):
        return None, target
    if target.startswith(("/", ".")) or ":" not in target:
        return target, None
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"not a socket path or host:port: {target!r}")
    return None, (host.strip("[]"), int(port))


def _encode(lines: Sequence[str]) -> bytes:
    for line in lines:
        if "\n" in line or "\r" in line or "\0" in line:
            raise QueryError("a request may not contain a line break or NUL")
    try:
        return "".join(f"{line}\n" for line in lines).encode("ascii")
    except UnicodeEncodeError as exc:
        raise QueryError(f"a request must be ASCII: {exc}") from None


def _replies(lines: Sequence[str]) -> list[Reply]:
    return [Reply.parse(line) for line in lines]


def _pong(line: str) -> bool:
    if line != "PONG":
        raise QueryError(f"unexpected reply: {line!r}" if not line.startswith("ERR") else f"the daemon said: {line}")
    return True


def _stats(line: str) -> dict[str, Any]:
    verb, _, payload = line.partition(" ")
    try:
        figures = json.loads(payload) if verb == "STATS" else None
    except ValueError:
        figures = None
    if not isinstance(figures, dict):
        raise QueryError(f"unexpected reply: {line!r}" if not line.startswith("ERR") else f"the daemon said: {line}")
    return figures


class _Closed(Exception):
    """The daemon closed the connection before any reply to this exchange arrived."""


class _Lines:
    """Splits reply bytes into lines; a reply longer than _MAX_REPLY is garbage."""

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False  # a reply byte arrived

    def take(self, data: bytes, want: int, target: Callable[[], str]) -> list[str]:
        """The lines ``data`` completes; empty ``data`` is the end of the stream."""
        if not data:
            if want and not self.buffer and not self.started:
                raise _Closed  # nothing of this exchange arrived: the connection was stale
            raise QueryError(f"{target()} closed the connection mid-reply")
        self.started = True
        self.buffer += data
        if self.buffer.count(b"\n") == 0:
            if len(self.buffer) > _MAX_REPLY:
                raise QueryError("reply line too long")
            return []
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(lines) > want:
            raise QueryError("more replies than requests")
        try:
            return [line.decode("ascii").rstrip("\r") for line in lines]
        except UnicodeDecodeError:
            raise QueryError("reply is not ASCII") from None


class Client:
    """One reused connection to the query socket; not thread-safe (one per thread)."""

    def __init__(self, target: str | tuple[str, int], *, timeout: float = 5.0) -> None:
        self._unix_path, self._tcp = parse_target(target)
        self._timeout = timeout
        self._sock: socket.socket | None = None

    def __enter__(self) -> Client:
        self._connect()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- commands ----------------------------------------------------------------------------

    def check(self, address: str, order_id: str | None = None) -> Reply:
        """Is this relay address (or, with it, this order) blocked? Raises QueryError if unsure."""
        return Reply.parse(self.raw(request_line((address, order_id))))

    def order(self, order_id: str) -> Reply:
        return Reply.parse(self.raw(f"ORDER {_order_id(order_id) or order_id}"))

    def check_many(self, keys: Iterable[Key]) -> list[Reply]:
        """One reply per key, in order, all requests pipelined; any ERR raises (after reading all)."""
        return _replies(self.pipeline([request_line(key) for key in keys]))

    def ping(self) -> bool:
        """True when the daemon answers PONG; QueryError otherwise."""
        return _pong(self.raw("PING"))

    def stats(self) -> dict[str, Any]:
        return _stats(self.raw("STATS"))

    def raw(self, line: str) -> str:
        """Send one request line, return the reply line without its ending."""
        return self.pipeline([line])[0]

    def pipeline(self, lines: Sequence[str]) -> list[str]:
        """Send request lines at once and read their replies, in order (reconnects once)."""
        payload = _encode(lines)
        if not lines:
            return []
        reused = self._sock is not None
        try:
            return self._exchange(self._connect(), payload, len(lines))
        except _Closed:
            self.close()
            if not reused:
                raise QueryError(f"{self._target()} closed the connection without a reply") from None
        try:
            return self._exchange(self._connect(), payload, len(lines))
        except _Closed:
            self.close()
            raise QueryError(f"{self._target()} closed the connection without a reply") from None

    # -- plumbing ----------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            if self._unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self._timeout)
                    sock.connect(self._unix_path)
                except OSError:
                    sock.close()
                    raise
            else:
                assert self._tcp is not None
                sock = socket.create_connection(self._tcp, timeout=self._timeout)
        except OSError as exc:
            raise QueryError(f"cannot reach the query socket {self._target()}: {exc}") from exc
        sock.setblocking(False)
        self._sock = sock
        return sock

    def _target(self) -> str:
        return self._unix_path if self._unix_path is not None else "%s:%d" % self._tcp  # type: ignore[str-format]

    def _exchange(self, sock: socket.socket, payload: bytes, count: int) -> list[str]:
        """Write and read at once (a large pipeline would deadlock otherwise: both sides'
        buffers full); a ``timeout`` without progress either way fails the exchange."""
        try:
            return self._pump(sock, payload, count)
        except _Closed:
            raise
        except QueryError:
            self.close()  # the connection's state is unknown now
            raise
        except OSError as exc:
            self.close()
            raise QueryError(f"query socket {self._target()} failed: {exc}") from exc

    def _pump(self, sock: socket.socket, payload: bytes, count: int) -> list[str]:
        view, sent, lines = memoryview(payload), 0, _Lines()
        replies: list[str] = []
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while len(replies) < count:
                events = selector.select(self._timeout)
                if not events:
                    raise QueryError(f"no reply from {self._target()} within {self._timeout}s")
                mask = events[0][1]
                if mask & selectors.EVENT_WRITE:
                    try:
                        sent += sock.send(view[sent : sent + _READ])
                    except (BrokenPipeError, ConnectionResetError):
                        sent = len(payload)  # the peer is gone; read what it said before going
                    if sent == len(payload):
                        selector.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        data = sock.recv(_READ)
                    except ConnectionResetError:
                        data = b""
                    replies += lines.take(data, count - len(replies), self._target)
        return replies


class AsyncClient:
    """The asyncio client: one reused connection; concurrent calls take turns on it."""

    def __init__(self, target: str | tuple[str, int], *, timeout: float = 5.0) -> None:
        self._unix_path, self._tcp = parse_target(target)
        self._timeout = timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        async with self._lock:
            await self._connect()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            streams[1].close()
            try:
                await streams[1].wait_closed()
            except OSError:
                pass

    async def check(self, address: str, order_id: str | None = None) -> Reply:
        """Is this relay address (or, with it, this order) blocked? Raises QueryError if unsure."""
        return Reply.parse(await self.raw(request_line((address, order_id))))

    async def order(self, order_id: str) -> Reply:
        return Reply.parse(await self.raw(f"ORDER {_order_id(order_id) or order_id}"))

    async def check_many(self, keys: Iterable[Key]) -> list[Reply]:
        """One reply per key, in order, all requests pipelined; any ERR raises (after reading all)."""
        return _replies(await self.pipeline([request_line(key) for key in keys]))

    async def ping(self) -> bool:
        """True when the daemon answers PONG; QueryError otherwise."""
        return _pong(await self.raw("PING"))

    async def stats(self) -> dict[str, Any]:
        return _stats(await self.raw("STATS"))

    async def raw(self, line: str) -> str:
        return (await self.pipeline([line]))[0]

    async def pipeline(self, lines: Sequence[str]) -> list[str]:
        """Send request lines at once and read their replies, in order (reconnects once)."""
        payload = _encode(lines)
        if not lines:
            return []
        async with self._lock:
            reused = self._streams is not None
            try:
                return await self._exchange(payload, len(lines))
            except _Closed:
                await self.close()
                if not reused:
                    raise QueryError(f"{self._target()} closed the connection without a reply") from None
            try:
                return await self._exchange(payload, len(lines))
            except _Closed:
                await self.close()
                raise QueryError(f"{self._target()} closed the connection without a reply") from None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is not None:
            return self._streams
        try:
            if self._unix_path is not None:
                opening = asyncio.open_unix_connection(self._unix_path)
            else:
                assert self._tcp is not None
                opening = asyncio.open_connection(*self._tcp)
            self._streams = await asyncio.wait_for(opening, self._timeout)
        except (OSError, TimeoutError) as exc:
            raise QueryError(f"cannot reach the query socket {self._target()}: {exc!r}") from exc
        return self._streams

    def _target(self) -> str:
        return self._unix_path if self._unix_path is not None else "%s:%d" % self._tcp  # type: ignore[str-format]

    async def _exchange(self, payload: bytes, count: int) -> list[str]:
        reader, writer = await self._connect()
        try:
            try:
                writer.write(payload)  # the transport writes while we read: no deadlock on big pipelines
            except (BrokenPipeError, ConnectionResetError):
                raise _Closed from None
            return await self._read(reader, count)
        except _Closed:
            raise
        except QueryError:
            await self.close()
            raise
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise QueryError(f"query socket {self._target()} failed: {exc!r}") from exc

    async def _read(self, reader: asyncio.StreamReader, count: int) -> list[str]:
        lines, replies = _Lines(), list[str]()
        while len(replies) < count:
            try:
                data = await asyncio.wait_for(reader.read(_READ), self._timeout)
            except TimeoutError:
                raise QueryError(f"no reply from {self._target()} within {self._timeout}s") from None
            except (BrokenPipeError, ConnectionResetError):
                data = b""
            replies += lines.take(data, count - len(replies), self._target)
        return replies
