"""systemd's service protocol without a dependency: notifications and socket activation.

Notifications (sd_notify(3)): one datagram of ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET`` —
READY=1, RELOADING=1, STOPPING=1, STATUS=, WATCHDOG=1 and EXTEND_TIMEOUT_USEC=. Every send is
a no-op without ``$NOTIFY_SOCKET``, so the daemon runs the same outside systemd.

Socket activation (sd_listen_fds(3)): ``LISTEN_PID`` names this process, ``LISTEN_FDS`` counts
the sockets passed from fd 3 on, ``LISTEN_FDNAMES`` names them (``FileDescriptorName=`` in the
.socket unit), colon-separated.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager

__all__ = [
    "notify",
    "watchdog_interval",
    "listen_fds",
    "Heartbeat",
    "extend_start_timeout",
    "reloading",
    "catch_early_hangup",
    "take_early_hangup",
    "LISTEN_FDS_START",
]

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START
EXTEND_STEP_S = 30.0  # each EXTEND_TIMEOUT_USEC asks for this much more; renewed at half of it
STATUS_EVERY_S = 2.0  # how often STATUS= is refreshed (only sent when the text changed)


def notify(*fields: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``fields`` as one notification; False when there is no ``$NOTIFY_SOCKET``.

    A path starting with ``@`` is in the abstract namespace (sd_notify(3)). Sending never
    blocks: the socket is non-blocking, and a full or gone receiver drops the message, as
    libsystemd's sd_notify does.
    """
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)
        try:
            sock.sendto("\n".join(fields).encode(), address)
        except OSError:
            return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of ``WatchdogSec=`` (sd_watchdog_enabled(3)
    advises pinging at half the timeout); None when the watchdog is off or meant for another
    process (``WATCHDOG_PID``)."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


def listen_fds(environ: MutableMapping[str, str] | None = None) -> dict[str, list[socket.socket]]:
    """The sockets systemd passed to this process, by name (unnamed ones are ``unknown``).

    Empty unless ``LISTEN_PID`` is this process. The variables are removed afterwards so that
    child processes (parser workers) do not take the sockets for theirs (sd_listen_fds(3),
    ``unset_environment``).
    """
    env = os.environ if environ is None else environ
    count, pid = env.get("LISTEN_FDS", ""), env.get("LISTEN_PID", "")
    names = env.get("LISTEN_FDNAMES", "")
    for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(key, None)
    if not count.isdigit() or pid != str(os.getpid()):
        return {}
    labels = names.split(":") if names else []
    found: dict[str, list[socket.socket]] = {}
    for i in range(int(count)):
        fd = LISTEN_FDS_START + i
        os.set_inheritable(fd, False)  # FD_CLOEXEC, as sd_listen_fds() sets it
        label = labels[i] if i < len(labels) and labels[i] else "unknown"
        found.setdefault(label, []).append(socket.socket(fileno=fd))
    return found


class Heartbeat:
    """WATCHDOG=1 and STATUS= sent from the event loop itself.

    Both ride on one loop timer, so a loop that stalls (a parse that never returns, a blocking
    call) stops the pings, and systemd restarts the service after ``WatchdogSec=``. A thread
    would keep pinging for a dead loop.
    """

    def __init__(self, status: Callable[[], str], *, interval: float | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self._status = status
        self._env = environ
        self._watchdog = watchdog_interval(environ) if interval is None else interval
        self._period = min(self._watchdog or STATUS_EVERY_S, STATUS_EVERY_S)
        self._handle: asyncio.TimerHandle | None = None
        self._last_status = ""

    async def start(self) -> None:
        if (os.environ if self._env is None else self._env).get("NOTIFY_SOCKET"):
            self._tick()

    async def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        fields = ["WATCHDOG=1"] if self._watchdog else []
        text = self._status()
        if text != self._last_status:
            fields.append(f"STATUS={text}")
            self._last_status = text
        if fields:
            notify(*fields, environ=self._env)
        self._handle = asyncio.get_running_loop().call_later(self._period, self._tick)


@asynccontextmanager
async def extend_start_timeout(step: float = EXTEND_STEP_S, environ: Mapping[str, str] | None = None) -> AsyncIterator[None]:
    """Keep asking for ``step`` more seconds of start-up time (EXTEND_TIMEOUT_USEC) while the
    body runs, from the event loop: a long index load is not killed by ``TimeoutStartSec=``,
    while a stalled loop stops asking. The watchdog is fed too, should it already run."""
    loop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle | None = None
    fields = [f"EXTEND_TIMEOUT_USEC={int(step * 1_000_000)}"]
    watchdog = watchdog_interval(environ)
    if watchdog is not None:
        fields.append("WATCHDOG=1")
    period = min(step / 2, watchdog or step)

    def extend() -> None:
        nonlocal handle
        notify(*fields, environ=environ)
        handle = loop.call_later(period, extend)

    extend()
    try:
        yield
    finally:
        if handle is not None:
            handle.cancel()


@asynccontextmanager
async def reloading(environ: Mapping[str, str] | None = None) -> AsyncIterator[None]:
    """RELOADING=1 (with MONOTONIC_USEC, which systemd 253+ expects) around a configuration
    reload, READY=1 after it, whatever the outcome: the service keeps running either way."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notify("RELOADING=1", f"MONOTONIC_USEC={usec}", environ=environ)
    try:
        yield
    finally:
        notify("READY=1", environ=environ)


_early_hangups = [0]  # SIGHUPs received before the event loop took the signal over


def _count_hangup(_signum: int, _frame: object) -> None:
    _early_hangups[0] += 1


def catch_early_hangup() -> None:
    """Remember a SIGHUP that comes before the daemon's loop handles it, instead of dying of it
    (its default action ends the process): ``systemctl reload`` during a long start-up is then
    applied once the daemon is ready (``take_early_hangup``)."""
    signal.signal(signal.SIGHUP, _count_hangup)


def take_early_hangup() -> bool:
    """Whether a SIGHUP came since ``catch_early_hangup``; forgets it."""
    seen, _early_hangups[0] = _early_hangups[0], 0
    return seen > 0
