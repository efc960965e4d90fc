"""The one limits policy of every listener: query socket, Postfix policy and socketmap, metrics.

One client must not lock the others out (docs/query-protocol.md, "Limits"): connections are
capped per peer below each listener's cap, and the listeners' caps together below what
RLIMIT_NOFILE leaves after the descriptors the rest of the daemon needs (SMTP sessions, the
database, IMAP). A request must be complete within its deadline of its first byte (trickled
bytes do not extend it), and a connection that makes no progress for the idle time is closed.

A peer is a user, not an address: SO_PEERCRED's uid on a Unix socket, and on loopback TCP too,
where every local user connects from 127.0.0.1 (the kernel's socket table names the uid that
owns the other end, sock_diag(7)). Only a remote TCP peer is its IP address.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LISTEN_BACKLOG", "LIMIT_KINDS", "Limits", "ListenerPolicy", "PeerCounts", "over_limit", "derive_limits", "share_descriptors", "raise_descriptor_limit",
    "open_descriptors", "peer_identity", "loopback_uid",
]

# Connections the kernel completes before the listener accepts them (listen(2); capped by
# net.core.somaxconn). asyncio's default of 100 lets a peer reconnecting in a loop fill the
# queue, and then every other peer's SYN is dropped before any per-peer cap can see it.
LISTEN_BACKLOG = 1024

# What a listener counts (and the metrics show): refusals at the door, closings by the sweep.
LIMIT_KINDS = ("refused_global", "refused_peer", "refused_descriptors", "closed_idle", "closed_deadline", "line_too_long")
_FLOOR = 4  # connections a listener keeps however few descriptors are left
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid (socket(7), SO_PEERCRED)
# sock_diag(7): one exact lookup of a TCP socket by its 4-tuple (no dump), answered with its uid.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_DIAG_REQ = struct.Struct("=BBBBI")  # inet_diag_req_v2: family, protocol, ext, pad, states
_SOCKID = struct.Struct("!HH16s16s")  # inet_diag_sockid: sport, dport, src, dst (then if, cookie[2])
_SOCKID_TAIL = struct.Struct("=III")
_DIAG_UID_AT = _NLMSG.size + 4 + _SOCKID.size + _SOCKID_TAIL.size + 12  # inet_diag_msg.idiag_uid


@dataclass(frozen=True, slots=True)
class Limits:
    """The caps a QueryServer enforces, and the figures they came from."""

    max_connections: int
    max_per_peer: int
    descriptor_limit: int  # RLIMIT_NOFILE's soft limit after raising it
    configured: int  # max_connections as configured


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (asyncio and the C loop use epoll, not select).

    systemd's default is 1024 soft, 524288 hard: a daemon that never raises it runs out of
    descriptors at a thousand clients. Returns the soft limit in force afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def open_descriptors() -> int:
    """How many descriptors the process holds now."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 64


@dataclass(frozen=True, slots=True)
class ListenerPolicy:
    """What a listener wants: its connection cap, the cap per peer, the request deadline and
    the idle time. ``share_descriptors`` turns the caps into the ``Limits`` in force."""

    max_connections: int
    max_per_peer: int
    request_seconds: float
    idle_seconds: float


def derive_limits(max_connections: int, max_per_peer: int, reserved: int) -> Limits:
    """One listener's caps when it is alone (see ``share_descriptors``)."""
    return share_descriptors({"": (max_connections, max_per_peer)}, reserved)[""]


def share_descriptors(wanted: dict[str, tuple[int, int]], reserved: int) -> dict[str, Limits]:
    """Each listener's caps: what it wants (connections, per peer), all of them together at most
    what the descriptor limit leaves free after ``reserved`` (SMTP, the database, IMAP): when
    they want more, each gets its share in proportion, and at least a few (``_FLOOR``: the
    reserve's slack covers them), so a small listener is never shut by a large one. The per-peer cap is at most three
    quarters of the listener's cap, so one peer always leaves room to the others."""
    limit = raise_descriptor_limit()
    free = max(len(wanted), limit - open_descriptors() - reserved)
    total = sum(cap for cap, _ in wanted.values())
    shares = {}
    for name, (cap, per_peer) in wanted.items():
        allowed = min(cap, max(_FLOOR, cap * free // total)) if total > free else cap
        shares[name] = Limits(allowed, max(1, min(per_peer, allowed - allowed // 4)), limit, cap)
    return shares


def over_limit(began: float, progressed: float, now: float, policy: ListenerPolicy) -> str | None:
    """Whether a connection is to be closed: ``closed_deadline`` when the request begun at
    ``began`` (0: none) is still unfinished after the request deadline, whatever trickled in
    since; ``closed_idle`` when nothing completed since ``progressed`` for the idle time."""
    if began and now - began > policy.request_seconds:
        return "closed_deadline"
    if now - progressed > policy.idle_seconds:
        return "closed_idle"
    return None


class PeerCounts:
    """Connections held per peer against a listener's Limits: the one admission rule."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._held: dict[tuple[str, Any], int] = {}
        self.total = 0

    def admit(self, key: tuple[str, Any]) -> str | None:
        """None when admitted (release it later), else the limit hit: ``refused_global`` or
        ``refused_peer``."""
        if self.total >= self.limits.max_connections:
            return "refused_global"
        held = self._held.get(key, 0)
        if held >= self.limits.max_per_peer:
            return "refused_peer"
        self._held[key] = held + 1
        self.total += 1
        return None

    def release(self, key: tuple[str, Any]) -> None:
        held = self._held.pop(key) - 1
        if held:
            self._held[key] = held
        self.total -= 1


def peer_identity(sock: Any, peername: Any) -> tuple[str, Any]:
    """("uid", n) from SO_PEERCRED on a Unix socket and for a loopback TCP peer; ("ip", address)
    for another TCP peer."""
    if sock is not None and sock.family == socket.AF_UNIX:
        try:
            _, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
            return ("uid", uid)
        except OSError:
            return ("uid", None)
    if isinstance(peername, tuple) and peername:
        if sock is not None and _is_loopback(peername[0]):
            uid = loopback_uid(sock)
            if uid is not None:
                return ("uid", uid)
        return ("ip", peername[0])
    return ("ip", None)


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1") or address.startswith("::ffff:127.")


def loopback_uid(sock: Any) -> int | None:
    """The uid owning the other end of a loopback TCP connection (sock_diag(7), one exact
    lookup by the 4-tuple), or None where the kernel does not say."""
    try:
        family = sock.family
        peer, local = sock.getpeername(), sock.getsockname()
        sockid = _SOCKID.pack(peer[1], local[1], _packed(family, peer[0]), _packed(family, local[0]))
        request = _DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid + \
            _SOCKID_TAIL.pack(0, 0xFFFFFFFF, 0xFFFFFFFF)  # no cookie: find it by the tuple
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.sendto(_NLMSG.pack(_NLMSG.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + request,
                        (0, 0))
            reply = diag.recv(8192)
    except (OSError, ValueError, AttributeError):
        return None
    if len(reply) < _DIAG_UID_AT + 4 or _NLMSG.unpack_from(reply)[1] != _SOCK_DIAG_BY_FAMILY:
        return None
    return int(struct.unpack_from("=I", reply, _DIAG_UID_AT)[0])


def _packed(family: int, address: str) -> bytes:
    return socket.inet_pton(family, address.split("%")[0]).ljust(16, b"\0")
