"""Keeps the in-memory index in step with the database.

Changes reach the index through the ``blocklist_changes`` sequence: only the rows changed since
the cursor, never a full reload. After each commit of its own the intake asks for a poll at once
(``catch_up``) and waits for it, so a notice counts as processed once the index blocks its
buyers. The web pages' removals and approvals, and CHECK's learning, apply the entries their own
transaction read at once, and the sequence brings them again (harmless: the index takes the
latest). Changes other processes commit (a CLI removal, a second daemon on the same PostgreSQL)
are pulled: on PostgreSQL a LISTEN connection wakes the follower as soon as such a transaction
commits (``changes.record`` sends the NOTIFY in it); pulling every ``interval`` seconds stays, so
a notification lost with its connection costs at most one interval, and each (re)connect pulls
at once for what came while nobody listened.
SQLite has no notification between processes: there the follower pulls every ``interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from .. import keys
from ..errors import StoreUnavailable
from ..log import Throttled, get_logger
from ..store.records import ChangeCursor, IndexEntry
from .index import BlocklistIndex

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["IndexFollower", "AddressLearner", "load_index", "usable"]


_log = get_logger(component="follow")
_unusable = Throttled(_log, "index_row_skipped")
_miscounted = Throttled(_log, "index_count_invalid")
_END: Literal["end"] = "end"
Chunk = list[IndexEntry] | BaseException | Literal["end"]


def usable(entries: Iterable[IndexEntry], warn: Callable[..., None] = _unusable,
           warn_count: Callable[..., None] = _miscounted) -> Iterator[IndexEntry]:
    """The entries the index can hold (a stored pseudonym); any other is logged and skipped,
    never the rows after it (a value written by hand). An entry of an active
    opt-out whose notice count is not one (zero, negative: ``keys.notice_count``) stays
    blocked, counted as one notice, and is logged: a bad count must not unblock a buyer, nor
    stop the index loading. ``first_seen`` None with count 0 is a key no longer blocked."""
    for entry in entries:
        if entry.kind not in ("order", "email") or not keys.is_stored(entry.value):
            # the value may be buyer data: its length tells enough to find the row
            warn(kind=str(entry.kind)[:20], length=len(str(entry.value)))
            continue
        removal = entry.first_seen is None and entry.count == 0
        if not removal and keys.notice_count(entry.count) is None:
            warn_count(kind=entry.kind, length=len(str(entry.value)), notices=repr(entry.count)[:40])
            entry = dataclasses.replace(entry, count=1)
        yield entry


async def load_index(store: Store, chunk: int = 10_000) -> BlocklistIndex:
    """Build the index from the store's stream without holding every row at once.

    The rows are read on the loop (the store is async) and handed in chunks to
    ``BlocklistIndex.build`` running in a thread, which packs them as they come. Whichever
    side fails, the other is ended: a reader blocked on a full queue is cancelled, a builder
    waiting for the next chunk is told the end. The index is keyed with the store's privacy
    key: its entries are pseudonyms made with it.
    """
    if store.keyring is None:
        raise RuntimeError("the store has no privacy key: its pseudonyms cannot be looked up")
    secret: bytes = store.keyring.pseudonym_key
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[Chunk] = asyncio.Queue(maxsize=8)

    async def pump() -> None:
        try:
            batch: list[IndexEntry] = []
            async with contextlib.aclosing(store.iter_index()) as rows:  # its connection goes back even if cancelled
                async for entry in rows:
                    batch.append(entry)
                    if len(batch) >= chunk:
                        await chunks.put(batch)
                        batch = []
            await chunks.put(batch)
            await chunks.put(_END)
        except asyncio.CancelledError:
            raise  # the builder has ended: nobody reads the queue any more
        except BaseException as exc:
            await chunks.put(exc)  # the builder reads on: cancelled with this task if it has ended
            raise

    def entries() -> Iterator[IndexEntry]:
        while True:
            item = asyncio.run_coroutine_threadsafe(chunks.get(), loop).result()
            if item == _END:
                return
            if isinstance(item, BaseException):
                raise StoreUnavailable(f"index load failed: {item}")
            assert isinstance(item, list)
            yield from usable(item)

    task = asyncio.create_task(pump(), name="index-load")
    try:
        return await asyncio.to_thread(lambda: BlocklistIndex.build(entries(), secret=secret))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        while not chunks.empty():  # a builder still waiting (this load was cancelled) ends
            chunks.get_nowait()
        chunks.put_nowait(_END)


class IndexFollower:
    """Pulls the change sequence into the index; start()/stop()."""

    def __init__(self, store: Store, index: BlocklistIndex, cursor: ChangeCursor, interval: float = 1.0) -> None:
        self._store, self._index, self._cursor, self._interval = store, index, cursor, interval
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(component="follow")
        self._deferred = Throttled(self._log, "follow_deferred")
        self._listen_failed = Throttled(self._log, "follow_listen_failed")
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self.applied = 0
        self.listens = 0  # LISTEN connections made (a reconnect adds one)
        self.caught_up = time.monotonic()  # when a poll last succeeded: the metrics' follow lag
        self._polls = 0  # polls begun
        self._catching_up: list[tuple[int, asyncio.Future[None]]] = []  # (the poll awaited, its waiter)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The long-lived tasks, for the daemon to watch."""
        return [t for t in (self._task, self._listener) if t is not None]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="index-follower")
        if self._store.notifies:  # SQLite: polling alone (no notification between processes)
            self._listener = asyncio.create_task(self._listen(), name="index-listener")

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self._release(self._polls + 1)
        self._deferred.flush()
        self._listen_failed.flush()

    async def poll_once(self) -> int:
        """Read the changes past the cursor and apply them; the cursor moves only once they
        are in the index, so a change that failed to apply is read again, never skipped."""
        cursor = dataclasses.replace(self._cursor, gaps=dict(self._cursor.gaps))
        entries = list(usable(await self._store.changes_since(cursor)))
        if entries:
            self._index.apply(entries)
            self.applied += len(entries)
        self._cursor = cursor
        self.caught_up = time.monotonic()
        return len(entries)

    async def catch_up(self) -> None:
        """Return once a poll that begins after this call has read to the end of the sequence:
        what was committed before the call is then in the index. Also when that poll fails
        (the store is away: a later poll brings it) or the follower stops; at once when it is
        not running."""
        if self._task is None or self._task.done():
            return
        caught = asyncio.get_running_loop().create_future()
        self._catching_up.append((self._polls + 1, caught))
        self._wake.set()
        await caught

    def _release(self, poll: int) -> None:
        """Answer the callers of ``catch_up`` waiting for ``poll`` or an earlier one."""
        waiting, self._catching_up = self._catching_up, []
        for awaited, caught in waiting:
            if awaited > poll:
                self._catching_up.append((awaited, caught))
            elif not caught.done():
                caught.set_result(None)

    async def _run(self) -> None:
        """Poll until stopped; at once again while a read stopped short of the end
        (``cursor.more``). The database being away is waited out; anything else is a bug
        and ends the task, which ends the daemon (``Daemon._supervise``): an index that has
        stopped following would answer OK for buyers who opted out since."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                self._wake.clear()  # before the read: a NOTIFY during it wakes the next one
                self._polls += 1
                try:
                    await self.poll_once()
                except StoreUnavailable as exc:
                    self._deferred(error=str(exc))
                else:
                    if self._cursor.more:
                        self._wake.set()
                        continue
                self._release(self._polls)
        finally:
            self._release(self._polls + 1)

    async def _listen(self) -> None:
        """Hold a LISTEN connection whose notifications wake ``_run``; when it is lost, connect
        again after a pause that doubles up to ``interval`` (polling covers the gap)."""
        pause = 0.1
        while True:
            try:
                listening = await self._store.listen_changes(self._wake.set)
            except StoreUnavailable as exc:
                self._listen_failed(error=str(exc))
                await asyncio.sleep(pause)
                pause = min(pause * 2, max(self._interval, 0.1))
                continue
            if listening is None:  # not a database that notifies: stay, as a watched task must
                await asyncio.Event().wait()
                return
            self.listens += 1
            pause = 0.1
            self._log.info("follow_listening", connects=self.listens)
            self._wake.set()  # what was committed while nobody listened
            try:
                await listening.lost.wait()
            finally:
                await listening.close()
            self._listen_failed(error="LISTEN connection lost")


class AddressLearner:
    """Persists "this address belongs to that blocked order" learned from CHECK, then indexes it.

    Any client of the query socket may send ``CHECK <address> <order>``, so what it may teach
    is narrow (docs/threat-model.md): only an address inside ``relay_domains`` (Amazon's buyer
    relays: a stranger's own address is never blocked this way), only onto an opt-out that has
    no address yet (another address is a conflict, held in the audit trail for review), and
    every change is audited with the client (peer uid on the Unix socket, address on TCP).
    """

    MAX_PENDING = 10_000

    def __init__(self, store: Store, index: BlocklistIndex, relay_domains: tuple[str, ...] = ("marketplace.amazon.*",),
                 log_interval: float | None = None, keyring: keys.Pseudonyms | None = None) -> None:
        self._store, self._index = store, index
        self._keyring = keyring  # log lines show pseudonym prefixes, never the keys
        self._patterns: tuple[str, ...] = ()
        self.use_relay_domains(relay_domains)
        self._queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue(self.MAX_PENDING)
        self._pending: set[tuple[str, str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(component="learn")
        # Any query client can repeat these as fast as it can send CHECK lines: throttled.
        self._dropped = Throttled(self._log, "learn_queue_full", log_interval)
        self._refused = Throttled(self._log, "learn_refused", log_interval)
        self._conflict = Throttled(self._log, "learn_conflict", log_interval)
        self._failed = Throttled(self._log, "learn_failed", log_interval)
        self.outcomes: dict[str, int] = {"learned": 0, "conflict": 0, "none": 0, "refused": 0}

    def use_relay_domains(self, relay_domains: tuple[str, ...]) -> None:
        """The domains a learned address must be in (``security.relay_domains``; SIGHUP)."""
        self._patterns = tuple(p.lower() for p in relay_domains)

    def submit(self, address: str, order_id: str, client: str | None = None) -> None:
        """Called by the query server with the address in canonical form (``keys.address``, as
        the protocol parsed it); never blocks the answer."""
        who = client or "unknown"
        domain = address.rpartition("@")[2]
        if not any(fnmatch.fnmatchcase(domain, p) for p in self._patterns):
            self._refuse(who, domain)
            return
        item = (address, order_id, who)
        if item in self._pending:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._dropped(**self._tags(order_id))  # one line per interval, however many are dropped
            return
        self._pending.add(item)

    def _tags(self, order_id: str, address: str | None = None) -> dict[str, Any]:
        """Log fields for the keys: ``BuyerKey.tag`` (kind and a pseudonym prefix), never the key."""
        found = {"order": keys.BuyerKey.order(order_id)}
        if address is not None:
            found["address"] = keys.BuyerKey.email(address)
        return {name: key.tag(self._keyring) if key is not None and self._keyring is not None else "<hidden>"
                for name, key in found.items()}

    def _refuse(self, client: str, domain: str) -> None:
        """A relay address outside ``relay_domains``: counted, logged throttled per client."""
        self.outcomes["refused"] += 1
        self._refused(client, reason="address outside security.relay_domains", domain=domain[:100], client=client)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The long-lived task, for the daemon to watch."""
        return [self._task] if self._task is not None else []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="address-learner")

    async def stop(self, timeout: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            self._log.warning("learn_stop_timeout", pending=self._queue.qsize())
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for warning in (self._dropped, self._refused, self._conflict, self._failed):
            warning.flush()

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            address, order_id, client = item
            try:
                outcome, entries = await self._store.learn_address(order_id, address, client=client)
                self.outcomes[outcome] += 1
                if outcome == "learned":
                    self._index.apply(entries)
                    self._log.info("address_learned", **self._tags(order_id, address), client=client)
                elif outcome == "conflict":
                    self._conflict(client, **self._tags(order_id, address), client=client)
            except Exception as exc:  # the next CHECK with both keys will submit it again
                self._failed(**self._tags(order_id), error=repr(exc))
            finally:
                self._pending.discard(item)
                self._queue.task_done()
