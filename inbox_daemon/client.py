"""The client library sender tools import: ask the daemon whether a buyer opted out.

Sync (``Client``) and asyncio (``AsyncClient``), over the Unix socket or TCP, one connection
reused across calls, requests pipelined (docs/query-protocol.md). Every call either returns a
typed ``Reply`` or raises ``QueryError``: an ``ERR`` reply, a refused or broken connection, a
timeout (one total deadline per call) and an unexpected line all raise, so a tool that cannot
get an answer does not send (failing open would mail a buyer who opted out). Replies name no
request, so each connection keeps an explicit ``State``: a call interrupted in any way (an
error, a cancellation, KeyboardInterrupt) discards the connection, and bytes that arrive when
no reply is due do too. A connection the daemon closed between calls (idle timeout, restart)
is reopened once, transparently: every request is a read, safe to repeat.

    with Client("/run/inbox-daemon/query.sock") as client:
        if not client.check("jxxvbothd0wtflh@marketplace.amazon.com", "114-3941689-8772232").blocked:
            send()
"""

from __future__ import annotations

import asyncio
import enum
import json
import re
import select
import selectors
import socket
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from types import TracebackType
from typing import Any, Final, TypeVar

from inbox_daemon.errors import QueryError

__all__ = ["Reply", "Client", "AsyncClient", "QueryError", "Key", "State", "request_line", "parse_target"]

_T = TypeVar("_T")

_MAX_REPLY: Final = 64 * 1024  # a STATS line is the longest reply; anything longer is garbled
_READ: Final = 256 * 1024
_ORDER_ID = re.compile(r"[0-9]{3}-[0-9]{7}-[0-9]{7}")  # Amazon's order id (docs/query-protocol.md)

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
    """The request for one key: ``ORDER`` for a bare order id, else ``CHECK``."""
    if isinstance(key, tuple):
        address, order_id = key
        return f"CHECK {address}" if not order_id else f"CHECK {address} {order_id}"
    return f"ORDER {key.strip()}" if _ORDER_ID.fullmatch(key.strip()) else f"CHECK {key}"


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


def _reply(lines: Sequence[str]) -> Reply:
    return Reply.parse(lines[0])


def _pong(lines: Sequence[str]) -> bool:
    line = lines[0]
    if line != "PONG":
        raise QueryError(f"unexpected reply: {line!r}" if not line.startswith("ERR") else f"the daemon said: {line}")
    return True


def _stats(lines: Sequence[str]) -> dict[str, Any]:
    line = lines[0]
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


class State(enum.Enum):
    """Where a connection stands; only an IDLE one may carry a new request (STYLE habit 17)."""

    IDLE = "idle"  # every request sent has had its reply, and nothing else arrived
    WAITING = "waiting"  # requests went out and not all replies are in
    BROKEN = "broken"  # an exchange failed or was interrupted: discarded, never reused


class _Replies:
    """The reply lines to one pipelined batch of ``want`` requests, counted as they arrive.

    Replies carry nothing that names their request (docs/query-protocol.md), so a reply belongs
    to a request by position only: a line beyond ``want``, or any byte after the last wanted
    line, means the stream is out of step and nothing in it can be trusted.
    """

    def __init__(self, want: int) -> None:
        self.want = want
        self.lines: list[str] = []
        self._buffer = b""
        self._started = False  # a reply byte arrived

    def feed(self, data: bytes, target: str) -> bool:
        """Take ``data`` (empty: end of stream); True once all ``want`` lines are in."""
        if not data:
            if not self._started:
                raise _Closed  # nothing of this exchange arrived: the connection was stale
            raise QueryError(f"{target} closed the connection mid-reply")
        self._started = True
        buffer = self._buffer + data
        if b"\n" in data:
            *lines, buffer = buffer.split(b"\n")
            if len(self.lines) + len(lines) > self.want:
                raise QueryError("more replies than requests")
            try:
                self.lines += [line.decode("ascii").rstrip("\r") for line in lines]
            except UnicodeDecodeError:
                raise QueryError("reply is not ASCII") from None
        if len(buffer) > _MAX_REPLY:
            raise QueryError("reply line too long")
        self._buffer = buffer
        if len(self.lines) < self.want:
            return False
        if buffer:
            raise QueryError("bytes after the last reply")
        return True


class _Deadline:
    """One total deadline for a call: connecting, sending and every read share it, so a
    trickled reply cannot stretch a call past its timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self, target: str) -> float:
        """Seconds left; QueryError once none are."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise QueryError(f"no reply from {target} within {self.seconds}s")
        return left


@contextmanager
def _discarding_on_failure(discard: Callable[[], None], target: str) -> Iterator[None]:
    """Whatever ends an exchange early — a QueryError, an OSError (raised as QueryError), a
    cancellation, KeyboardInterrupt, a gevent or Celery timeout — leaves the connection in an
    unknown state: ``discard`` it (BROKEN) before the exception goes on."""
    try:
        yield
    except OSError as exc:
        discard()
        raise QueryError(f"query socket {target} failed: {exc!r}") from exc
    except BaseException:
        discard()
        raise


def _target_name(unix_path: str | None, tcp: tuple[str, int] | None) -> str:
    return unix_path if unix_path is not None else "%s:%d" % tcp  # type: ignore[str-format]


class Client:
    """One reused connection to the query socket; not thread-safe (one per thread).

    Any exception during an exchange — a timeout, a garbled reply, KeyboardInterrupt, a gevent
    or Celery timeout — discards the connection: a reply left unread on it would otherwise be
    read as the answer to the next call.
    """

    def __init__(self, target: str | tuple[str, int], *, timeout: float = 5.0) -> None:
        self._unix_path, self._tcp = parse_target(target)
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self.state = State.BROKEN  # no connection yet

    def __enter__(self) -> Client:
        self._connect(_Deadline(self._timeout))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        sock, self._sock, self.state = self._sock, None, State.BROKEN
        if sock is not None:
            sock.close()

    # -- commands ----------------------------------------------------------------------------

    def check(self, address: str, order_id: str | None = None) -> Reply:
        """Is this relay address (or, with it, this order) blocked? Raises QueryError if unsure."""
        return self._call([request_line((address, order_id))], _reply)

    def order(self, order_id: str) -> Reply:
        return self._call([f"ORDER {order_id}"], _reply)

    def check_many(self, keys: Iterable[Key]) -> list[Reply]:
        """One reply per key, in order, all requests pipelined; any ERR raises (after reading all)."""
        return self._call([request_line(key) for key in keys], _replies)

    def ping(self) -> bool:
        """True when the daemon answers PONG; QueryError otherwise."""
        return self._call(["PING"], _pong)

    def stats(self) -> dict[str, Any]:
        return self._call(["STATS"], _stats)

    def _call(self, lines: Sequence[str], parse: Callable[[list[str]], _T]) -> _T:
        """The replies to ``lines``, parsed; a reply that does not parse (garbled, or ERR)
        discards the connection like any other failure."""
        replies = self.pipeline(lines)
        try:
            return parse(replies)
        except BaseException:
            self.close()
            raise

    def raw(self, line: str) -> str:
        """Send one request line, return the reply line without its ending."""
        return self.pipeline([line])[0]

    def pipeline(self, lines: Sequence[str]) -> list[str]:
        """Send request lines at once and read their replies, in order, all within one
        ``timeout``; a connection the daemon closed between calls is reopened once."""
        payload = _encode(lines)
        if not lines:
            return []
        deadline = _Deadline(self._timeout)
        for last in (False, True):
            reused = self._usable()
            sock = self._connect(deadline)
            self.state = State.WAITING
            try:
                with _discarding_on_failure(self.close, self._target()):
                    replies = self._pump(sock, payload, len(lines), deadline)
            except _Closed:
                if last or not reused:
                    raise QueryError(f"{self._target()} closed the connection without a reply") from None
                continue
            self.state = State.IDLE
            return replies
        raise AssertionError("unreachable")

    # -- plumbing ----------------------------------------------------------------------------

    def _usable(self) -> bool:
        """Keep the open connection only if it is IDLE and nothing arrived on it since the
        last exchange (an unsolicited line, or the daemon's close): else discard it."""
        sock = self._sock
        if sock is None:
            return False
        if self.state is State.IDLE:
            try:
                sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return True  # nothing waiting: in step
            except OSError:
                pass
        self.close()
        return False

    def _connect(self, deadline: _Deadline) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            if self._unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(deadline.left(self._target()))
                    sock.connect(self._unix_path)
                except BaseException:
                    sock.close()
                    raise
            else:
                assert self._tcp is not None
                sock = socket.create_connection(self._tcp, timeout=deadline.left(self._target()))
        except OSError as exc:
            raise QueryError(f"cannot reach the query socket {self._target()}: {exc}") from exc
        sock.setblocking(False)
        self._sock, self.state = sock, State.IDLE
        return sock

    def _target(self) -> str:
        return _target_name(self._unix_path, self._tcp)

    def _pump(self, sock: socket.socket, payload: bytes, count: int, deadline: _Deadline) -> list[str]:
        """Write and read at once (a large pipeline would deadlock otherwise: both sides'
        buffers full) until every reply is in or the deadline passes."""
        view, sent, replies = memoryview(payload), 0, _Replies(count)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while True:
                events = selector.select(deadline.left(self._target()))
                if not events:
                    continue  # the deadline passed: left() raises
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
                    if replies.feed(data, self._target()):
                        return replies.lines


class _Stream(asyncio.Protocol):
    """The asyncio client's end of one connection: collects what arrives, wakes one reader."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.ended = False  # EOF or connection lost
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += data
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """What arrived since the last read; empty at the end of the stream."""
        while not self.received and not self.ended:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self.received)
        self.received.clear()
        return data

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _readable(stream: _Stream) -> bool:
    """Whether bytes (or the end) wait in the kernel that the loop has not handed over yet:
    a line sent just before this call would otherwise be read as its reply."""
    assert stream.transport is not None
    sock = stream.transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class AsyncClient:
    """The asyncio client: one reused connection; concurrent calls take turns on it.

    Any exception or cancellation during an exchange (``asyncio.timeout``, ``wait_for``, a
    cancelled task) discards the connection, so a reply left unread is never read as the answer
    to the next call. ``timeout`` bounds the whole call, the wait for its turn included.
    """

    def __init__(self, target: str | tuple[str, int], *, timeout: float = 5.0) -> None:
        self._unix_path, self._tcp = parse_target(target)
        self._timeout = timeout
        self._stream: _Stream | None = None
        self.state = State.BROKEN  # no connection yet
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        async with self._lock:
            await self._call(self._connect())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        self._discard()

    async def check(self, address: str, order_id: str | None = None) -> Reply:
        """Is this relay address (or, with it, this order) blocked? Raises QueryError if unsure."""
        return await self._parsed([request_line((address, order_id))], _reply)

    async def order(self, order_id: str) -> Reply:
        return await self._parsed([f"ORDER {order_id}"], _reply)

    async def check_many(self, keys: Iterable[Key]) -> list[Reply]:
        """One reply per key, in order, all requests pipelined; any ERR raises (after reading all)."""
        return await self._parsed([request_line(key) for key in keys], _replies)

    async def ping(self) -> bool:
        """True when the daemon answers PONG; QueryError otherwise."""
        return await self._parsed(["PING"], _pong)

    async def stats(self) -> dict[str, Any]:
        return await self._parsed(["STATS"], _stats)

    async def _parsed(self, lines: Sequence[str], parse: Callable[[list[str]], _T]) -> _T:
        """The replies to ``lines``, parsed; one that does not parse discards the connection."""
        replies = await self.pipeline(lines)
        try:
            return parse(replies)
        except BaseException:
            self._discard()
            raise

    async def raw(self, line: str) -> str:
        return (await self.pipeline([line]))[0]

    async def pipeline(self, lines: Sequence[str]) -> list[str]:
        """Send request lines at once and read their replies, in order, all within one
        ``timeout``; a connection the daemon closed between calls is reopened once."""
        payload = _encode(lines)
        if not lines:
            return []
        return await self._call(self._locked_exchange(payload, len(lines)))

    async def _call(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` under the call's one deadline; whatever ends it early discards the connection."""
        try:
            async with asyncio.timeout(self._timeout):
                return await work
        except TimeoutError:
            raise QueryError(f"no reply from {self._target()} within {self._timeout}s") from None

    async def _locked_exchange(self, payload: bytes, count: int) -> list[str]:
        async with self._lock:
            for last in (False, True):
                reused = self._usable()
                stream = await self._connect()
                self.state = State.WAITING
                try:
                    with _discarding_on_failure(self._discard, self._target()):
                        replies = await self._exchange(stream, payload, count)
                except _Closed:
                    if last or not reused:
                        raise QueryError(f"{self._target()} closed the connection without a reply") from None
                    continue
                self.state = State.IDLE
                return replies
        raise AssertionError("unreachable")

    def _usable(self) -> bool:
        """Keep the open connection only if it is IDLE and nothing arrived on it since."""
        stream = self._stream
        if stream is None:
            return False
        if self.state is State.IDLE and not stream.received and not stream.ended and not _readable(stream):
            return True
        self._discard()
        return False

    def _discard(self) -> None:
        stream, self._stream, self.state = self._stream, None, State.BROKEN
        if stream is not None:
            stream.abort()

    async def _connect(self) -> _Stream:
        if self._stream is not None:
            return self._stream
        loop = asyncio.get_running_loop()
        try:
            if self._unix_path is not None:
                _, stream = await loop.create_unix_connection(_Stream, self._unix_path)
            else:
                assert self._tcp is not None
                _, stream = await loop.create_connection(_Stream, *self._tcp)
        except OSError as exc:
            raise QueryError(f"cannot reach the query socket {self._target()}: {exc!r}") from exc
        self._stream, self.state = stream, State.IDLE
        return stream

    def _target(self) -> str:
        return _target_name(self._unix_path, self._tcp)

    async def _exchange(self, stream: _Stream, payload: bytes, count: int) -> list[str]:
        assert stream.transport is not None
        if stream.transport.is_closing():
            raise _Closed
        stream.transport.write(payload)  # the transport writes while we read: no deadlock on big pipelines
        replies = _Replies(count)
        while not replies.feed(await stream.read(), self._target()):
            pass
        return replies.lines
