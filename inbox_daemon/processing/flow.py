"""The processing flow wired once, for the daemon and every CLI verb that processes mail.

``Flow.accept`` is what intake calls: the raw bytes are committed (group commit with
concurrent deliveries, ``RawWriter``), and each new message's id is handed to the
``Processor`` before the caller wakes. ``build_flow`` makes it from the configuration.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

from ..config import Config
from ..errors import StoreUnavailable
from ..log import get_logger
from ..store import Delivery, IndexEntry, SavedRaw, Store
from ..store.writer import RawWriter
from .admission import gatekeeper
from .parsers import auto_workers, load_parser
from .processor import RECOVER_BATCH, Processed, Processor

__all__ = ["Flow", "build_flow"]

RECOVER_PAUSE_S = (0.5, 30.0)  # after the store went away: first and longest pause before asking again


class Flow:
    """Durable write, then processing; start()/stop() like every component."""

    def __init__(self, store: Store, processor: Processor, *, recover: bool = False) -> None:
        self.processor = processor
        self.counters = processor.counters
        self.outcomes = processor.outcomes
        self._writer = RawWriter(store, self._stored)
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
        """Finish what was accepted (queued writes and processing), then stop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self._writer.stop(), timeout)
        except TimeoutError:
            self._log.warning("intake_stop_timeout")
        await self.processor.stop(timeout)

    @property
    def backlog(self) -> int:
        """Messages accepted and not yet processed (in this process's queues)."""
        return self._writer.queued + self.processor.backlog

    async def accept(self, delivery: Delivery) -> SavedRaw:
        """Commit the raw bytes; on return the message is queued for processing.
        StoreUnavailable when the database cannot commit (the sender should retry)."""
        return await self._writer.accept(delivery)

    async def accept_and_wait(self, deliveries: Sequence[Delivery]) -> list[Processed]:
        """Commit, then wait until each new message is processed (imports)."""
        saved = await self._writer.accept_many(deliveries)
        return await asyncio.gather(*(self._result(s) for s in saved))

    async def _result(self, saved: SavedRaw) -> Processed:
        if not saved.is_new:
            return Processed(saved.id, True, "duplicate", None, 0)
        return await self.processor.submit(saved.id)

    def _stored(self, delivery: Delivery, saved: SavedRaw) -> None:
        self.counters["accepted"] += 1
        if saved.is_new:
            self.processor.submit(saved.id)
        else:
            self.counters["duplicates"] += 1
            self._log.info("intake_duplicate", sha256=saved.sha256, source=delivery.source, raw_id=saved.id)

    async def _recover_loop(self) -> None:
        """On start, and after processing was deferred, queue the messages still pending;
        while the store stays away, ask again after pauses doubling up to a limit."""
        deferred = self.processor.deferred
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
            await deferred.wait()
            await asyncio.sleep(pause)
            pause = min(longest, pause * 2)


def build_flow(
    config: Config,
    store: Store,
    on_applied: Callable[[Sequence[IndexEntry]], None] | None = None,
    *,
    recover: bool = False,
) -> Flow:
    """The flow as ``[parser]`` and ``[security]`` configure it. ``recover``: also process
    what a crash left pending (the daemon; never a CLI verb beside a running daemon)."""
    processor = Processor(
        store, on_applied or _ignore, gate=gatekeeper(config.security),
        parser=load_parser(config.parser.module), workers=auto_workers(config.parser.workers),
        parse_timeout=config.parser.timeout_seconds,
        counters=Counter(),
    )
    return Flow(store, processor, recover=recover)


def _ignore(_entries: Sequence[IndexEntry]) -> None:
    """A CLI verb has no index: a running daemon learns of the change through the change
    sequence (``inbox_daemon.lookup.follow``)."""
