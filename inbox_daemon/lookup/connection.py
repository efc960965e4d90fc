"""One client of the pure Python query server: frames, answers and writes on an asyncio transport.

asyncio.Protocol rather than streams: a reply is computed inside ``data_received`` and written
at once, with no task or await per request, and every line of one read is answered with one
``write``, which is what makes pipelining cheap. The server (lookup/server.py) admits, counts
and times connections out.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, cast

from inbox_daemon.lookup.protocol import ERR_LINE_TOO_LONG, LineDecoder, LineTooLong

if TYPE_CHECKING:
    from inbox_daemon.lookup.server import QueryServer

__all__ = ["Connection", "WRITE_HIGH"]

WRITE_HIGH = 64 * 1024  # pause reading a client that does not read its replies past this
_BATCH = 256  # replies per write when a read holds many pipelined lines; bounds memory per stall


class Connection(asyncio.Protocol):
    """One client: frames, answers and writes; the server does the bookkeeping."""

    __slots__ = (
        "_server", "_respond", "_respond_lines", "_transport", "_decoder", "_paused", "_backlog", "_eof",
        "quiet_sweeps", "line_started", "peer_key", "client",
    )

    def __init__(self, server: QueryServer) -> None:
        self._server = server
        self._respond = server._responder.respond
        self._respond_lines = server._responder.respond_lines
        self._transport: asyncio.Transport | None = None
        self._decoder = LineDecoder()
        self._paused = False  # the client is not reading its replies
        self._backlog: list[bytes | LineTooLong] = []  # lines held back while paused
        self._eof = False
        self.quiet_sweeps = 0  # sweeps since this client last completed a request
        self.line_started = 0.0  # when the incomplete line began (a trickled byte does not move it)
        self.peer_key: tuple[str, Any] | None = None  # set once admitted
        self.client: str | None = None  # "uid 1000" or "ip 192.0.2.7": who learned an address

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses: no isinstance
        self._transport = transport
        refusal = self._server._admit(self)
        if refusal is not None:
            transport.write(refusal)
            transport.close()
            return
        transport.set_write_buffer_limits(high=WRITE_HIGH)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        lines = self._decoder.feed(data)
        if len(lines) == 1 and not self._backlog:
            line = lines[0]
            if type(line) is bytes and not self.line_started:  # the usual read: one request, unpipelined
                self.quiet_sweeps = 0
                transport.write(self._respond(line, self.client))
                return
        if lines:
            self.quiet_sweeps = 0
        if not self._decoder.partial:
            self.line_started = 0.0
        elif not self.line_started or lines:
            self.line_started = time.monotonic()
        if self._backlog:
            self._backlog.extend(lines)
        elif lines:
            self._answer(lines)

    def _answer(self, lines: list[bytes | LineTooLong]) -> None:
        """Answer lines in order, one write per batch; hold the rest back if the client stalls."""
        transport = self._transport
        assert transport is not None
        too_long = type(lines[-1]) is not bytes  # LINE_TOO_LONG can only end the list
        requests = cast(list[bytes], lines[:-1] if too_long else lines)
        respond_lines = self._respond_lines
        for start in range(0, len(requests), _BATCH):
            transport.write(respond_lines(requests, start, min(start + _BATCH, len(requests)), self.client))
            if self._paused and start + _BATCH < len(lines):
                self._backlog = lines[start + _BATCH :]
                return
        if too_long:
            transport.write(ERR_LINE_TOO_LONG)
            transport.close()
            self._server._hit("line_too_long")

    def eof_received(self) -> bool:
        self._eof = True
        return bool(self._backlog)  # keep the transport open until the held-back lines are answered

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests and answering, so the
        # kernel's buffers, not our memory, hold what it keeps sending.
        self._paused = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        backlog, self._backlog = self._backlog, []
        if backlog:
            self._answer(backlog)
        if self._paused or transport.is_closing():
            return
        if self._eof:
            transport.close()
        else:
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._forget(self)
        self._transport = None
        self._backlog = []

    def close(self) -> None:
        """Close, dropping unsent replies if the client is not reading them."""
        transport = self._transport
        if transport is not None:
            transport.close()
            if transport.get_write_buffer_size():
                transport.abort()

    def peer(self) -> Any:
        return None if self._transport is None else self._transport.get_extra_info("peername")
