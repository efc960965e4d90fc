"""The processing flow wired once, for the daemon and every CLI verb that processes mail.

``Flow.accept`` is what intake calls: the raw bytes are committed (group commit with
concurrent deliveries, ``RawWriter``), and each new message's id is handed to the
``Processor`` before the caller wakes. ``build_flow`` makes it from the configuration.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from ..config import Config, IntakeConfig
from ..errors import Busy, StoreUnavailable
from ..log import get_logger
from ..store import Delivery, SavedRaw, Store
from ..store.writer import RawWriter
from .admission import gatekeeper
from .parsers import auto_workers, load_parser
from .processor import RECOVER_BATCH, Processed, Processor

__all__ = ["Flow", "Intake", "build_flow"]

STOP_FLOOR_S = 0.1  # the least time processing gets at a stop, however late the writer ended
RECOVER_PAUSE_S = (0.5, 30.0)  # after the store went away: first and longest pause before asking again


class Intake:
    """What an intake edge calls: the durable write (``accept``) and the backpressure in front
    of it. ``Flow`` is one with processing behind it in this process; SMTP in a process of its
    own (``intake.smtp_process``) runs one whose stored messages are processed by its parent."""

    def __init__(self, writer: RawWriter, limits: IntakeConfig) -> None:
        self.limits = limits
        self.bytes_in_flight = 0  # being received (SMTP DATA) or written
        self._writer = writer

    @property
    def waiting(self) -> int:
        """Messages stored and not processed yet, as far as this intake knows."""
        raise NotImplementedError

    def _released(self) -> None:
        """Bytes left the budget (room for who waits on it)."""

    def busy(self, incoming: int = 0) -> str | None:
        """Why no more mail should come in now, or None. ``incoming``: the size of the message
        about to come, when known (SMTP SIZE): it must fit in the budget too, unless nothing
        else is in flight (one message alone always fits)."""
        if self.waiting >= self.limits.backlog:
            return f"{self.waiting} messages wait for processing"
        if self.bytes_in_flight >= self.limits.bytes_in_flight or (
            self.bytes_in_flight and self.bytes_in_flight + incoming > self.limits.bytes_in_flight
        ):
            return f"{self.bytes_in_flight} message bytes in flight"
        return None

    def reserve(self, size: int) -> bool:
        """Count ``size`` bytes as in flight; False when that passes the budget (the caller
        then releases them and refuses). One message alone always fits."""
        self.bytes_in_flight += size
        return self.bytes_in_flight <= self.limits.bytes_in_flight or self.bytes_in_flight == size

    def release(self, size: int) -> None:
        self.bytes_in_flight -= size
        self._released()

    async def accept(self, delivery: Delivery, *, reserved: int = 0) -> SavedRaw:
        """Commit the raw bytes; on return the message is queued for processing.
        ``reserved``: bytes the caller already counted in flight (SMTP during DATA).
        Busy past the backlog or the byte budget; StoreUnavailable when the database cannot
        commit (the sender should retry)."""
        counted = reserved
        try:
            if not reserved:
                reason = self.busy()
                if reason is None:
                    counted = len(delivery.raw)
                    if not self.reserve(counted):
                        reason = f"{self.bytes_in_flight} message bytes in flight"
                if reason is not None:
                    raise Busy(reason)
            return await self._writer.accept(delivery)
        finally:
            self.release(counted)


class Flow(Intake):
    """Durable write, then processing; start()/stop() like every component."""

    def __init__(
        self, store: Store, processor: Processor, *, recover: bool = False, limits: IntakeConfig | None = None
    ) -> None:
        super().__init__(RawWriter(store, self._stored, owner=processor.owner), limits or IntakeConfig())
        self.processor = processor
        self.counters = processor.counters
        self.outcomes = processor.outcomes
        self._recover = recover
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger(component="intake")

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The long-lived tasks, for the daemon to watch."""
        return [*self._writer.tasks, *self.processor.tasks, *self._tasks]

    async def start(self) -> None:
        await self._writer.start()
        await self.processor.start()
        if self._recover:
            self._tasks.append(asyncio.create_task(self._recover_loop(), name="recover"))

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish what was accepted (queued writes and processing) within ``timeout`` seconds in
        all, then stop; past it the writer and the processor are stopped anyway (what was not
        committed gets a 451, what was not processed stays pending for the next start)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not await self._writer.stop(timeout):
            self._log.warning("intake_stop_timeout")
        # A moment at least: with none, an idle processor would be reported as stuck.
        await self.processor.stop(max(STOP_FLOOR_S, deadline - loop.time()))

    @property
    def backlog(self) -> int:
        """Messages accepted and not yet processed (in this process's queues)."""
        return self._writer.queued + self.processor.backlog

    @property
    def waiting(self) -> int:
        return self.processor.backlog

    def _released(self) -> None:
        self.processor.progress.set()

    async def room(self) -> None:
        """Until the flow takes mail again (IMAP and imports wait; SMTP refuses instead)."""
        while self.busy():
            self.processor.progress.clear()
            await self.processor.progress.wait()

    @asynccontextmanager
    async def room_for(self, sizes: Sequence[int]) -> AsyncIterator[int]:
        """Wait for room, then hold one reservation for as many of ``sizes`` (in order, one at
        least) as fit in the byte budget left; yields how many. For a caller that knows sizes
        before it has the bytes (IMAP's RFC822.SIZE): the bytes are counted before they are
        fetched, once per batch rather than once per message."""
        await self.room()
        left = self.limits.bytes_in_flight - self.bytes_in_flight
        count = total = 0
        for size in sizes:
            if count and total + size > left:
                break
            count, total = count + 1, total + size
        self.bytes_in_flight += total
        try:
            yield count
        finally:
            self.release(total)

    async def accept_reserved(self, deliveries: Sequence[Delivery]) -> list[SavedRaw]:
        """Commit a batch whose bytes the caller holds a reservation for (``room_for``); on
        return each new message is queued for processing."""
        return await self._writer.accept_many(deliveries)

    async def accept_and_wait(self, deliveries: Sequence[Delivery]) -> list[Processed]:
        """Commit, then wait until each new message is processed (imports, which wait for
        room instead of being refused)."""
        await self.room()
        size = sum(len(d.raw) for d in deliveries)
        self.reserve(size)
        try:
            saved = await self._writer.accept_many(deliveries)
        finally:
            self.release(size)
        return await asyncio.gather(*(self._result(s) for s in saved))

    async def _result(self, saved: SavedRaw) -> Processed:
        if not saved.is_new:
            return Processed(saved.id, True, "duplicate", None, 0)
        return await self.processor.submit(saved.id)

    def _stored(self, delivery: Delivery, saved: SavedRaw) -> None:
        self.stored(saved, len(delivery.raw), delivery.source)

    def stored(self, saved: SavedRaw, size: int, source: str) -> None:
        """A message was committed (here, or by the SMTP process for this one): process it."""
        self.counters["accepted"] += 1
        if saved.is_new:  # the writer claimed it for this process as it stored it
            self.processor.submit(saved.id, size, held=True)
            return
        self.counters["duplicates"] += 1
        self._log.info("intake_duplicate", sha256=saved.sha256, source=source, raw_id=saved.id,
                       pending=saved.pending)
        if saved.pending:  # sent again before it was processed: process it (the claim decides who)
            self.processor.submit(saved.id, size)

    async def _recover_loop(self) -> None:
        """On start, after processing was deferred, and once per claim lease, queue the
        messages still pending: the periodic pass takes over what a daemon on another host
        claimed before it died. While the store stays away, ask again after pauses doubling
        up to a limit."""
        deferred = self.processor.deferred
        sweep = self.processor.claim_lease.total_seconds()
        first, longest = RECOVER_PAUSE_S
        pause = first
        while True:
            deferred.clear()
            try:
                queued = await self.processor.recover()
                pause = first
            except StoreUnavailable as exc:
                self._log.warning("recover_deferred", error=str(exc), retry_in=pause)
                queued = 0
                deferred.set()
            if queued >= RECOVER_BATCH:
                continue  # a large backlog: take the next slice at once
            try:
                await asyncio.wait_for(deferred.wait(), sweep)
            except TimeoutError:
                continue
            await asyncio.sleep(pause)
            pause = min(longest, pause * 2)


def build_flow(
    config: Config,
    store: Store,
    index_sync: Callable[[], Awaitable[None]] | None = None,
    *,
    recover: bool = False,
) -> Flow:
    """The flow as ``[parser]`` and ``[security]`` configure it. ``index_sync``: the daemon's
    index catching up after each commit (``Processor``). ``recover``: also process what a crash
    left pending (the daemon; never a CLI verb beside a running daemon)."""
    processor = Processor(
        store, index_sync=index_sync, gate=gatekeeper(config.security),
        parser=load_parser(config.parser.module), workers=auto_workers(config.parser.workers),
        parse_timeout=config.parser.timeout_seconds, claim_seconds=config.intake.claim_seconds,
        counters=Counter(),
    )
    return Flow(store, processor, recover=recover, limits=config.intake)
