"""Group commit of raw deliveries: concurrent callers share one transaction, so one fsync
serves many senders (durable SQLite fsyncs per commit; bench/ingest.py).

``accept`` returns only once the bytes are committed, so a protocol edge may acknowledge
(SMTP 250, IMAP flag) on its return. ``on_stored`` is called for each stored delivery before
its caller wakes: whoever processes stored messages learns of each one first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ..errors import MessageRejected, StoreUnavailable
from ..log import get_logger
from .engine import is_transient
from .records import Delivery, SavedRaw
from .store import Store

__all__ = ["RawWriter", "MAX_BATCH"]

MAX_BATCH = 256  # deliveries per transaction
MAX_BATCH_BYTES = 16 * 1024 * 1024  # message bytes per transaction (a batch holds one at least)

OnStored = Callable[[Delivery, SavedRaw], None]


class RawWriter:
    """One task that writes what concurrent callers queued, a batch per transaction."""

    def __init__(self, store: Store, on_stored: OnStored, owner: str | None = None) -> None:
        self._store = store
        self._owner = owner  # claims what it stores (``Store.save_raw_many``)
        self._on_stored = on_stored
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[SavedRaw]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(component="writer")

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return [self._task] if self._task is not None else []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="raw-writer")

    async def stop(self, timeout: float | None = None) -> bool:
        """Write what was queued (within ``timeout`` seconds), then stop; False when the time ran
        out. Either way the task has ended on return, and a delivery not committed has its
        caller told StoreUnavailable (SMTP answers 451: the sender tries again)."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            finished = True
        except TimeoutError:
            finished = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            self._fail([self._queue.get_nowait()], StoreUnavailable("shutting down"))
            self._queue.task_done()
        return finished

    @property
    def queued(self) -> int:
        """Deliveries waiting for their transaction."""
        return self._queue.qsize()

    async def accept(self, delivery: Delivery) -> SavedRaw:
        """Commit the raw bytes (with concurrent callers); StoreUnavailable if that fails.
        One future awaited directly: SMTP calls this once per message."""
        done: asyncio.Future[SavedRaw] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((delivery, done))
        return await done

    async def accept_many(self, deliveries: Sequence[Delivery]) -> list[SavedRaw]:
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[SavedRaw]] = []
        for delivery in deliveries:
            done: asyncio.Future[SavedRaw] = loop.create_future()
            self._queue.put_nowait((delivery, done))
            waits.append(done)
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [o for o in outcomes if isinstance(o, SavedRaw)]

    async def _run(self) -> None:
        while True:
            await self._write_next(await self._queue.get())

    async def _write_next(self, first: tuple[Delivery, asyncio.Future[SavedRaw]]) -> None:
        """One batch from ``first`` on; its deliveries (and their bytes) are let go on return,
        not kept until the next delivery arrives."""
        batch = [first]
        size = len(first[0].raw)
        while not self._queue.empty() and len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
            batch.append(self._queue.get_nowait())
            size += len(batch[-1][0].raw)
        try:
            await self._write(batch)
        finally:  # cancelled mid-write (a stop past its deadline): its callers must not wait on
            self._fail(batch, StoreUnavailable("shutting down"))
            for _ in batch:
                self._queue.task_done()

    async def _write(self, batch: list[tuple[Delivery, asyncio.Future[SavedRaw]]]) -> None:
        """One transaction for the batch; when the data of one message is refused, each
        message on its own, so that only that one fails."""
        try:
            saved = await self._store.save_raw_many([d for d, _ in batch], owner=self._owner)
        except Exception as exc:
            if is_transient(exc):
                self._fail(batch, StoreUnavailable(str(exc)))
            elif len(batch) == 1:
                self._log.error("raw_write_refused", source=batch[0][0].source, error=repr(exc)[:500])
                self._fail(batch, MessageRejected(f"{type(exc).__name__}: {exc}"[:300]))
            else:
                for item in batch:
                    await self._write([item])
            return
        for (delivery, fut), one in zip(batch, saved):
            self._on_stored(delivery, one)
            if not fut.done():
                fut.set_result(one)

    @staticmethod
    def _fail(batch: list[tuple[Delivery, asyncio.Future[SavedRaw]]], error: Exception) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(error)
