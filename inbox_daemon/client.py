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
import select
import selectors
import socket
from collections.abc import Callable, Coroutine, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from inbox_daemon.keys import order_id as _order_id
from inbox_daemon.errors import QueryError
from inbox_daemon.exchange import (
    ATTEMPTS,
    READ_SIZE,
    Closed,
    Deadline,
    Key,
    Replies,
    Reply,
    State,
    discarding_on_failure,
    encode_requests,
    parse_pong,
    parse_replies,
    parse_reply,
    parse_stats,
    parse_target,
    request_line,
    retry_after_close,
    target_name,
)

__all__ = ["Reply", "Client", "AsyncClient", "QueryError", "Key", "State", "request_line", "parse_target"]

_T = TypeVar("_T")


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
        self._connect(Deadline(self._timeout))
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
        return self._call([request_line((address, order_id))], parse_reply)

    def order(self, order_id: str) -> Reply:
        return self._call([f"ORDER {_order_id(order_id) or order_id}"], parse_reply)

    def check_many(self, keys: Iterable[Key]) -> list[Reply]:
        """One reply per key, in order, all requests pipelined; any ERR raises (after reading all)."""
        return self._call([request_line(key) for key in keys], parse_replies)

    def ping(self) -> bool:
        """True when the daemon answers PONG; QueryError otherwise."""
        return self._call(["PING"], parse_pong)

    def stats(self) -> dict[str, Any]:
        return self._call(["STATS"], parse_stats)

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
        payload = encode_requests(lines)
        if not lines:
            return []
        deadline = Deadline(self._timeout)
        for last in ATTEMPTS:
            reused = self._usable()
            sock = self._connect(deadline)
            self.state = State.WAITING
            try:
                with discarding_on_failure(self.close, self._target()):
                    replies = self._pump(sock, payload, len(lines), deadline)
            except Closed:
                retry_after_close(self._target(), reused=reused, last=last)
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

    def _connect(self, deadline: Deadline) -> socket.socket:
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
        return target_name(self._unix_path, self._tcp)

    def _pump(self, sock: socket.socket, payload: bytes, count: int, deadline: Deadline) -> list[str]:
        """Write and read at once (a large pipeline would deadlock otherwise: both sides'
        buffers full) until every reply is in or the deadline passes."""
        view, sent, replies = memoryview(payload), 0, Replies(count)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while True:
                events = selector.select(deadline.left(self._target()))
                if not events:
                    continue  # the deadline passed: left() raises
                mask = events[0][1]
                if mask & selectors.EVENT_WRITE:
                    try:
                        sent += sock.send(view[sent : sent + READ_SIZE])
                    except (BrokenPipeError, ConnectionResetError):
                        sent = len(payload)  # the peer is gone; read what it said before going
                    if sent == len(payload):
                        selector.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        data = sock.recv(READ_SIZE)
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
        return await self._parsed([request_line((address, order_id))], parse_reply)

    async def order(self, order_id: str) -> Reply:
        return await self._parsed([f"ORDER {_order_id(order_id) or order_id}"], parse_reply)

    async def check_many(self, keys: Iterable[Key]) -> list[Reply]:
        """One reply per key, in order, all requests pipelined; any ERR raises (after reading all)."""
        return await self._parsed([request_line(key) for key in keys], parse_replies)

    async def ping(self) -> bool:
        """True when the daemon answers PONG; QueryError otherwise."""
        return await self._parsed(["PING"], parse_pong)

    async def stats(self) -> dict[str, Any]:
        return await self._parsed(["STATS"], parse_stats)

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
        payload = encode_requests(lines)
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
            for last in ATTEMPTS:
                reused = self._usable()
                stream = await self._connect()
                self.state = State.WAITING
                try:
                    with discarding_on_failure(self._discard, self._target()):
                        replies = await self._exchange(stream, payload, count)
                except Closed:
                    retry_after_close(self._target(), reused=reused, last=last)
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
        return target_name(self._unix_path, self._tcp)

    async def _exchange(self, stream: _Stream, payload: bytes, count: int) -> list[str]:
        assert stream.transport is not None
        if stream.transport.is_closing():
            raise Closed
        stream.transport.write(payload)  # the transport writes while we read: no deadlock on big pipelines
        replies = Replies(count)
        while not replies.feed(await stream.read(), self._target()):
            pass
        return replies.lines
