"""asyncio servers for the MTA's lookups: Postfix's policy service and its socketmap table.

Each connection owns a sans-IO session (postfix_policy.PolicySession, socketmap.SocketmapSession)
with ``feed(bytes) -> bytes``, ``problems`` and ``closing``; this module only binds the socket
(TCP ``host:port`` or an absolute Unix path), writes replies, logs refusals and caps connections.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

import structlog

from inbox_daemon.config import PostfixConfig
from inbox_daemon.log import Throttled
from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.lookup.limits import LIMIT_KINDS, LISTEN_BACKLOG, Limits, ListenerPolicy, PeerCounts, over_limit, peer_identity
from inbox_daemon.lookup.postfix_policy import PolicySession, PolicySettings
from inbox_daemon.lookup.protocol import Counters
from inbox_daemon.lookup.server import _remove_own_socket, _remove_stale_socket
from inbox_daemon.lookup.socketmap import SocketmapSession

__all__ = ["MtaServer", "postfix_policy", "postfix_servers", "split_listen"]

_WRITE_HIGH = 64 * 1024
_STOP_GRACE = 2.0


class Session(Protocol):
    problems: list[str]
    closing: bool

    @property
    def pending(self) -> bool: ...  # a request has begun and not ended

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
        self.peer_key: tuple[str, Any] | None = None  # set once admitted
        self.began = 0.0  # when the unfinished request's first byte came (0: none); trickling does not move it
        self.progressed = time.monotonic()  # when a request last completed (or the connection opened)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if not self._server.admit(self, self._transport):
            self._transport.close()  # unanswered: Postfix's own default action applies (a deferral)
            self._transport = None
            return
        self._transport.set_write_buffer_limits(high=_WRITE_HIGH)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        reply = self._session.feed(data)
        now = time.monotonic()
        if reply:
            self.progressed = now
            self.began = 0.0
        if self._session.pending:
            self.began = self.began or now
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

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            if self._transport.get_write_buffer_size():
                self._transport.abort()  # replies it does not read are dropped


class MtaServer:
    """One listener (Unix or TCP) serving one kind of session; start()/stop().

    It enforces the listeners' one limits policy (lookup/limits.py): a cap and a cap per peer
    (a user on a Unix socket or loopback TCP), a request deadline that trickled bytes do not
    extend, and an idle time without a completed request (Postfix drops its own idle
    connections after smtpd_policy_service_max_idle, 300 s, so the default 600 s is never
    Postfix's reuse cut short).
    """

    def __init__(self, kind: str, listen: str, new_session: Callable[[], Session], *,
                 counters: Counters, limits: Limits | None = None, policy: ListenerPolicy | None = None,
                 logger: Any = None) -> None:
        self.kind = kind  # "policy" | "socketmap": names the log events and the metrics
        self.listen = listen
        self.new_session = new_session
        self.counters = counters
        self.policy = policy or ListenerPolicy(256, 192, 10.0, 600.0)
        self.limits = limits or Limits(self.policy.max_connections, self.policy.max_per_peer, 0,
                                       self.policy.max_connections)
        self._peers = PeerCounts(self.limits)
        self._log = logger if logger is not None else structlog.get_logger("inbox_daemon.postfix")
        # A peer can repeat both as fast as it can connect or send: throttled (one rule, log.py).
        self._too_many = Throttled(self._log, f"{kind}.too_many_connections")
        self._malformed = Throttled(self._log, f"{kind}.malformed")
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._unix_inode: int | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.refused = 0  # malformed requests answered with a refusal
        self.hits: dict[str, int] = dict.fromkeys(LIMIT_KINDS, 0)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        path, tcp = split_listen(self.listen)
        if path is not None:
            _remove_stale_socket(path)
            self._server = await loop.create_unix_server(lambda: _Connection(self), path, backlog=LISTEN_BACKLOG)
            os.chmod(path, 0o660)  # Postfix reaches it through the daemon's group
            self._unix_inode = os.stat(path).st_ino
        else:
            assert tcp is not None
            self._server = await loop.create_server(lambda: _Connection(self), *tcp, backlog=LISTEN_BACKLOG)
        self._log.info(f"{self.kind}.listening", address=self.address, max_connections=self.limits.max_connections,
                       max_connections_per_peer=self.limits.max_per_peer)
        self._schedule_sweep()

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
        if self._sweeper is not None:
            self._sweeper.cancel()
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

    def admit(self, connection: _Connection, transport: asyncio.Transport) -> bool:
        if self._peers.total >= self.limits.max_connections:  # before asking the kernel who it is
            return self._refuse("refused_global")
        key = peer_identity(transport.get_extra_info("socket"), transport.get_extra_info("peername"))
        refused = self._peers.admit(key)
        if refused is not None:
            return self._refuse(refused)
        connection.peer_key = key
        self._connections.add(connection)
        return True

    def _refuse(self, kind: str) -> bool:
        self.hits[kind] += 1
        self._too_many(kind, limit=kind, max_connections=self.limits.max_connections,
                       max_connections_per_peer=self.limits.max_per_peer)
        return False

    def forget(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            assert connection.peer_key is not None
            self._peers.release(connection.peer_key)

    def _schedule_sweep(self) -> None:
        interval = max(min(self.policy.idle_seconds, self.policy.request_seconds) / 4, 0.005)
        self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Close connections past their request deadline or idle time (one sweep, not a timer each)."""
        now = time.monotonic()
        for connection in list(self._connections):
            kind = over_limit(connection.began, connection.progressed, now, self.policy)
            if kind is not None:
                self.hits[kind] += 1
                connection.close()
        self._schedule_sweep()

    def log_problems(self, problems: list[str], peer: Any) -> None:
        self.refused += len(problems)
        for reason in problems:
            self._malformed(reason=reason, peer=str(peer))


def postfix_policy(config: PostfixConfig) -> ListenerPolicy:
    """What each Postfix listener wants (``[postfix]``)."""
    return ListenerPolicy(config.max_connections, config.max_connections_per_peer, config.request_seconds,
                          config.idle_seconds)


def postfix_servers(config: PostfixConfig, index: BlocklistIndex,
                    limits: Mapping[str, Limits] | None = None) -> list[MtaServer]:
    """The configured Postfix listeners (none when neither is set); ``limits``: each one's
    share of the descriptors (limits.share_descriptors), by kind."""
    servers = []
    action = config.policy_action.upper()
    policy, shares = postfix_policy(config), limits or {}
    if config.policy:
        settings = PolicySettings(action, frozenset(s.strip().lower() for s in config.exempt_senders))
        policy_counters = Counters()
        servers.append(MtaServer("policy", config.policy, lambda: PolicySession(index, settings, policy_counters),
                                 counters=policy_counters, policy=policy, limits=shares.get("policy")))
    if config.socketmap:
        map_counters = Counters()
        servers.append(MtaServer("socketmap", config.socketmap, lambda: SocketmapSession(index, action, map_counters),
                                 counters=map_counters, policy=policy, limits=shares.get("socketmap")))
    return servers
