"""Limits of the query socket: caps derived from the descriptor limit, peer identity, log pacing.

One client must not lock the others out (docs/query-protocol.md, "Limits"): connections are
capped per peer below the global cap, and the global cap below what RLIMIT_NOFILE leaves after
the descriptors the rest of the daemon needs (SMTP sessions, the database, IMAP).
"""

from __future__ import annotations

import os
import resource
import socket
import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["Limits", "derive_limits", "raise_descriptor_limit", "open_descriptors", "peer_identity"]

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid (socket(7), SO_PEERCRED)


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


def derive_limits(max_connections: int, max_per_peer: int, reserved: int) -> Limits:
    """The global cap: the configured one, at most what the descriptor limit leaves free.

    ``reserved`` descriptors stay for the rest of the daemon; the per-peer cap is at most three
    quarters of the global one, so that one peer always leaves room to the others.
    """
    limit = raise_descriptor_limit()
    free = limit - open_descriptors() - reserved
    cap = max(1, min(max_connections, free))
    return Limits(cap, max(1, min(max_per_peer, cap - cap // 4)), limit, max_connections)


def peer_identity(sock: Any, peername: Any) -> tuple[str, Any]:
    """("uid", n) from SO_PEERCRED on a Unix socket; ("ip", address) on TCP."""
    if sock is not None and sock.family == socket.AF_UNIX:
        try:
            _, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
            return ("uid", uid)
        except OSError:
            return ("uid", None)
    if isinstance(peername, tuple) and peername:
        return ("ip", peername[0])
    return ("ip", None)
