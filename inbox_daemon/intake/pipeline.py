"""The one path every message takes: durable raw write -> acknowledge -> parse -> apply -> index.

``Intake.accept`` returns only once the raw bytes are committed, so a protocol edge may
acknowledge (SMTP 250, IMAP flag) on its return. Concurrent deliveries are written in one
transaction (group commit): one fsync serves many senders. Everything after the raw write can
be replayed: on start, raw messages still "pending" are processed again.

Between parse and apply, the ``Gatekeeper`` (issue 5) attributes each message and checks
Amazon's DKIM signature; the store decides, in the applying transaction, to apply or to hold
it in quarantine. ``reprocess`` sends kept messages through the same path again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import StoreUnavailable
from ..log import get_logger
from ..notices import ParseResult
from ..store import RawIn, SavedRaw, Store
from ..trust import Assessment, Gatekeeper
from .parsers import BUILTIN, Parser, ParsePool

__all__ = ["Delivery", "Processed", "Intake"]

MAX_BATCH = 256  # raw writes or applies per transaction
RECOVER_BATCH = 5_000  # pending messages queued per recovery pass


@dataclass(frozen=True)
class Delivery:
    """One message as it arrived, before anything is decided about it."""

    raw: bytes
    source: str  # "smtp", "imap:<account>", "import"
    envelope_from: str | None = None
    envelope_to: tuple[str, ...] = ()
    peer: str | None = None


@dataclass(frozen=True)
class Processed:
    """What became of one delivery once parsed and applied."""

    raw_id: int
    duplicate: bool
    outcome: str  # opt_out | not_opt_out | malformed | error | quarantined | pending (deferred)
    reason: str | None
    buyers_new: int


@dataclass
class _Job:
    raw_id: int
    raw: bytes
    sha256: str
    source: str
    done: asyncio.Future[Processed] | None = None
    envelope_to: tuple[str, ...] = ()


class Intake:
    """Durable intake plus the background processor that parses and applies."""

    def __init__(
        self,
        store: Store,
        apply_entries: Callable[[Sequence[Any]], None],
        gate: Gatekeeper | None = None,
        parser: Parser = BUILTIN,
        parse_workers: int = 0,
    ) -> None:
        self._store = store
        self._apply_entries = apply_entries  # updates the in-memory index after each commit
        self._gate = gate  # None: no admission step (every notice applies, nothing recorded)
        self._parser = parser
        self._parsing = ParsePool(parser, parse_workers)
        self._log = get_logger(component="intake")
        self._writes: asyncio.Queue[tuple[Delivery, asyncio.Future[SavedRaw]]] = asyncio.Queue()
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._retry = asyncio.Event()
        self.counters = {"accepted": 0, "duplicates": 0, "opt_out": 0, "not_opt_out": 0, "malformed": 0, "error": 0,
                         "quarantined": 0}
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (source kind, outcome): the metrics

    def use_gate(self, gate: Gatekeeper) -> None:
        """New admission rules (a configuration reload); batches being applied keep the old."""
        self._gate = gate

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer and processor; queue raw messages a crash left unprocessed."""
        self._tasks = [
            asyncio.create_task(self._writer(), name="intake-writer"),
            asyncio.create_task(self._processor(), name="intake-processor"),
            asyncio.create_task(self._recover_loop(), name="intake-recover"),
        ]

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish what was accepted (queued writes and processing), then stop."""
        try:
            await asyncio.wait_for(self._drain(), timeout)
        except TimeoutError:
            self._log.warning("intake_stop_timeout", queued=self._jobs.qsize())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._parsing.close, True)

    @property
    def backlog(self) -> int:
        """Messages accepted and not yet parsed and applied (in this process's queues)."""
        return self._writes.qsize() + self._jobs.qsize()

    async def _drain(self) -> None:
        # The writer queues each message's job before marking its write done, so once the
        # writes are joined every job is queued; joining the jobs then waits for the last one.
        await self._writes.join()
        await self._jobs.join()

    # -- durable write -----------------------------------------------------------------------

    async def accept(self, delivery: Delivery) -> SavedRaw:
        """Commit the raw bytes (group commit with concurrent callers); then queue processing."""
        done: asyncio.Future[SavedRaw] = asyncio.get_running_loop().create_future()
        await self._writes.put((delivery, done))
        return await done

    async def accept_and_process(self, delivery: Delivery) -> Processed:
        return (await self.accept_many_and_process([delivery]))[0]

    async def accept_many_and_process(self, deliveries: Sequence[Delivery]) -> list[Processed]:
        """One durable batch, then wait until each new message is parsed and applied."""
        saved = await self._store.save_raw_many([_raw_in(d) for d in deliveries])
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[Processed]] = []
        for delivery, s in zip(deliveries, saved):
            fut: asyncio.Future[Processed] = loop.create_future()
            if s.is_new:
                self._jobs.put_nowait(_Job(s.id, delivery.raw, s.sha256, delivery.source, fut, delivery.envelope_to))
            else:
                self.counters["duplicates"] += 1
                fut.set_result(Processed(s.id, True, "duplicate", None, 0))
            waits.append(fut)
        return list(await asyncio.gather(*waits))

    async def _writer(self) -> None:
        while True:
            batch = [await self._writes.get()]
            while not self._writes.empty() and len(batch) < MAX_BATCH:
                batch.append(self._writes.get_nowait())
            try:
                saved = await self._store.save_raw_many([_raw_in(d) for d, _ in batch])
            except StoreUnavailable as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(StoreUnavailable(str(exc)))
            else:
                for (delivery, fut), s in zip(batch, saved):
                    self._after_write(delivery, s)
                    if not fut.done():
                        fut.set_result(s)
            finally:
                for _ in batch:
                    self._writes.task_done()

    def _after_write(self, delivery: Delivery, saved: SavedRaw) -> None:
        self.counters["accepted"] += 1
        if saved.is_new:
            self._jobs.put_nowait(_Job(saved.id, delivery.raw, saved.sha256, delivery.source, None, delivery.envelope_to))
        else:
            self.counters["duplicates"] += 1
            self._log.info("intake_duplicate", sha256=saved.sha256, source=delivery.source, raw_id=saved.id)

    # -- processing --------------------------------------------------------------------------

    async def _processor(self) -> None:
        """Parse batch k+1 (in a worker process) while batch k is assessed and applied."""
        ahead: tuple[list[_Job], asyncio.Task[list[ParseResult]]] | None = None
        while True:
            batch = self._take_batch() if ahead else [await self._jobs.get()] + self._take_batch(1)
            parsing = asyncio.create_task(self._parsing.parse_many([j.raw for j in batch])) if batch else None
            if ahead is not None:
                await self._finish_batch(*ahead)
            ahead = (batch, parsing) if parsing is not None else None

    def _take_batch(self, have: int = 0) -> list[_Job]:
        batch: list[_Job] = []
        while not self._jobs.empty() and have + len(batch) < MAX_BATCH:
            batch.append(self._jobs.get_nowait())
        return batch

    async def _finish_batch(self, batch: list[_Job], parsing: asyncio.Task[list[ParseResult]]) -> None:
        try:
            results = await parsing
            await self._process(list(zip(batch, results)))
        finally:
            for _ in batch:
                self._jobs.task_done()

    async def _assess(self, parsed: list[tuple[_Job, ParseResult]]) -> list[Assessment] | None:
        if self._gate is None:
            return None
        return [await self._gate.assess(j.raw, r, j.envelope_to, j.source) for j, r in parsed]

    async def _apply(self, parsed: list[tuple[_Job, ParseResult]], assessed: list[Assessment] | None) -> list[Any]:
        """One transaction: the admission step (with a gate), then apply."""
        return await self._store.apply_many(
            [(job.raw_id, result) for job, result in parsed], parser_version=self._parser.version,
            assessed=assessed, policy=self._gate.policy if self._gate else None,
        )

    async def _process(self, parsed: list[tuple[_Job, ParseResult]]) -> None:
        try:
            assessed = await self._assess(parsed)
            applied = await self._apply(parsed, assessed)
        except StoreUnavailable as exc:
            # Stays "pending" in the database; the recovery loop picks it up once the store is back.
            self._log.warning("apply_deferred", count=len(parsed), error=str(exc))
            for job, _ in parsed:
                if job.done is not None and not job.done.done():
                    job.done.set_result(Processed(job.raw_id, False, "pending", str(exc), 0))
            self._retry.set()
            return
        except Exception as exc:  # unit-of-work boundary: keep the bytes, record why, go on
            await self._apply_one_by_one(parsed, exc)
            return
        for (job, result), app in zip(parsed, applied):
            self._applied(job, result, app)

    def _applied(self, job: _Job, result: ParseResult, app: Any) -> None:
        self._apply_entries(app.entries)
        outcome, reason = ("quarantined", app.held) if app.held else (result.kind.value, result.reason)
        self._finish(job, outcome, reason, app.buyers_new, result.message_id)

    async def _apply_one_by_one(self, parsed: list[tuple[_Job, Any]], first: Exception) -> None:
        """A batch failed for a reason other than the store being down: find the culprit."""
        self._log.error("apply_batch_failed", error=repr(first), count=len(parsed))
        for job, result in parsed:
            try:
                assessed = await self._assess([(job, result)])
                (app,) = await self._apply([(job, result)], assessed)
            except StoreUnavailable:
                self._retry.set()
                continue
            except Exception as exc:
                reason = f"could not apply: {type(exc).__name__}: {exc}"[:500]
                try:
                    await self._store.mark_error(job.raw_id, reason)
                except StoreUnavailable:
                    self._retry.set()
                self._finish(job, "error", reason, 0, result.message_id)
            else:
                self._applied(job, result, app)

    def _finish(self, job: _Job, outcome: str, reason: str | None, buyers_new: int, message_id: str | None) -> None:
        self.counters[outcome] = self.counters.get(outcome, 0) + 1
        self.outcomes[(job.source.partition(":")[0], outcome)] += 1
        self._log.info(
            "intake_decision", sha256=job.sha256, message_id=message_id, source=job.source,
            raw_id=job.raw_id, outcome=outcome, reason=reason, buyers_new=buyers_new,
        )
        if job.done is not None and not job.done.done():
            job.done.set_result(Processed(job.raw_id, False, outcome, reason, buyers_new))

    # -- recovery ----------------------------------------------------------------------------

    async def _recover_loop(self, every: float = 5.0) -> None:
        """On start, and after a deferred apply, queue the raw messages still pending."""
        while True:
            self._retry.clear()
            try:
                queued = await self.recover()
            except StoreUnavailable as exc:
                self._log.warning("recover_deferred", error=str(exc))
                queued = 0
                self._retry.set()
            if queued >= RECOVER_BATCH:
                continue  # a large backlog: take the next slice at once
            await self._retry.wait()
            await asyncio.sleep(every)  # the store was down: give it a moment before trying

    async def recover(self) -> int:
        """Queue every pending raw message (those not already queued). Returns how many."""
        await self._jobs.join()  # let queued work settle so nothing is parsed twice
        queued = 0
        for raw_id in await self._store.pending_raw_ids(limit=RECOVER_BATCH):
            rec = await self._store.load_raw(raw_id)
            self._jobs.put_nowait(_Job(raw_id, rec.data, rec.sha256, rec.source, None, rec.envelope_to))
            queued += 1
        if queued:
            self._log.info("recovered_pending", count=queued)
        return queued

    async def reprocess(self, raw_ids: Sequence[int]) -> list[Processed]:
        """Run the current parser and admission step over kept messages again (``quarantine
        reprocess``): a notice an older parser misread is applied now. Needs ``start()``."""
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[Processed]] = []
        for raw_id in raw_ids:
            rec = await self._store.load_raw(raw_id)
            fut: asyncio.Future[Processed] = loop.create_future()
            self._jobs.put_nowait(_Job(raw_id, rec.data, rec.sha256, rec.source, fut, rec.envelope_to))
            waits.append(fut)
        return list(await asyncio.gather(*waits))


def _raw_in(d: Delivery) -> RawIn:
    return RawIn(raw=d.raw, source=d.source, envelope_from=d.envelope_from, envelope_to=d.envelope_to, peer=d.peer)

