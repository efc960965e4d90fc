"""The query socket served by the C loop thread (lookup/_loop.c); Python answers what it hands on.

The thread accepts, frames, answers ``CHECK <plain address>`` and ``PING`` and writes, without
the GIL, so lookups go on while the event loop applies a change batch. Every other line comes
back here and is answered by ``Responder.respond`` (the reference), learning included, on the
event loop; the thread keeps that connection's later lines until the reply is in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
from typing import Any

from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.lookup.limits import Limits
from inbox_daemon.lookup.protocol import Counters, Responder

try:
    from inbox_daemon.lookup import _fastpath
except ImportError:  # not built: the pure Python server answers
    _fastpath = None  # type: ignore[assignment]

__all__ = ["AVAILABLE", "NativeLoop", "client_of"]

# The thread digests each query into the index's pseudonym itself (Tables holds the key).
AVAILABLE = _fastpath is not None


class NativeLoop:
    """Runs the C loop on listening sockets; answers its hand-overs on the asyncio loop."""

    def __init__(
        self, index: BlocklistIndex, responder: Responder, counters: Counters, limits: Limits,
        *, idle_timeout: float, request_timeout: float, high_water: int, logger: Any,
    ) -> None:
        assert _fastpath is not None
        self._tables = index.shared_tables()
        self._respond = responder.respond
        self._counters = counters
        self._limits = limits
        self._idle_ms = max(1, round(idle_timeout * 1000))
        self._request_ms = max(1, round(request_timeout * 1000))
        self._high_water = high_water
        self._log = logger
        self._loop: Any = None
        self._seen = (0, 0)  # the thread's lookups and hits already added to the counters
        self._aio: asyncio.AbstractEventLoop | None = None

    def start(self, sockets: list[socket.socket]) -> None:
        assert _fastpath is not None
        listeners = [(sock.fileno(), sock.family == socket.AF_UNIX) for sock in sockets]
        self._loop = _fastpath.Loop(
            self._tables, listeners, self._limits.max_connections, self._limits.max_per_peer,
            self._idle_ms, self._request_ms, self._high_water,
        )
        self._aio = asyncio.get_running_loop()
        self._aio.add_reader(self._loop.notify_fd, self._drain)
        self._loop.start()

    async def stop(self) -> None:
        """Stop the thread (it closes every connection) without blocking the event loop."""
        if self._loop is None:
            return
        assert self._aio is not None
        self._aio.remove_reader(self._loop.notify_fd)
        await asyncio.to_thread(self._loop.stop)

    def counters(self) -> dict[str, int]:
        return {} if self._loop is None else self._loop.counters()

    def _drain(self) -> None:
        """Answer the lines the thread handed over, in order, and give the replies back."""
        assert self._loop is not None
        try:
            os.read(self._loop.notify_fd, 8)
        except BlockingIOError:
            pass
        items = self._loop.take()
        if not items:
            return
        self.sync_counters()
        self._loop.deliver([(ident, self._answer(line, client_of(peer))) for ident, line, peer in items])

    def _answer(self, line: bytes, client: str) -> bytes | None:
        """The reply, or None (the thread closes the connection) if answering failed."""
        try:
            return self._respond(line, client)
        except Exception:  # a bug, not bad input (that gets ERR): end that session, keep serving
            self._log.exception("query.answer_failed", line=line[:80])
            return None

    def sync_counters(self) -> None:
        """Add the thread's lookups to the counters STATS reports."""
        figures = self._loop.counters() if self._loop is not None else {}
        lookups, hits = figures.get("lookups", 0), figures.get("hits", 0)
        self._counters.lookups += lookups - self._seen[0]
        self._counters.hits += hits - self._seen[1]
        self._seen = (lookups, hits)


def client_of(key: bytes) -> str:
    """The thread's 17-byte peer key as ``limits.peer_identity`` names it: ``uid 1000`` (from
    SO_PEERCRED, native byte order) or ``ip 192.0.2.7``."""
    family = key[0]
    if family == socket.AF_UNIX:
        return f"uid {int.from_bytes(key[1:5], sys.byteorder)}"
    if family == socket.AF_INET:
        return f"ip {ipaddress.IPv4Address(key[1:5])}"
    return f"ip {ipaddress.IPv6Address(key[1:17])}"
