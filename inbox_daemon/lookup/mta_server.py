"""asyncio servers for the MTA's lookups: Postfix's policy service and its socketmap table.

Each connection owns a sans-IO session (postfix_policy.PolicySession, socketmap.SocketmapSession)
with ``feed(bytes) -> bytes``, ``problems`` and ``closing``; this module only binds the socket
(TCP ``host:port`` or an absolute Unix path), writes replies, logs refusals and caps connections.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any, Protocol, cast

import structlog

from inbox_daemon.config import PostfixConfig
from inbox_daemon.log import Throttled
from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.lookup.postfix_policy import PolicySession, PolicySettings
from inbox_daemon.lookup.protocol import Counters
from inbox_daemon.lookup.server import _remove_own_socket, _remove_stale_socket
from inbox_daemon.lookup.socketmap import SocketmapSession

__all__ = ["MtaServer", "postfix_servers", "split_listen"]

_WRITE_HIGH = 64 * 1024
_STOP_GRACE = 2.0


class Session(Protocol):
    problems: list[str]
    closing: bool

    def feed(self, data: bytes) -> bytes: ...


def split_listen(value: str) -> tuple[str | None, tuple[str, int] | None]:
    """An absolute path -> Unix socket; ``host:port`` -> TCP (``[::1]:10040`` for IPv6)."""
    if value.startswith("/"):
        return value, None
    host, _, port = value.rpartition(":")
    return None, (host.strip("[]"), int(port))


class _Connection(asyncio.Protocol):
    def __init__(self, server: MtaServer) -> None:
        self._server = server
        self._session = server.new_session()
        self._transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if not self._server.admit(self):
            self._transport.close()  # unanswered: Postfix's own default action applies (a deferral)
            self._transport = None
            return
        self._transport.set_write_buffer_limits(high=_WRITE_HIGH)
        self._rearm()

    def _rearm(self) -> None:
        """Close a connection silent for idle_timeout (Postfix itself drops its own after
        smtpd_policy_service_max_idle, 300 s): a stuck or hostile peer cannot keep a slot."""
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self._server.idle_timeout, self.close)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        self._rearm()
        reply = self._session.feed(data)
        if self._session.problems:
            self._server.log_problems(self._session.problems, transport.get_extra_info("peername"))
            self._session.problems = []
        if reply:
            transport.write(reply)
        if self._session.closing:
            transport.close()

    def pause_writing(self) -> None:  # a client that does not read its replies: stop reading it
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.forget(self)
        self._transport = None
        if self._idle is not None:
            self._idle.cancel()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class MtaServer:
    """One listener (Unix or TCP) serving one kind of session; start()/stop()."""

    def __init__(self, kind: str, listen: str, new_session: Callable[[], Session], *,
                 counters: Counters, max_connections: int = 256, idle_timeout: float = 600.0,
                 logger: Any = None) -> None:
        self.kind = kind  # "policy" | "socketmap": names the log events and the metrics
        self.listen = listen
        self.new_session = new_session
        self.counters = counters
        self._max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._log = logger if logger is not None else structlog.get_logger("inbox_daemon.postfix")
        # A peer can repeat both as fast as it can connect or send: throttled (one rule, log.py).
        self._too_many = Throttled(self._log, f"{kind}.too_many_connections")
        self._malformed = Throttled(self._log, f"{kind}.malformed")
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._unix_inode: int | None = None
        self.refused = 0  # malformed requests answered with a refusal

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        path, tcp = split_listen(self.listen)
        if path is not None:
            _remove_stale_socket(path)
            self._server = await loop.create_unix_server(lambda: _Connection(self), path)
            os.chmod(path, 0o660)  # Postfix reaches it through the daemon's group
            self._unix_inode = os.stat(path).st_ino
        else:
            assert tcp is not None
            self._server = await loop.create_server(lambda: _Connection(self), *tcp)
        self._log.info(f"{self.kind}.listening", address=self.address)

    @property
    def address(self) -> str:
        """Where it listens, with the bound port (after asking for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.listen
        sock = self._server.sockets[0]
        if sock.family == socket.AF_UNIX:
            return str(sock.getsockname())
        host, port = sock.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def connections(self) -> int:
        return len(self._connections)

    def lookup_counters(self) -> Counters:
        return self.counters

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections):
            connection.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), _STOP_GRACE)
        except TimeoutError:
            pass
        _remove_own_socket(split_listen(self.listen)[0], self._unix_inode)
        self._server = None
        self._too_many.flush()
        self._malformed.flush()

    def admit(self, connection: _Connection) -> bool:
        if len(self._connections) >= self._max_connections:
            self._too_many(limit=self._max_connections)
            return False
        self._connections.add(connection)
        return True

    def forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)

    def log_problems(self, problems: list[str], peer: Any) -> None:
        self.refused += len(problems)
        for reason in problems:
            self._malformed(reason=reason, peer=str(peer))


def postfix_servers(config: PostfixConfig, index: BlocklistIndex) -> list[MtaServer]:
    """The configured Postfix listeners (none when neither is set)."""
    servers = []
    action = config.policy_action.upper()
    if config.policy:
        settings = PolicySettings(action, frozenset(s.strip().lower() for s in config.exempt_senders))
        policy_counters = Counters()
        servers.append(MtaServer("policy", config.policy, lambda: PolicySession(index, settings, policy_counters),
                                 counters=policy_counters, max_connections=config.max_connections))
    if config.socketmap:
        map_counters = Counters()
        servers.append(MtaServer("socketmap", config.socketmap, lambda: SocketmapSession(index, action, map_counters),
                                 counters=map_counters, max_connections=config.max_connections))
    return servers
