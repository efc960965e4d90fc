"""The query socket: the C loop thread where it is built, else the sans-IO protocol on asyncio.

Where the C module is built (lookup/native.py, lookup/_loop.c) a thread without the GIL runs the
whole request loop and hands the rarer lines back to Python. Otherwise, and whenever
``native=False``, asyncio.Protocol transports answer: a reply is computed inside
``data_received`` and written at once, with no task or await per request, and every line of one
read is answered with one ``write``. Both paths answer byte for byte alike (tests/lookup run
each test on both) and enforce the same limits (docs/query-protocol.md, "Limits").
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.log import Throttled
from inbox_daemon.lookup.limits import (
    LISTEN_BACKLOG,
    LIMIT_KINDS,
    Limits,
    ListenerPolicy,
    PeerCounts,
    derive_limits,
    over_limit,
    peer_identity,
)
from inbox_daemon.lookup.native import AVAILABLE as NATIVE_AVAILABLE
from inbox_daemon.lookup.native import NativeLoop
from inbox_daemon.lookup.connection import WRITE_HIGH, Connection
from inbox_daemon.lookup.protocol import ERR_TOO_MANY_CONNECTIONS, Counters, Responder

__all__ = ["QueryServer"]

_SWEEPS = 4  # sweeps per shortest timeout
_STOP_GRACE = 2.0  # seconds stop() lets connections flush before aborting them


class QueryServer:
    """Answers the query protocol on a Unix socket and/or TCP, on the running loop."""

    def __init__(
        self,
        index: BlocklistIndex,
        *,
        unix_path: str | None,
        tcp: tuple[str, int] | None,
        on_address_learned: Callable[[str, str, str | None], None] | None = None,
        stats: Callable[[], Mapping[str, Any]] | None = None,
        max_connections: int = 1024,
        max_connections_per_peer: int = 256,
        idle_timeout: float = 300.0,
        request_timeout: float = 10.0,
        reserved_descriptors: int = 256,
        limits: Limits | None = None,
        log_interval: float | None = None,
        native: bool | None = None,
        logger: Any = None,
        sockets: Sequence[socket.socket] = (),
    ) -> None:
        if unix_path is None and tcp is None and not sockets:
            raise ValueError("QueryServer needs a Unix socket path, a TCP address, bound sockets or some of them")
        if native and not NATIVE_AVAILABLE:
            raise RuntimeError("the C query loop is not built (or Python's hash is not 64-bit SipHash)")
        self.index = index
        self.counters = Counters()
        self._responder = Responder(
            index,
            counters=self.counters,
            on_address_learned=self._address_learned if on_address_learned is not None else None,
            stats=self._stats,
        )
        self.path = "c" if (NATIVE_AVAILABLE if native is None else native) else "python"
        self._unix_path = unix_path
        self._inherited = list(sockets)  # bound by systemd (socket activation); never unlinked here
        self._unix_inode: int | None = None
        self._tcp = tcp
        self._learned = on_address_learned
        self._extra_stats = stats
        self._wanted = (max_connections, max_connections_per_peer, reserved_descriptors)
        self._given = limits  # the daemon's share of the descriptors for all listeners (limits.share_descriptors)
        self.limits = limits or Limits(max_connections, max_connections_per_peer, 0, max_connections)  # until start()
        self._idle_timeout = idle_timeout
        self._request_timeout = request_timeout
        self.policy = ListenerPolicy(max_connections, max_connections_per_peer, request_timeout, idle_timeout)
        self._log = logger if logger is not None else structlog.get_logger("inbox_daemon.lookup")
        self._limits_hit = Throttled(self._log, "query.limits_hit", log_interval)
        self._hits_logged: dict[str, int] = dict.fromkeys(LIMIT_KINDS, 0)  # totals already reported
        self._hits: dict[str, int] = dict.fromkeys(LIMIT_KINDS, 0)
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
        self._native: NativeLoop | None = None
        self._connections: set[Connection] = set()
        self._peers = PeerCounts(self.limits)
        self._all_closed: asyncio.Event | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_interval = max(min(idle_timeout, request_timeout) / _SWEEPS, 0.005)
        self._started = 0.0
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._started = time.monotonic()
        self._all_closed = asyncio.Event()
        self._stopping = False
        self.limits = self._given or derive_limits(*self._wanted)
        self._peers = PeerCounts(self.limits)
        self._log.info(
            "query.limits", path=self.path, max_connections=self.limits.max_connections,
            max_connections_per_peer=self.limits.max_per_peer, descriptor_limit=self.limits.descriptor_limit,
        )
        if self.limits.max_connections < self.limits.configured:
            self._log.warning("query.max_connections_lowered", configured=self.limits.configured,
                              max_connections=self.limits.max_connections, descriptor_limit=self.limits.descriptor_limit)
        try:
            if self._unix_path is not None:
                self._sockets.append(self._bind_unix(self._unix_path))
            if self._tcp is not None:
                self._sockets.append(_bind_tcp(*self._tcp))
            for sock in self._inherited:
                sock.setblocking(False)
                self._sockets.append(sock)
            await self._serve()
            self._hits_logged = self.limit_counts()  # the C loop counts afresh at each start
        except BaseException:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            self._unlink_socket()
            raise
        if self._unix_path is not None:
            self._log.info("query.listening", socket=self._unix_path)
        if self._tcp is not None:
            self._log.info("query.listening", tcp=f"{self.tcp_address}")
        for sock in self._inherited:
            self._log.info("query.listening", inherited=str(sock.getsockname()))
        self._schedule_sweep()

    async def _serve(self) -> None:
        if self.path == "c":
            self._native = NativeLoop(
                self.index, self._responder, self.counters, self.limits,
                idle_timeout=self._idle_timeout, request_timeout=self._request_timeout, high_water=WRITE_HIGH,
                logger=self._log,
            )
            self._native.start(self._sockets)
            return
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            if sock.family == socket.AF_UNIX:
                self._servers.append(await loop.create_unix_server(self._connection, sock=sock, backlog=LISTEN_BACKLOG))
            else:
                self._servers.append(await loop.create_server(self._connection, sock=sock, backlog=LISTEN_BACKLOG))

    def _bind_unix(self, path: str) -> socket.socket:
        _remove_stale_socket(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            self._unix_inode = os.stat(path).st_ino
            os.chmod(path, 0o660)  # sender tools reach it through the group (docs/query-protocol.md)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        """Stop listening, let connections flush briefly, then drop them; remove the socket."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._stopping = True
        if self._started:
            self._report_limits()
            self._limits_hit.flush()  # what was suppressed is still told
        if self._native is not None:
            await self._native.stop()
            self._native = None
        await self._stop_asyncio()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        self._unlink_socket()

    async def _stop_asyncio(self) -> None:
        await self._stop_accepting()
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            connection.close()
        if self._connections and self._all_closed is not None:
            try:
                await asyncio.wait_for(self._all_closed.wait(), _STOP_GRACE)
            except asyncio.TimeoutError:
                pass
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def _stop_accepting(self) -> None:
        """Stop accepting, then let accepts already under way finish (and be turned away).

        asyncio's selector loop accepts a socket in a callback and wraps it in a task; if
        ``Server.close()`` runs in between, the task fails an assertion and the socket leaks
        (CPython gh-109564, open). Removing the reader first closes that window. uvloop accepts
        synchronously and has no such reader: ``remove_reader`` is then a no-op.
        """
        loop = asyncio.get_running_loop()
        for server in self._servers:
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        await asyncio.sleep(0)  # one loop turn: pending accept tasks take their first step

    def _unlink_socket(self) -> None:
        _remove_own_socket(self._unix_path, self._unix_inode)
        self._unix_inode = None

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """The bound TCP (host, port), e.g. after asking for port 0."""
        for sock in self._sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.fileno() >= 0:
                host, port = sock.getsockname()[:2]
                return str(host), int(port)
        return None

    @property
    def connections(self) -> int:
        if self._native is not None:
            return self._native.counters().get("connections", 0)
        return len(self._connections)

    def lookup_counters(self) -> Counters:
        """Lookups and hits so far, those the C thread answered included (the metrics read it)."""
        if self._native is not None:
            self._native.sync_counters()
        return self.counters

    def limit_counts(self) -> dict[str, int]:
        """How often each limit was hit since start: refusals, timeouts, over-long lines."""
        if self._native is not None:
            figures = self._native.counters()
            return {kind: figures.get(kind, 0) for kind in LIMIT_KINDS}
        return dict(self._hits)

    # -- per connection (the asyncio path) ---------------------------------------------------

    def _connection(self) -> Connection:
        return Connection(self)

    def _admit(self, connection: Connection) -> bytes | None:
        """None to serve the connection, else what to tell it before closing."""
        if self._stopping:
            return b""
        if self._peers.total >= self.limits.max_connections:  # before asking the kernel who it is
            self._hit("refused_global")
            return ERR_TOO_MANY_CONNECTIONS
        transport = connection._transport
        assert transport is not None
        key = peer_identity(transport.get_extra_info("socket"), transport.get_extra_info("peername"))
        refused = self._peers.admit(key)
        if refused is not None:
            self._hit(refused)
            return ERR_TOO_MANY_CONNECTIONS
        connection.peer_key = key
        connection.client = f"{key[0]} {key[1]}"
        self._connections.add(connection)
        if self._all_closed is not None:
            self._all_closed.clear()
        return None

    def _forget(self, connection: Connection) -> None:
        if connection not in self._connections:
            return  # turned away at the door
        self._connections.discard(connection)
        if connection.peer_key is not None:
            self._peers.release(connection.peer_key)
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    def _hit(self, kind: str) -> None:
        self._hits[kind] += 1

    def _address_learned(self, address: str, order_id: str, client: str | None) -> None:
        assert self._learned is not None
        try:
            self._learned(address, order_id, client)
        except Exception:  # the hook is the daemon's; its failure must not cost the reply
            self._log.exception("query.address_learned_failed", order_id=order_id)

    def _stats(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "connections": self.connections,
            "uptime_s": round(time.monotonic() - self._started, 3),
        }
        if self._extra_stats is not None:
            for name, value in self._extra_stats().items():
                figures.setdefault(name, value)
        return figures

    # -- timeouts: one sweep over all connections, not a timer per request ---------------------

    def _schedule_sweep(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(self._sweep_interval, self._sweep)

    def _sweep(self) -> None:
        # A client that completed no request for idle_timeout / interval sweeps has been idle between 1 and
        # 1 + 1/_SWEEPS times idle_timeout; the hot path only zeroes a counter. A line begun more
        # than request_timeout ago is closed whatever trickled in since (slow-byte clients).
        # The C loop runs its own sweep; here it only feeds the rate-limited log.
        now = time.monotonic()
        closing = []
        for connection in self._connections:
            connection.quiet_sweeps += 1
            progressed = now - connection.quiet_sweeps * self._sweep_interval
            kind = over_limit(connection.line_started, progressed, now, self.policy)
            if kind is not None:
                closing.append((connection, kind))
        for connection, kind in closing:
            connection.close()
            self._hits[kind] += 1
        self._report_limits()
        self._schedule_sweep()

    def _report_limits(self) -> None:
        """Each limit hit since the last sweep, whichever loop counted it, as a throttled warning."""
        for kind, total in self.limit_counts().items():
            grown = total - self._hits_logged[kind]
            if grown > 0:
                self._limits_hit(kind, occurrences=grown, limit=kind)
                self._hits_logged[kind] = total


def _bind_tcp(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket (SO_REUSEADDR, as asyncio's create_server sets)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def _remove_own_socket(path: str | None, inode: int | None) -> None:
    """Unlink the socket file this process bound (``inode``), and only that one: a newer daemon
    may already have bound the same path."""
    if path is None or inode is None:
        return
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to touch a live socket or another file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(errno.EEXIST, "not a socket, refusing to replace it", path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        refused = probe.connect_ex(path) in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()
    if not refused:
        raise OSError(errno.EADDRINUSE, "another process is listening on the query socket", path)
    os.unlink(path)
