"""The flow after the durable write: claim -> parse -> admit -> apply -> index.

``submit(raw_id)`` queues a stored message; a task takes batches, loads their bytes, parses
batch k+1 (in a worker process when configured) while batch k is assessed and applied in one
transaction, then waits until the index has read back what it changed (``index_sync``). One
message's fault stays with it: a batch that fails for any reason but the store being down is
applied again one by one, and the message that fails alone is marked ``error`` with its reason.
A store that goes away leaves the batch ``pending`` in the database; ``recover`` queues it again
once the store is back.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import os
import secrets
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from .. import keys
from ..errors import StoreUnavailable
from ..log import get_logger
from ..notices import ParseResult
from ..store import Applied, PendingRow, RawRecord, Store
from ..store.engine import is_transient
from ..trust import Claim, Gatekeeper, header_claims
from .admission import admitter
from .confirmations import annotate
from .parsers import BUILTIN, ParseFailed, Parser, ParsePool

__all__ = ["Processed", "Processor", "MAX_BATCH", "RECOVER_BATCH"]

MAX_BATCH = 256  # messages per apply transaction
BATCH_BYTES = 16 * 1024 * 1024  # message bytes loaded and parsed at once (a batch holds one at least)
RECOVER_BATCH = 5_000  # pending messages queued per recovery pass


TRIM_AFTER_BYTES = 64 * 1024 * 1024  # processed since the last trim, when the queue runs empty


def tune_allocator() -> None:
    """glibc malloc for a daemon that handles 10 MB messages in bursts: buffers of 1 MiB and
    more always come from mmap and go back to the system when freed (by default the threshold
    grows after each such free, and later large buffers stay on the heap for good), and two
    arenas instead of eight per core (threads otherwise each keep their own freed memory).
    A no-op elsewhere. Called once by ``inbox-daemon serve``."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


GC_YOUNG = 10_000  # container allocations between young collections (CPython's default: 700)


def tune_collector() -> None:
    """The cyclic garbage collector for a long-running process: what exists once it has
    started (modules, the schema, compiled statements) is moved out of the collector's view
    (``gc.freeze``), and young collections run every GC_YOUNG container allocations instead
    of 700. Each batch makes thousands of short-lived rows and results; at the default the
    collections took 5% of a back-fill (bench/import.py). Reference counting still frees at
    once whatever is not in a cycle. Called once by ``inbox-daemon serve`` and ``import``."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


def trim_memory() -> None:
    """Give freed heap back to the system (glibc ``malloc_trim``): after a burst of large
    messages the process would otherwise keep its peak size; elsewhere a no-op."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def owner_id() -> str:
    """Who claims: host, pid and a random part (a reused pid is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def dead_here(owner: str) -> bool:
    """True for an owner on this host whose process is gone: its claims are free at once
    (after a SIGKILL and a restart, recovery need not wait for the lease)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Processed:
    """What became of one stored message."""

    raw_id: int
    duplicate: bool
    outcome: str  # opt_out | not_opt_out | malformed | error | quarantined | pending (deferred)
    reason: str | None
    buyers_new: int


@dataclass(frozen=True)
class _Parsed:
    record: RawRecord
    result: ParseResult
    claims: list[Claim] | None = None  # the headers' forwarding claims, read beside the parse


@dataclass(frozen=True)
class _Unparsed:
    record: RawRecord
    failure: ParseFailed


class Processor:
    """Processes stored messages by id; start()/stop() like every component."""

    def __init__(
        self,
        store: Store,
        *,
        index_sync: Callable[[], Awaitable[None]] | None = None,
        gate: Gatekeeper | None = None,
        parser: Parser = BUILTIN,
        workers: int = 0,
        parse_timeout: float = 30.0,
        claim_seconds: float = 30.0,
        counters: Counter[str] | None = None,
    ) -> None:
        self._store = store
        # The daemon's index follower catching up after each commit (``IndexFollower.catch_up``);
        # None: no index here (a CLI verb), whose daemons follow the change rows.
        self._index_sync = index_sync
        self._gate = gate  # None: no admission step (every notice applies, nothing recorded)
        self.parser = parser
        self._parsing = ParsePool(parser, workers, parse_timeout)
        self._log = get_logger(component="processing")
        self._queue: asyncio.Queue[tuple[int, int, bool]] = asyncio.Queue()  # (id, size, claim): never bytes
        self.owner = owner_id()
        # A claim not renewed for this long is taken over: its owner died or hung, on this
        # host or another. Renewed every third of it while held.
        self.claim_lease = timedelta(seconds=claim_seconds)
        self._held: set[int] = set()  # claimed by this process and not decided yet
        self._stored_held: set[int] = set()  # queued, claimed by this process when it stored them
        self._dead: set[str] = set()  # owners on this host found dead: their claims are free
        self._since_trim = 0
        self._waiting: dict[int, asyncio.Future[Processed]] = {}  # queued or in progress
        self._task: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self.deferred = asyncio.Event()  # set when work was left pending for the store
        self.progress = asyncio.Event()  # set whenever a message is done: room in the backlog
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (source kind, outcome): the metrics

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return [t for t in (self._task, self._renewing) if t is not None]

    def use_gate(self, gate: Gatekeeper) -> None:
        """New admission rules (a configuration reload); batches being applied keep the old."""
        self._gate = gate

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="processor")
        self._renewing = asyncio.create_task(self._renew_claims(), name="claim-renewal")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish what was queued (within ``timeout``), then stop."""
        stuck = False
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:  # left pending: processed at the next start
            self._log.warning("processing_stop_timeout", queued=self._queue.qsize())
            stuck = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.to_thread(functools.partial(self._parsing.close, True, kill=stuck))

    async def parse(self, data: bytes) -> ParseResult | ParseFailed:
        """What the parser reads in ``data`` now, through the same workers as the flow (a
        runaway parse is stopped there), changing nothing: for showing a message before a decision."""
        (result,), _ = await self._parsing.parse_many([data])
        return result

    async def drain(self) -> None:
        """Until everything queued so far is processed."""
        await self._queue.join()

    @property
    def backlog(self) -> int:
        """Messages queued and not yet processed."""
        return len(self._waiting)

    def submit(self, raw_id: int, size: int = 0, *, claim: bool = True, held: bool = False) -> asyncio.Future[Processed]:
        """Queue a stored message; a message already queued is not queued twice. ``claim``:
        a pending message, processed only if this process claims it (exactly one owner);
        False: a kept message run again on purpose (``quarantine reprocess``). ``held``: this
        process claimed it as it stored it (``Store.save_raw_many``), so it is only read, with
        no claiming transaction; the apply's fence (``raw.lost``) still checks the claim."""
        waiting = self._waiting.get(raw_id)
        if waiting is None:
            waiting = self._waiting[raw_id] = asyncio.get_running_loop().create_future()
            if held and claim:
                self._stored_held.add(raw_id)
            self._queue.put_nowait((raw_id, size, claim))
        return waiting

    async def process(self, raw_ids: Sequence[int]) -> list[Processed]:
        """Queue these messages and wait until each is processed (``quarantine reprocess``,
        imports). Needs ``start()``."""
        return list(await asyncio.gather(*(self.submit(i, claim=False) for i in raw_ids)))

    async def recover(self) -> int:
        """Queue the pending messages not already queued and not held by a live claim of
        another owner. Returns how many. One processed meanwhile is harmless: its claim fails."""
        rows = await self._store.pending_raw(limit=RECOVER_BATCH, lease=self.claim_lease)
        ids = [p for p in rows if p.id not in self._waiting and self._free(p)]
        for row in ids:
            self.submit(row.id, row.size)
        if ids:
            self._log.info("recovered_pending", count=len(ids))
        return len(ids)

    def _free(self, row: PendingRow) -> bool:
        """Not claimed by another owner that may still be at it."""
        if row.claimed_by is None or row.claimed_by == self.owner or self._gone(row.claimed_by):
            return True
        return row.claimed_at is None or row.claim_expired

    def _gone(self, owner: str) -> bool:
        """An owner on this host whose process is gone, remembered: its claims are free."""
        if owner not in self._dead and dead_here(owner):
            self._dead.add(owner)
        return owner in self._dead

    async def _renew_claims(self) -> None:
        """Every third of the lease while work waits here, stamp this process's claims (the
        messages it stored and queued, the batch it is at), so that no other daemon takes over
        what this one still has in hand. The store being away is not an error here: the
        apply's fence (``raw.lost``) covers a claim that ran out meanwhile."""
        every = self.claim_lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            if not self._waiting:
                continue
            try:
                await self._store.renew_claims(self.owner)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._log.warning("claim_renewal_deferred", error=str(exc), waiting=len(self._waiting))

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        """Parse batch k+1 while batch k is assessed and applied."""
        ahead: tuple[list[tuple[int, bool]], asyncio.Task[list[_Parsed | _Unparsed]]] | None = None
        while True:
            batch = self._take() if ahead else self._take(await self._queue.get())
            parsing = asyncio.create_task(self._parse(batch)) if batch else None
            if ahead is not None:
                await self._finish(*ahead)
            ahead = (batch, parsing) if parsing is not None else None
            if ahead is None and self._since_trim > TRIM_AFTER_BYTES:  # idle after a burst
                self._since_trim = 0
                await asyncio.to_thread(trim_memory)

    def _take(self, first: tuple[int, int, bool] | None = None) -> list[tuple[int, bool]]:
        """Up to MAX_BATCH (id, claim) and BATCH_BYTES of message bytes, ``first`` included."""
        batch = [first] if first else []
        size = sum(n for _, n, _ in batch)
        while not self._queue.empty() and len(batch) < MAX_BATCH and size < BATCH_BYTES:
            item = self._queue.get_nowait()
            batch.append(item)
            size += item[1]
        return [(raw_id, claim) for raw_id, _, claim in batch]

    async def _claim(self, raw_ids: list[int]) -> list[RawRecord]:
        """Claim these messages; those held by an owner on this host whose process is gone (a
        daemon killed before it processed what it stored) are taken at once, not after the lease."""
        lease = self.claim_lease
        records = await self._store.claim_raw(raw_ids, self.owner, lease=lease, dead=sorted(self._dead))
        missing = sorted(set(raw_ids) - {r.id for r in records})
        if missing:
            known = len(self._dead)
            for claimer in await self._store.claimers(missing):
                self._gone(claimer)
            if len(self._dead) > known:  # newly found gone: their claims are free now
                records += await self._store.claim_raw(missing, self.owner, lease=lease, dead=sorted(self._dead))
        self._held.update(r.id for r in records)
        return records

    async def _parse(self, batch: list[tuple[int, bool]]) -> list[_Parsed | _Unparsed]:
        ours = {i for i, claim in batch if claim and i in self._stored_held}
        self._stored_held -= ours
        claims = [i for i, claim in batch if claim and i not in ours]
        records = await self._claim(claims) if claims else []
        loaded = await self._store.load_raw_many([i for i, claim in batch if not claim or i in ours])
        self._held.update(r.id for r in loaded if r.id in ours)
        records += loaded
        self._since_trim += sum(r.size for r in records)
        readable = [r for r in records if r.unreadable is None]
        raws = [r.data for r in readable]
        # The admission step's header reading rides in the same worker call: off the event loop.
        results, read = await self._parsing.parse_many(raws, header_claims if self._gate is not None else None)
        parsed = iter(annotate(readable, results, self._log))
        found = iter(read if read is not None else [None] * len(raws))
        out: list[_Parsed | _Unparsed] = []
        for r in records:  # bytes this process cannot open are that message's error, kept with the reason
            x, c = (next(parsed), next(found)) if r.unreadable is None else (self._unreadable(r), None)
            out.append(_Unparsed(r, x) if isinstance(x, ParseFailed) else _Parsed(r, x, c))
        return out

    def _unreadable(self, record: RawRecord) -> ParseFailed:
        """A message sealed under a data key this daemon lacks (the key file has not reached it
        after ``privacy rotate-key``): an error with the reason, never a crash; ``reprocess``
        takes it up once the key file is in place."""
        self._log.warning("sealed_message_unreadable", raw_id=record.id, sha256=record.sha256, error=record.unreadable)
        return ParseFailed(f"cannot open the stored bytes: {record.unreadable}")

    async def _finish(self, batch: list[tuple[int, bool]], parsing: asyncio.Task[list[_Parsed | _Unparsed]]) -> None:
        try:
            try:
                parsed = await parsing
            except Exception as exc:
                if not is_transient(exc):
                    raise  # not the database: a bug in loading or parsing ends the task (supervised)
                self._defer([i for i, _ in batch], StoreUnavailable(str(exc)))
                return
            held = {p.record.id for p in parsed}
            for raw_id, claim in batch:  # another owner has it, or it was processed already
                if raw_id not in held:
                    why = "processed by another owner" if claim else "no such message"
                    self._done(raw_id, Processed(raw_id, claim, "duplicate" if claim else "error", why, 0))
            for unparsed in (p for p in parsed if isinstance(p, _Unparsed)):
                await self._failed(unparsed, unparsed.failure.reason)
            await self._process([p for p in parsed if isinstance(p, _Parsed)])
        finally:
            for _ in batch:
                self._queue.task_done()

    async def _apply(self, parsed: list[_Parsed]) -> list[Applied | None]:
        """``_commit``, then (with an index) until the index has what it committed."""
        applied = await self._commit(parsed)
        if self._index_sync is not None:
            await self._index_sync()
        return applied

    async def _commit(self, parsed: list[_Parsed]) -> list[Applied | None]:
        """One transaction: the admission step (with a gate), then apply; None for a message
        whose claim this process lost meanwhile."""
        items = [(p.record.id, p.result) for p in parsed]
        version, owner, claimed = self.parser.version, self.owner, set(self._held)
        if self._gate is None:
            return await self._store.apply_many(items, parser_version=version, owner=owner, claimed=claimed, entries=False)
        assessed = [
            (p.record.id, p.result, await self._gate.assess(p.record.data, p.result, p.record.envelope_to,
                                                             p.record.source, p.record.peer, read=p.claims))
            for p in parsed
        ]
        # The forwarder recorded with the evidence is the one attribution read from the headers
        # (the addr-spec), not the parser's guess.
        items = [(i, replace(r, forwarder=a.who.forwarder)) for i, r, a in assessed]
        admit = admitter(self._gate.policy, assessed)
        return await self._store.apply_many(
            items, parser_version=version, admit=admit, owner=owner, claimed=claimed, entries=False
        )

    async def _process(self, parsed: list[_Parsed]) -> None:
        if not parsed:
            return
        try:
            applied = await self._apply(parsed)
        except Exception as exc:  # unit-of-work boundary: keep the bytes, record why, go on
            if is_transient(exc):
                self._defer([p.record.id for p in parsed], StoreUnavailable(str(exc)))
            else:
                await self._apply_one_by_one(parsed, exc)
            return
        for one, app in zip(parsed, applied):
            self._applied(one, app)

    def _defer(self, raw_ids: Sequence[int], exc: StoreUnavailable) -> None:
        """Stays "pending" in the database; recovery queues it once the store is back."""
        self._log.warning("apply_deferred", count=len(raw_ids), error=str(exc))
        for raw_id in raw_ids:
            self._done(raw_id, Processed(raw_id, False, "pending", str(exc), 0))
        self.deferred.set()

    async def _apply_one_by_one(self, parsed: list[_Parsed], first: Exception) -> None:
        """A batch failed for a reason other than the store being down: find the culprit."""
        self._log.error("apply_batch_failed", error=repr(first), count=len(parsed))
        for at, one in enumerate(parsed):
            try:
                (app,) = await self._apply([one])
            except Exception as exc:
                if is_transient(exc):  # the store went away mid-batch: the rest waits for it
                    self._defer([p.record.id for p in parsed[at:]], StoreUnavailable(str(exc)))
                    return
                await self._failed(one, f"could not apply: {type(exc).__name__}: {exc}"[:500])
            else:
                self._applied(one, app)

    async def _failed(self, one: _Parsed | _Unparsed, reason: str) -> None:
        owner = self.owner if one.record.id in self._held else None
        try:
            marked = await self._store.mark_error(one.record.id, reason, owner=owner)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._defer([one.record.id], StoreUnavailable(str(exc)))
            return
        if marked:
            self._decided(one, "error", reason, 0)
        else:
            self._lost(one)

    def _lost(self, one: _Parsed | _Unparsed) -> None:
        """Another owner took the claim over (this process stalled past the lease): it decides."""
        self._log.warning("claim_lost", raw_id=one.record.id, sha256=one.record.sha256)
        self._done(one.record.id, Processed(one.record.id, True, "duplicate", "claim lost to another owner", 0))

    def _applied(self, one: _Parsed, app: Applied | None) -> None:
        if app is None:
            self._lost(one)
            return
        outcome, reason = ("quarantined", app.held) if app.held else (one.result.kind.value, one.result.reason)
        self._decided(one, outcome, reason, app.buyers_new)

    def _decided(self, one: _Parsed | _Unparsed, outcome: str, reason: str | None, buyers_new: int) -> None:
        record = one.record
        message_id = one.result.message_id if isinstance(one, _Parsed) else None
        ring = self._store.keyring
        tag = None if message_id is None or ring is None else keys.message_id_tag(ring, message_id)
        self.counters[outcome] += 1
        self.outcomes[(record.source.partition(":")[0], outcome)] += 1
        self._log.info(
            "intake_decision", sha256=record.sha256, message_id=tag, source=record.source,
            raw_id=record.id, outcome=outcome, reason=reason, buyers_new=buyers_new,
        )
        self._done(record.id, Processed(record.id, False, outcome, reason, buyers_new))

    def _done(self, raw_id: int, processed: Processed) -> None:
        self.progress.set()
        self._held.discard(raw_id)
        self._stored_held.discard(raw_id)
        waiting = self._waiting.pop(raw_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(processed)
