"""SMTP intake in a process of its own: aiosmtpd and the durable raw write, nothing else.

Processing, lookups and the web pages share the daemon's event loop and its interpreter lock;
under a stream of notices they took half of the loop, and each 250 waited behind them (SMTP
acknowledged 0.40x what a bare aiosmtpd server does, bench/ingest.py). As Postfix keeps
smtpd apart from its queue manager, the listener here runs in a child process that commits
each message (claimed for the parent's processor, ``Store.save_raw_many``) before its 250 and
tells the parent what it stored; the parent processes it as if stored itself.

The two talk over a socket pair, one JSON object a line:
- child -> parent: ``{"ready": [host, port]}`` once listening; ``{"stored": [[id, sha256, new,
  pending, size], ...]}`` after each commit, before its 250s; ``{"replies": {...},
  "last_success": t}`` within a loop turn of each reply it sends, and at the end.
- parent -> child: ``{"waiting": n}`` (messages it has yet to process: the backlog limit),
  ``{"level": "debug"}`` (a reload), ``{"stop": seconds}``.

Nothing is lost on either side's death: what the child committed is pending in the database,
claimed by the parent's owner id, so the parent's recovery takes up what it was not told of;
the child stops when the parent's end closes; the parent treats the child's end closing as a
task that died (the daemon exits non-zero and systemd restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import signal
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..log import configure_logging, get_logger, set_level
from ..processing.flow import Flow, Intake
from ..processing.processor import TRIM_AFTER_BYTES, trim_memory, tune_allocator
from ..store import Delivery, SavedRaw, Store, StoreSpec
from ..store.writer import RawWriter
from .smtp import SmtpListener

__all__ = ["SmtpProcess", "listening_socket"]

READY_S = 30.0  # the child's start: interpreter, imports, database
REPORT_S = 0.05  # how often the parent tells the child its backlog, while it changes
LINE_LIMIT = 1 << 24  # one report line: a commit of MAX_BATCH messages is ~30 KiB


def listening_socket(host: str, port: int) -> socket.socket:
    """The SMTP socket, bound and listening in the parent (so its port is known before the
    child starts, and a port taken is a start-up error here); the first address ``host`` has."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock


class SmtpProcess:
    """The parent's side: starts the child on the bound socket and hands what it stores to the
    flow's processor; start()/stop() like every component."""

    def __init__(self, flow: Flow, config: Config, store: StoreSpec, sock: socket.socket | None = None) -> None:
        self._flow = flow
        self._config = config
        self._store = store
        self._sock = sock
        self.replies: Counter[str] = Counter()  # by reply code, as the child last reported
        self.last_success = 0.0
        self.address: tuple[str, int] = ("", 0)
        self._process: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._log = get_logger(component="smtp")

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self._tasks

    @property
    def pid(self) -> int | None:
        """The SMTP process's id while it runs (the ``ready`` log line names it)."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        cfg = self._config.smtp
        sock = self._sock or listening_socket(cfg.host, cfg.port)
        ours, theirs = socket.socketpair()
        try:
            context = multiprocessing.get_context("spawn")
            self._process = context.Process(
                target=_child, name="inbox-daemon smtp", daemon=True,
                args=(sock, theirs, self._config, self._store, self._flow.processor.owner),
            )
            self._process.start()
        finally:
            theirs.close()
            if self._sock is None:
                sock.close()  # the child holds it now
        reader, self._writer = await asyncio.open_unix_connection(sock=ours, limit=LINE_LIMIT)
        try:
            ready = await asyncio.wait_for(self._ready(reader), READY_S)
        except BaseException:
            self._kill()
            raise
        self.address = (ready[0], int(ready[1]))
        self._tasks = [asyncio.create_task(self._read(reader), name="smtp-process"),
                       asyncio.create_task(self._report(), name="smtp-backlog")]

    async def _ready(self, reader: asyncio.StreamReader) -> list[Any]:
        while True:
            line = await reader.readline()
            if not line:
                raise OSError(f"the SMTP process ended at start (exit code {self._process.exitcode})")
            said = json.loads(line)
            if "ready" in said:
                return list(said["ready"])
            self._heard(said)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """What the child says, until its end closes: at a stop, or because it died (a reset
        when it died with bytes of ours unread)."""
        while line := await _line(reader):
            self._heard(json.loads(line))
        if not self._stopping:
            self._log.error("smtp_process_ended", exit_code=await asyncio.to_thread(self._exit_code))

    def _heard(self, said: dict[str, Any]) -> None:
        for raw_id, sha256, new, pending, size in said.get("stored", ()):
            self._flow.stored(SavedRaw(raw_id, sha256, is_new=new, pending=pending), size, "smtp")
        if "replies" in said:
            self.replies = Counter(said["replies"])
            self.last_success = float(said["last_success"])

    async def _report(self) -> None:
        """The processor's backlog, to the child, whenever it has changed."""
        told = -1
        while True:
            waiting = self._flow.waiting
            if waiting != told:
                self._tell({"waiting": waiting})
                told = waiting
            await asyncio.sleep(REPORT_S)

    def _tell(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message).encode() + b"\n")

    def set_level(self, level: str) -> None:
        """A reload's new log level, for the child too."""
        self._tell({"level": level})

    async def stop(self, timeout: float = 10.0) -> None:
        """The child stops its listener (transactions in flight get their answer) and its
        writer, reports, and exits; past ``timeout``, or when this stop is cancelled (the
        daemon's own deadline), it is killed."""
        if self._process is None:
            return
        self._stopping = True
        self._tell({"stop": timeout})
        try:
            reading = [t for t in self._tasks if t.get_name() == "smtp-process"]
            if reading:  # ends once the child has reported its last stored messages and exited
                await asyncio.wait(reading, timeout=timeout + 1.0)
            await asyncio.to_thread(self._process.join, 1.0)
        finally:
            for task in self._tasks:
                task.cancel()
            if self._writer is not None:
                self._writer.close()
            self._kill()
            self._process = None
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _exit_code(self) -> int | None:
        self._process.join(1.0)
        return self._process.exitcode  # type: ignore[no-any-return]

    def _kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)


class _ChildIntake(Intake):
    """The child's intake: the group-committing writer and the budget; what it stores is
    reported to the parent before the 250 goes out."""

    def __init__(self, store: Store, owner: str, config: Config, send: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(RawWriter(store, self._stored, owner=owner), config.intake)
        self._send = send
        self.parent_waiting = 0  # the parent's backlog as it last said
        self.stored_since = 0  # stored and reported since then
        self._since_trim = 0  # bytes taken into the budget since the heap was last trimmed
        self._trims: set[asyncio.Task[None]] = set()

    def reserve(self, size: int) -> bool:
        self._since_trim += size
        return super().reserve(size)

    def _released(self) -> None:
        """Idle after a burst of large messages: the heap back to the system, as the parent's
        processor does (``trim_memory``); a DATA buffer that grew piece by piece (no SIZE=)
        leaves freed heap behind it (bench/flood.py --no-size)."""
        if not self.bytes_in_flight and self._since_trim > TRIM_AFTER_BYTES:
            self._since_trim = 0
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(trim_memory))
            self._trims.add(task)
            task.add_done_callback(self._trims.discard)

    @property
    def waiting(self) -> int:
        return self.parent_waiting + self.stored_since

    def _stored(self, delivery: Delivery, saved: SavedRaw) -> None:
        self.stored_since += 1
        self._send({"stored": [[saved.id, saved.sha256, saved.is_new, saved.pending, len(delivery.raw)]]})

    async def start(self) -> None:
        await self._writer.start()

    async def stop(self, timeout: float) -> None:
        await self._writer.stop(timeout)


def _child(sock: socket.socket, channel: socket.socket, config: Config, store: StoreSpec, owner: str) -> None:
    """The child process: the listener until the parent says stop or goes away. Signals are
    the parent's to act on (systemd sends SIGTERM to every process of the unit at once): this
    process stops when the parent tells it, or when the parent's end of the channel closes."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    tune_allocator()  # DATA buffers of up to 10 MiB: back to the system once freed, as in the parent
    configure_logging(config.log.level, config.log.format, repeat_seconds=config.log.repeat_seconds)
    try:
        import uvloop  # as the daemon's own loop
    except ImportError:  # pragma: no cover - not on Windows
        asyncio.run(_serve(sock, channel, config, store, owner))
    else:
        uvloop.run(_serve(sock, channel, config, store, owner))


async def _serve(sock: socket.socket, channel: socket.socket, config: Config, spec: StoreSpec, owner: str) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=channel, limit=LINE_LIMIT)

    def send(message: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(json.dumps(message).encode() + b"\n")

    store = await Store.open_spec(spec)
    intake = _ChildIntake(store, owner, config, send)
    listener = SmtpListener(intake, config.smtp, sock=sock)
    reporting = False

    def report() -> None:
        nonlocal reporting
        reporting = False
        send(_figures(listener))

    def replied() -> None:  # the counts reach the parent within a loop turn of each reply
        nonlocal reporting
        if not reporting:
            reporting = True
            asyncio.get_running_loop().call_soon(report)

    listener.on_reply = replied
    try:
        await intake.start()
        await listener.start()
        send({"ready": list(listener.address)})
        timeout = await _until_stop(reader, intake)
        await listener.stop(timeout)
        await intake.stop(timeout)
    finally:
        send(_figures(listener))
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()
        await store.close()


async def _until_stop(reader: asyncio.StreamReader, intake: _ChildIntake) -> float:
    """Follow what the parent says; the stop's time budget once it says stop or goes away."""
    while line := await _line(reader):
        said = json.loads(line)
        if "waiting" in said:
            intake.parent_waiting, intake.stored_since = int(said["waiting"]), 0
        if "level" in said:
            set_level(str(said["level"]))
        if "stop" in said:
            return float(said["stop"])
    get_logger(component="smtp").warning("smtp_parent_gone")
    return 5.0


async def _line(reader: asyncio.StreamReader) -> bytes:
    """The next line; empty at the end, and when the other end went away with bytes unread."""
    try:
        return await reader.readline()
    except ConnectionError:
        return b""


def _figures(listener: SmtpListener) -> dict[str, Any]:
    return {"replies": dict(listener.replies), "last_success": listener.last_success}

