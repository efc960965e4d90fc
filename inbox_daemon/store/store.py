"""``Store``: the one object the daemon, processing and the CLI use to reach the database.

Every public method is one transaction, committed before it returns, and raises
``StoreUnavailable`` when the database cannot be reached or cannot commit. The store persists
and reads; it decides nothing (the admission decision reaches it as a callback, see
``apply_many``). The schema comes from the migrations (``inbox_daemon.store.migrate``);
opening a store never creates it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Coroutine, Iterable, Sequence
from contextlib import aclosing
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from inbox_daemon.notices.result import Buyer, ParseResult
from inbox_daemon.errors import StoreUnavailable
from inbox_daemon.privacy import KeyRing

from . import accounts, admission, applying, blocklist, changes, imap, keycheck, leases, pseudonyms, raw, retention, review, sealing, sellers
from .admission import AdmissionView
from .audit import audit, audit_rows
from .immediate import ImmediateSession, run_now
from .engine import (
    WRITE, Lane, Listening, ReadLane, WriteLane, import_page_cache, listen, make_engine, retrying, unavailable, utcnow,
)
from .records import (
    ApiTokenRow,
    WebUserRow,
    Admission,
    Applied,
    AuditEntry,
    ChangeCursor,
    Delivery,
    EvidenceDetail,
    HeldRow,
    Imported,
    IndexEntry,
    Lease,
    MonthFigures,
    OptOutRow,
    PendingRow,
    Position,
    RawRecord,
    RawRow,
    SavedRaw,
    SellerRow,
)
from .schema import MessageTrust

__all__ = ["Store", "StoreSpec", "Admit"]

T = TypeVar("T")
STREAM_ROWS = 10_000  # rows per fetch when streaming the index or an export
CHANGES_PER_READ = 10_000

#: The admission decision, asked inside the applying transaction: one ``Admission`` per item.
Admit = Callable[[AdmissionView], Awaitable[Sequence[Admission]]]


@dataclass(frozen=True)
class StoreSpec:
    """A store's URL and key ring: all another process needs to open the same store (it
    travels over multiprocessing's pipe, never in a command line)."""

    url: str
    keyring: KeyRing | None = field(repr=False)


class Store:
    """The blocklist database. Open with ``await Store.open(url)``; close with ``close()`` or
    use it as ``async with``. With a ``keyring`` raw messages are sealed at rest under its
    current data key (``sealing``); the daemon and the CLI always give one."""

    keyring: KeyRing | None = None  # set by daemon.open_store once matched to the database

    def __init__(self, engine: AsyncEngine, keyring: KeyRing | None = None) -> None:
        self.engine = engine
        self.keyring = keyring
        self._read = async_sessionmaker(engine, expire_on_commit=False)
        self._write = async_sessionmaker(engine, expire_on_commit=False, execution_options={WRITE: True})
        # The follower's reads on PostgreSQL: each statement on its own (no BEGIN and COMMIT
        # round trips around them), so a change reaches the index as soon as it is read.
        following = engine.execution_options(isolation_level="AUTOCOMMIT") if self.notifies else engine
        self._follow = async_sessionmaker(following, expire_on_commit=False)
        # SQLite: the transactions' own threads (``engine.Lane``), made on first use.
        self._lane: WriteLane | None = None
        self._read_lane: ReadLane | None = None

    @classmethod
    async def open(cls, url: str, *, keyring: KeyRing | None = None, pool_size: int = 5, **engine_options: Any) -> Self:
        """Make the engine; connects lazily (call ``ping`` to know the database answers).

        ``sqlite:///`` and ``postgresql://`` URLs are mapped to aiosqlite and asyncpg.
        """
        return cls(make_engine(url, pool_size=pool_size, **engine_options), keyring)

    @property
    def spec(self) -> StoreSpec:
        """What opens this store again in another process (``Store.open_spec``)."""
        return StoreSpec(self.engine.url.render_as_string(hide_password=False), self.keyring)

    @classmethod
    async def open_spec(cls, spec: StoreSpec) -> Self:
        """The store ``spec`` names, with its key ring, as ``open`` would make it."""
        return await cls.open(spec.url, keyring=spec.keyring)

    async def close(self) -> None:
        lanes = (self._lane, self._read_lane)
        self._lane = self._read_lane = None  # taken first: a close cut short by a stop's deadline is not redone
        for lane in lanes:
            if lane is not None:
                await asyncio.to_thread(lane.close)
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _transaction(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in one write transaction, committed; retried on PostgreSQL conflicts."""

        async def attempt() -> T:
            async with self._write() as session, session.begin():
                session.info[pseudonyms.INFO] = self.keyring
                return await work(session)

        return await retrying(attempt)

    async def _transaction_now(self, work: Callable[[AsyncSession], Coroutine[Any, Any, T]]) -> T:
        """``_transaction`` for ``work`` that awaits only its session: on SQLite run whole in
        the write lane's thread (``WriteLane``, ``immediate``), one hand-off for the transaction."""
        if self.engine.dialect.name != "sqlite":
            return await self._transaction(work)
        if self._lane is None:
            self._lane = WriteLane(self.engine.url)
        return await self._in_lane(self._lane, work)

    async def _reading(
        self, work: Callable[[AsyncSession], Coroutine[Any, Any, T]], sessions: async_sessionmaker[AsyncSession] | None = None
    ) -> T:
        """``work`` in one read transaction; on SQLite run whole in a read lane's thread
        (``ReadLane``): the daemon's loop hands it off once, not once per statement."""
        if self.engine.dialect.name == "sqlite":
            if self._read_lane is None:
                self._read_lane = ReadLane(self.engine.url)
            return await self._in_lane(self._read_lane, work)
        async with unavailable(), (sessions or self._read)() as session, session.begin():
            session.info[pseudonyms.INFO] = self.keyring
            return await work(session)

    async def _in_lane(self, lane: Lane, work: Callable[[AsyncSession], Coroutine[Any, Any, T]]) -> T:
        """``work`` on a synchronous session in ``lane``'s thread (it awaits only the session:
        ``immediate.run_now``)."""
        keyring = self.keyring

        def in_thread(connection: Connection) -> T:
            session = ImmediateSession(connection, {pseudonyms.INFO: keyring})
            try:
                done: T = run_now(work(cast(AsyncSession, session)))  # it answers what work awaits
                session.flush_now()
                return done
            finally:
                session.close()

        return await lane.run(in_thread)

    async def ping(self) -> None:
        async with unavailable(), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- raw messages --------------------------------------------------------------------------

    async def save_raw_many(self, deliveries: Sequence[Delivery], *, owner: str | None = None) -> list[SavedRaw]:
        """Store the bytes durably, in one transaction (one fsync for the batch). The same
        bytes again: ``is_new`` False and ``times_received`` one higher; the first delivery's
        metadata is kept. New messages are claimed by ``owner``, the process that will
        process them."""
        batch = raw.Sealed(deliveries, utcnow(), self.keyring)  # before the lock: see ``raw.Sealed``
        return await self._transaction_now(lambda s: raw.save_many(s, batch, owner))

    async def pending_raw(self, limit: int = 1000, *, lease: timedelta = timedelta(0)) -> list[PendingRow]:
        """Messages stored but not processed, oldest first, with their claims (recovery); a
        claim older than ``lease`` is flagged ``claim_expired``."""
        return await self._reading(lambda s: raw.pending(s, limit, lease))

    async def claim_raw(
        self, raw_ids: Sequence[int], owner: str, *, lease: timedelta, dead: Sequence[str] = ()
    ) -> list[RawRecord]:
        """Claim pending messages for one owner, exclusively (see ``raw.claim``); the ones it
        now holds, with their bytes. A claim older than ``lease`` is taken over."""
        return await self._transaction(lambda s: raw.claim(s, raw_ids, owner, lease, dead, self.keyring))

    async def claimers(self, raw_ids: Sequence[int]) -> set[str]:
        """The owners holding claims on these pending messages."""
        return await self._reading(lambda s: raw.claimers(s, raw_ids))

    async def renew_claims(self, owner: str) -> int:
        """Keep ``owner``'s claims on pending messages from running out; how many it holds."""
        return await self._transaction(lambda s: raw.renew(s, owner))

    async def load_raw(self, raw_id: int) -> RawRecord:
        record = await self._reading(lambda s: raw.load(s, raw_id, self.keyring))
        if record is None:
            raise LookupError(f"no raw message with id {raw_id}")
        return record

    async def load_raw_many(self, raw_ids: Sequence[int]) -> list[RawRecord]:
        """The messages of these ids that exist, with their bytes, in the order asked."""
        return await self._reading(lambda s: raw.load_many(s, raw_ids, self.keyring))

    async def mark_error(self, raw_id: int, reason: str, *, owner: str | None = None) -> bool:
        """Outcome "error" with the reason; the bytes stay for a later retry or a look. With
        ``owner``: only while its claim holds; False when it was lost (``raw.lost``)."""

        async def work(session: AsyncSession) -> bool:
            if await raw.mark_error(session, raw_id, reason, utcnow(), owner):
                return True
            if owner is None or await raw.load(session, raw_id) is None:
                raise LookupError(f"no raw message with id {raw_id}")
            return False

        return await self._transaction(work)

    async def list_messages(self, *, outcome: str | None = None, limit: int = 50) -> list[RawRow]:
        """Kept messages, newest first, optionally of one outcome."""
        return await self._reading(lambda s: raw.list_rows(s, outcome, limit))

    async def messages_by_reason(
        self, prefix: str, *, outcome: str, skip_action: str, limit: int = 50
    ) -> list[RawRecord]:
        """Messages of ``outcome`` whose reason starts with ``prefix``, with their bytes, newest
        first, leaving out those an audit row of ``skip_action`` names."""

        async def work(session: AsyncSession) -> list[RawRecord]:
            return await raw.load_many(
                session, await raw.by_reason(session, prefix, outcome, skip_action, limit), self.keyring
            )

        return await self._reading(work)

    async def add_audit(self, *, who: str, action: str, raw_message_id: int | None = None, subject: str | None = None,
                        detail: str | None = None) -> None:
        """One audit row on its own (an operator's acknowledgement that changes nothing else)."""
        row = {"actor": who, "action": action, "raw_message_id": raw_message_id, "subject": subject, "detail": detail}
        await self._transaction(lambda s: audit(s, [row], utcnow()))

    async def outcome_counts(self, since: datetime) -> dict[str, int]:
        """Messages received since ``since``, by outcome."""
        return await self._reading(lambda s: raw.outcome_counts(s, since))

    async def get_message(self, ref: str) -> RawRecord | None:
        """By id or by a sha256 prefix of 4+ hex digits (ValueError when ambiguous)."""
        return await self._reading(lambda s: raw.find(s, ref, self.keyring))

    # -- applying --------------------------------------------------------------------------------

    async def apply_many(
        self, items: Sequence[tuple[int, ParseResult]], *, parser_version: str, admit: Admit | None = None,
        owner: str | None = None, claimed: Collection[int] = (), entries: bool = True,
    ) -> list[Applied | None]:
        """Record each verdict and apply the buyers of each opt-out, in one transaction (see
        ``applying`` for the identity rules); applying the same message again changes nothing.

        ``admit``, when given, is asked first, in the same transaction, what to do with each
        item; what it returns is recorded, and items it holds are quarantined (``Applied.held``).
        Items in ``claimed`` are applied only while ``owner`` still holds their claim; the
        others come back as None and nothing of them is written (``raw.lost``). The index
        entries of the results are read once the transaction has committed (``applying.Written``);
        ``entries`` False: not read (the caller's index follows the change rows).
        """

        async def work(session: AsyncSession) -> tuple[set[int], applying.Written]:
            now = utcnow()
            lost = await raw.lost(session, [i for i, _ in items if i in claimed], owner) if owner else set()
            held: dict[int, str] = {}
            if admit is not None:
                decided = [a for a in await admit(AdmissionView(session, now)) if a.raw_id not in lost]
                await admission.record(session, decided, now)
                held = {a.raw_id: a.held for a in decided if a.held}
            kept = [item for item in items if item[0] not in lost]
            return lost, await applying.apply_batch(session, kept, parser_version, now, held)

        lost, written = await self._transaction_now(work)
        try:  # after the commit: see ``applying.Written``
            results = await (self._reading(written.applied) if entries else written.applied(None))
        except StoreUnavailable:  # committed all the same: the index follower reads its change rows
            results = await written.applied(None)
        applied = iter(results)
        return [None if raw_id in lost else next(applied) for raw_id, _ in items]

    # -- the index -------------------------------------------------------------------------------

    async def iter_index(self) -> AsyncGenerator[IndexEntry, None]:
        """Every blocked key: order keys, then email keys, streamed from the server.

        Consume it to the end or close it (``contextlib.aclosing``): it holds a connection.
        """
        queries: tuple[tuple[Literal["email", "order"], Any], ...] = (
            ("order", blocklist.order_index()),
            ("email", blocklist.email_index()),
        )
        async with unavailable(), self.engine.connect() as conn:
            for kind, statement in queries:
                result = await conn.stream(statement.execution_options(yield_per=STREAM_ROWS))
                async for row in result:
                    yield blocklist.index_entry(kind, row)

    async def change_cursor(self) -> ChangeCursor:
        """Where a follower starts: take it before ``iter_index``, then ``changes_since``."""
        return await self._reading(changes.start_cursor)

    @property
    def notifies(self) -> bool:
        """Whether other processes' changes can be listened for (PostgreSQL), not only polled."""
        return self.engine.dialect.name == "postgresql"

    async def listen_changes(self, notified: Callable[[], None]) -> Listening | None:
        """A LISTEN connection calling ``notified`` whenever another process commits changes
        (PostgreSQL); None on SQLite. StoreUnavailable when the server cannot be reached."""
        return await listen(self.engine, changes.CHANNEL, notified)

    async def changes_since(self, cursor: ChangeCursor) -> list[IndexEntry]:
        """Current entries of the opt-outs changed past the cursor; advances the cursor.
        ``cursor.more`` set: there is more to read at once."""

        async def work(session: AsyncSession) -> list[IndexEntry]:
            changed = await changes.read(session, cursor, CHANGES_PER_READ)
            return await blocklist.entries_for(session, changed)

        before = (cursor.seq, dict(cursor.gaps))
        try:
            # Each statement sees what was committed when it ran: the entries read after the
            # change rows are as new as those or newer, and the index takes the latest anyway.
            return await self._reading(work, self._follow)
        except BaseException:
            cursor.seq, cursor.gaps = before  # an entry lost to a failed read would stay lost
            raise

    async def learn_address(self, order_id: str, email: str, *, client: str = "query") -> tuple[str, list[IndexEntry]]:
        """``CHECK <addr> <order>`` found the order blocked: record the address on it if it
        has none, with an audit row naming ``client``. ("learned", entries), ("conflict", [])
        when it has another address (held for review in the audit trail, not merged), or
        ("none", []) when it has this one or the order is not actively blocked."""
        return await self._transaction(lambda s: blocklist.learn_address(s, order_id, email, utcnow(), client))

    # -- the privacy key ------------------------------------------------------------------------

    async def key_check(self) -> str | None:
        """The check value of the privacy key the database was written with, None if none yet."""
        async with unavailable(), self.engine.connect() as conn:
            return await keycheck.stored(conn)

    async def record_key_check(self, value: str) -> str | None:
        """Record ``value`` unless a check value is there already; the one that stays. None
        when the schema has no place for it yet (before ``db upgrade``)."""
        async with unavailable(), self.engine.connect() as conn:
            if not await keycheck.has_table(conn):
                return None
        try:
            await self._transaction(lambda s: keycheck.record(s, value, utcnow()))
        except IntegrityError:
            pass  # another process's first start recorded one first: that one stands
        return await self.key_check()

    # -- the blocklist, for operators --------------------------------------------------------------

    async def list_opt_outs(self, *, active: bool | None = True, limit: int = 100, offset: int = 0) -> list[OptOutRow]:
        statement = blocklist.rows(active).limit(limit).offset(offset)

        async def work(session: AsyncSession) -> list[OptOutRow]:
            return [blocklist.opt_out_row(m) for m in (await session.execute(statement)).mappings()]

        return await self._reading(work)

    async def find_opt_outs(self, key: str) -> list[OptOutRow]:
        """By relay address (case-insensitive) or order id, removed ones included."""
        return await self._reading(lambda s: blocklist.find(s, key))

    async def remove(self, key: str, *, reason: str, who: str) -> list[IndexEntry]:
        """Lift the block on every active opt-out the address or order id names. The rows stay
        with who, when and why; new evidence later makes them active again."""
        if not reason or not reason.strip():
            raise ValueError("a removal needs a reason")
        return await self._transaction(lambda s: blocklist.remove(s, key, reason.strip(), who, utcnow()))

    async def export_rows(self) -> AsyncIterator[OptOutRow]:
        """Every opt-out, removed ones included, oldest first, streamed."""
        statement = blocklist.rows().execution_options(yield_per=STREAM_ROWS)
        async with unavailable(), self.engine.connect() as conn:
            async for mapping in (await conn.stream(statement)).mappings():
                yield blocklist.opt_out_row(mapping)

    async def evidence_details(self, opt_out_id: int) -> list[EvidenceDetail]:
        """Which seller reported an opt-out in which message, when, with what DKIM verdict."""
        return await self._reading(lambda s: review.evidence_details(s, opt_out_id))

    async def record_refused(self, source: str, subject: str, reason: str) -> None:
        """Mail intake did not take (too large, or never given by its source): an audit row
        with the reason, since there are no bytes to keep."""
        row = {"actor": f"intake:{source}"[:200], "action": "refused", "subject": subject[:400], "detail": reason}
        await self._transaction(lambda s: audit(s, [row], utcnow()))

    async def audit_log(
        self, *, opt_out_ids: Sequence[int] = (), limit: int = 100, offset: int = 0,
        actor: str | None = None, action: str | None = None,
    ) -> list[AuditEntry]:
        return await self._reading(lambda s: audit_rows(s, opt_out_ids=opt_out_ids, limit=limit, offset=offset,
                                                        actor=actor, action=action))

    async def import_buyers(
        self, data: bytes, name: str, buyers: list[Buyer], skipped: list[str], *, who: str
    ) -> Imported:
        """Apply buyers read from a file, keeping the file as their evidence."""
        return await self.import_batches(data, name, [(buyers, skipped)], who=who)

    async def import_batches(
        self, data: bytes, name: str, batches: Iterable[tuple[Sequence[Buyer], Sequence[str]]], *, who: str,
        progress: Callable[[int, Imported], None] | None = None, digested: bool = False,
    ) -> Imported:
        """Apply a file's buyers batch by batch, one transaction each, keeping the file as their
        evidence (saved with the first batch) and auditing the whole import at the end.
        ``batches`` is read lazily, one batch ahead (``_read_ahead``), so memory holds two
        batches at most; each transaction is short, so
        intake on the same database never waits long behind an import. A failure part way
        leaves the batches before it applied; running the import again is harmless (the same
        file is the same message and a buyer counts once per message). ``progress`` gets the
        rows done in each batch and the totals so far. ``digested``: the batches' keys are in
        stored form already (``processing.csvfile.DigestingReader``)."""
        saved: SavedRaw | None = None
        received: datetime | None = None
        total = Imported(0, 0, 0, ())
        reasons: list[str] = []
        async with aclosing(_read_ahead(batches, None if digested else self.keyring)) as ahead:
            async for buyers, skipped in ahead:
                saved, received, applied = await self._import_batch(saved, received, data, name, buyers, who)
                reasons += skipped
                total = Imported(total.rows + len(buyers), total.new + applied.buyers_new,
                                 total.updated + applied.buyers_updated, ())
                if progress is not None:
                    progress(len(buyers) + len(skipped), total)
        if saved is None:  # an empty file is still kept and audited
            saved = (await self._transaction(partial(self._first_import_batch, data, name, (), who, self.keyring)))[0]
        done = partial(review.import_done, raw_id=saved.id, sha256=saved.sha256, name=name, rows=total.rows,
                       skipped=len(reasons), who=who, now=utcnow())

        async def finish(session: AsyncSession) -> None:
            await done(session)
            await import_page_cache(session, False)

        await self._transaction(finish)
        return Imported(total.rows, total.new, total.updated, tuple(reasons))

    async def _import_batch(
        self, saved: SavedRaw | None, received: datetime | None, data: bytes, name: str, buyers: Sequence[Buyer],
        who: str,
    ) -> tuple[SavedRaw, datetime, Applied]:
        """One batch in its own transaction, with a page cache sized for imports; the first one
        saves the file too and reads when it was received, which the later ones are given."""
        async def batch(session: AsyncSession) -> tuple[SavedRaw, datetime, Applied]:
            await import_page_cache(session, True)
            if saved is None or received is None:
                return await self._first_import_batch(data, name, buyers, who, self.keyring, session)
            return saved, received, await review.import_batch(session, saved.id, buyers, who, utcnow(), received)

        return await self._transaction(batch)

    @staticmethod
    async def _first_import_batch(
        data: bytes, name: str, buyers: Sequence[Buyer], who: str, ring: KeyRing | None, session: AsyncSession
    ) -> tuple[SavedRaw, datetime, Applied]:
        now = utcnow()
        saved = await review.save_import(session, data, name, who, now, ring)
        applied = await review.import_batch(session, saved.id, buyers, who, now)
        return saved, await review.received_at(session, saved.id), applied

    # -- privacy: sealing again and retention (docs/privacy.md) ---------------------------------

    async def reseal_batch(self, after: int, limit: int, *, plain_only: bool = False) -> sealing.Resealed | None:
        """Seal up to ``limit`` rows after id ``after`` again under the current data key, in
        one short transaction; None when none is left (``sealing.reseal_batch``)."""
        ring = self.keyring
        if ring is None:
            raise ValueError("no privacy key file loaded: nothing to seal with")
        return await self._transaction(lambda s: sealing.reseal_batch(s, ring, after, limit, plain_only=plain_only))

    async def count_to_reseal(self, *, plain_only: bool = False) -> int:
        current = self.keyring.current if self.keyring else ""
        return await self._reading(lambda s: sealing.count_to_reseal(s, current, plain_only=plain_only))

    async def key_ids_in_use(self) -> dict[str | None, int]:
        """Kept raw messages per data key id (None: plain)."""
        return await self._reading(sealing.key_ids_in_use)

    async def drop_old_pages(self) -> None:
        """SQLite: checkpoint and truncate the WAL, whose old page images may still hold bytes
        sealed or purged since. PostgreSQL keeps dead row versions until VACUUM reuses them
        (docs/privacy.md); nothing to do here."""
        if self.engine.dialect.name == "sqlite":
            async with unavailable(), self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def purge_due(self, rule: retention.Retention) -> dict[str, int]:
        """What a purge under ``rule`` would delete, per outcome."""
        return await self._reading(lambda s: retention.due_counts(s, rule))

    async def purge_batch(self, rule: retention.Retention, limit: int) -> int:
        """Delete the bytes of at most ``limit`` due messages in one short transaction."""
        return await self._transaction(lambda s: retention.purge_batch(s, rule, limit))

    # -- sellers and forwarders ------------------------------------------------------------------

    async def add_seller(self, name: str, forwarders: Sequence[str] = (), *, who: str) -> SellerRow:
        """A seller with a fresh token and its forwarders (ValueError if it exists)."""
        return await self._transaction(lambda s: sellers.add_seller(s, name, forwarders, who, utcnow()))

    async def rotate_seller_token(self, name: str, *, who: str) -> SellerRow:
        """Give the seller a new per-seller address (LookupError: no such live seller)."""
        return await self._transaction(lambda s: sellers.rotate_token(s, name, who, utcnow()))

    async def remove_seller(self, name: str, *, who: str) -> None:
        await self._transaction(lambda s: sellers.remove_seller(s, name, who, utcnow()))

    async def list_sellers(self) -> list[SellerRow]:
        return await self._reading(lambda s: sellers.sellers(s))

    async def get_seller(self, name: str) -> SellerRow | None:
        found = await self._reading(lambda s: sellers.sellers(s, name))
        return found[0] if found else None

    async def add_forwarder(self, seller: str, address: str, *, who: str) -> None:
        await self._transaction(lambda s: sellers.add_forwarder(s, seller, address, who, utcnow()))

    async def remove_forwarder(self, address: str, *, who: str) -> None:
        await self._transaction(lambda s: sellers.remove_forwarder(s, address, who, utcnow()))

    async def seller_figures(self, seller_id: int) -> list[MonthFigures]:
        return await self._reading(lambda s: review.figures(s, seller_id))

    # -- quarantine --------------------------------------------------------------------------------

    async def list_held(
        self, outcomes: Sequence[str] = review.UNAPPLIED, limit: int = 50, *, offset: int = 0
    ) -> list[HeldRow]:
        return await self._reading(lambda s: review.held_rows(s, outcomes, limit, offset=offset))

    async def get_held(self, raw_id: int) -> HeldRow | None:
        rows = await self._reading(lambda s: review.held_rows(s, (), 1, raw_id))
        return rows[0] if rows else None

    async def trust_of(self, raw_id: int) -> dict[str, Any] | None:
        """What the admission step recorded about a message (None: never assessed)."""

        async def work(session: AsyncSession) -> dict[str, Any] | None:
            columns = list(MessageTrust.__table__.columns)
            found = await session.execute(select(*columns).where(MessageTrust.raw_message_id == raw_id))
            row = found.mappings().one_or_none()
            return None if row is None else dict(row)

        return await self._reading(work)

    async def reprocess_ids(self, parser_version: str, *, every: bool = False, after: int = 0, limit: int = 1000) -> list[int]:
        return await self._reading(lambda s: review.reprocess_ids(s, parser_version, every, after, limit))

    async def approve(
        self, raw_id: int, result: ParseResult, *, parser_version: str, who: str, note: str = ""
    ) -> Applied:
        """Apply a held notice (LookupError: no such message; ValueError: not held, or it no
        longer parses as an opt-out). ``note`` joins the audit row."""
        return await self._transaction(lambda s: review.approve(s, raw_id, result, parser_version, who, utcnow(), note))

    async def discard(self, raw_id: int, *, who: str, reason: str) -> None:
        await self._transaction(lambda s: review.discard(s, raw_id, who, reason, utcnow()))

    # -- IMAP positions ----------------------------------------------------------------------------

    async def imap_position(self, account: str, mailbox: str) -> Position | None:
        return await self._reading(lambda s: imap.load(s, account, mailbox))

    async def save_imap_position(
        self, account: str, mailbox: str, position: Position, *, lease: Lease | None = None
    ) -> None:
        """Commit how far a poller got (StoreUnavailable if it cannot be committed); with
        ``lease``, only while the poller still holds the mailbox (LeaseLost otherwise)."""
        await self._transaction(lambda s: imap.save(s, account, mailbox, position, utcnow(), lease))

    async def pending_raw_ids_from(self, source: str, *, after: int = 0, limit: int = 1000) -> list[int]:
        """Messages of one intake source stored but not processed, oldest first, ids above ``after``."""
        return await self._reading(lambda s: imap.pending_from(s, source, after, limit))

    # -- IMAP leases: one poller per mailbox across daemons ------------------------------------------

    @property
    def shared(self) -> bool:
        """Whether several daemons may use this database (PostgreSQL; SQLite is one daemon's)."""
        return self.engine.dialect.name == "postgresql"

    async def acquire_imap_lease(self, account: str, mailbox: str, holder: str, seconds: float) -> Lease:
        """Take the mailbox for ``seconds`` if free, released, run out or ours; else the lease
        as another holder has it."""
        return await self._transaction(lambda s: leases.acquire(s, account, mailbox, holder, seconds))

    async def renew_imap_lease(self, lease: Lease, seconds: float, last_success: datetime | None) -> Lease | None:
        """Extend a lease still ours; None when another daemon took the mailbox."""
        return await self._transaction(lambda s: leases.renew(s, lease, seconds, last_success))

    async def release_imap_lease(self, lease: Lease) -> bool:
        return await self._transaction(lambda s: leases.release(s, lease))

    async def imap_lease(self, account: str, mailbox: str) -> Lease | None:
        return await self._reading(lambda s: leases.read(s, account, mailbox))

    # -- web users and API tokens (hashed by the caller) --------------------------------------------

    async def set_user(self, name: str, role: str, password_hash: str, *, who: str) -> bool:
        """Add a web user or replace its password and role; True when new."""
        return await self._transaction(lambda s: accounts.set_user(s, name, role, password_hash, who, utcnow()))

    async def get_user(self, name: str) -> WebUserRow | None:
        return await self._reading(lambda s: accounts.user(s, name))

    async def list_users(self) -> list[WebUserRow]:
        return await self._reading(accounts.users)

    async def disable_user(self, name: str, *, who: str) -> None:
        await self._transaction(lambda s: accounts.disable_user(s, name, who, utcnow()))

    async def add_token(self, name: str, token_sha256: str, *, who: str) -> None:
        await self._transaction(lambda s: accounts.add_token(s, name, token_sha256, who, utcnow()))

    async def token_name(self, token_sha256: str) -> str | None:
        """The live API token with this hash, by name; None when there is none."""
        return await self._reading(lambda s: accounts.token_name(s, token_sha256))

    async def list_tokens(self) -> list[ApiTokenRow]:
        return await self._reading(accounts.tokens)

    async def revoke_token(self, name: str, *, who: str) -> None:
        await self._transaction(lambda s: accounts.revoke_token(s, name, who, utcnow()))


async def _read_ahead(
    batches: Iterable[tuple[Sequence[Buyer], Sequence[str]]], keyring: KeyRing | None
) -> AsyncGenerator[tuple[Sequence[Buyer], Sequence[str]], None]:
    """``batches`` read, and their keys put in stored form (``pseudonyms.stored_buyers``), in a
    thread one batch ahead of the batch being written: parsing a list and digesting its keys
    overlaps the database's work instead of waiting for it. One read at a time, in order."""
    source = iter(batches)

    def next_batch() -> tuple[Sequence[Buyer], Sequence[str]] | None:
        for buyers, skipped in source:
            return (pseudonyms.stored_buyers(keyring, buyers) if keyring is not None else buyers), skipped
        return None

    loop = asyncio.get_running_loop()
    coming = loop.run_in_executor(None, next_batch)
    try:
        while (batch := await coming) is not None:
            coming = loop.run_in_executor(None, next_batch)
            yield batch
    finally:
        await asyncio.gather(coming, return_exceptions=True)  # never two threads in ``source``
