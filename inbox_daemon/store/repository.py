"""``Store``: the one object the daemon and the CLI use to reach the database.

Every public method is one transaction, committed before it returns, and raises
``StoreUnavailable`` when the database cannot be reached or cannot commit. The schema comes
from the migrations (``inbox_daemon.store.migrate``); opening a store never creates it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from inbox_daemon.notices.result import ParseResult
from inbox_daemon.trust import Assessment, Policy

from . import applying, blocklist, changes, raw, trust
from .engine import WRITE, make_engine, retrying, unavailable
from .records import (
    Applied,
    ChangeCursor,
    EvidenceRow,
    IndexEntry,
    OptOutRow,
    RawIn,
    RawRecord,
    RawRow,
    SavedRaw,
)
from .trust_repository import TrustRepository

__all__ = ["Store"]

T = TypeVar("T")
STREAM_ROWS = 10_000  # rows per fetch when streaming the index or an export
CHANGES_PER_READ = 10_000


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store(TrustRepository):
    """The blocklist database. Open with ``await Store.open(url)``; close with ``close()`` or
    use it as ``async with``. Sellers, quarantine and audit methods: ``TrustRepository``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._read = async_sessionmaker(engine, expire_on_commit=False)
        self._write = async_sessionmaker(
            engine, expire_on_commit=False, execution_options={WRITE: True}
        )

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 5, **engine_options: Any) -> Self:
        """Make the engine; connects lazily (call ``ping`` to know the database answers).

        ``sqlite:///`` and ``postgresql://`` URLs are mapped to aiosqlite and asyncpg.
        """
        return cls(make_engine(url, pool_size=pool_size, **engine_options))

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _transaction(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in one write transaction, committed; retried on PostgreSQL conflicts."""

        async def attempt() -> T:
            async with self._write() as session, session.begin():
                return await work(session)

        return await retrying(attempt)

    async def _reading(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with unavailable(), self._read() as session, session.begin():
            return await work(session)

    async def ping(self) -> None:
        async with unavailable(), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- intake ------------------------------------------------------------------------------

    async def save_raw(
        self,
        data: bytes,
        *,
        source: str,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
        peer: str | None = None,
        message_id: str | None = None,
        received_at: datetime | None = None,
    ) -> SavedRaw:
        """Store the bytes durably (committed on return). The same bytes again: ``is_new``
        False and ``times_received`` one higher; the first delivery's metadata is kept."""
        item = RawIn(data, source, envelope_from, envelope_to, peer, message_id, received_at)
        return (await self.save_raw_many([item]))[0]

    async def save_raw_many(self, items: Sequence[RawIn]) -> list[SavedRaw]:
        """``save_raw`` for many messages in one transaction (one fsync for the batch)."""

        return await self._transaction(lambda s: raw.save_many(s, items, utcnow()))

    async def pending_raw_ids(self, limit: int = 1000) -> list[int]:
        """Messages stored but not processed, oldest first (crash recovery at start)."""
        return await self._reading(lambda s: raw.pending_ids(s, limit))

    async def load_raw(self, raw_id: int) -> RawRecord:
        record = await self._reading(lambda s: raw.load(s, raw_id))
        if record is None:
            raise LookupError(f"no raw message with id {raw_id}")
        return record

    async def mark_error(self, raw_id: int, reason: str) -> None:
        """Outcome "error" with the reason; the bytes stay for a later retry or a look."""

        async def work(session: AsyncSession) -> None:
            if not await raw.mark_error(session, raw_id, reason, utcnow()):
                raise LookupError(f"no raw message with id {raw_id}")

        await self._transaction(work)

    # -- processing --------------------------------------------------------------------------

    async def apply_result(
        self, raw_id: int, result: ParseResult, *, parser_version: str
    ) -> Applied:
        """Record the verdict and its buyers in one transaction; see ``blocklist`` for the
        identity rules. Applying the same raw message again changes nothing."""
        return (await self.apply_many([(raw_id, result)], parser_version=parser_version))[0]

    async def apply_many(
        self,
        items: Sequence[tuple[int, ParseResult]],
        *,
        parser_version: str,
        assessed: Sequence[Assessment] | None = None,
        policy: Policy | None = None,
    ) -> list[Applied]:
        """``apply_result`` for a batch, in one transaction. With ``assessed`` (one per item)
        the admission step decides first: held notices are quarantined (``Applied.held``)."""

        async def work(session: AsyncSession) -> list[Applied]:
            now = utcnow()
            held: dict[int, str] = {}
            if assessed is not None:
                decided = await trust.admit_batch(session, items, assessed, policy or Policy(), now)
                held = {raw_id: d.hold for raw_id, d in decided.items() if d.hold}
            return await applying.apply_batch(session, items, parser_version, now, held)

        return await self._transaction(work)

    # -- the index -----------------------------------------------------------------------------

    async def iter_index(self) -> AsyncIterator[IndexEntry]:
        """Every blocked key: order keys, then email keys, streamed from the server.

        Consume it to the end or close it (``contextlib.aclosing``): it holds a connection.
        """
        queries: tuple[tuple[Literal["email", "order"], Any], ...] = (
            ("order", blocklist.order_index()),
            ("email", blocklist.email_index()),
        )
        async with unavailable(), self.engine.connect() as conn:
            for kind, statement in queries:
                options = {"yield_per": STREAM_ROWS}
                result = await conn.stream(statement.execution_options(**options))
                async for row in result:
                    yield blocklist.index_entry(kind, row)

    async def last_change_seq(self) -> int:
        return await self._reading(changes.last_seq)

    async def change_cursor(self) -> ChangeCursor:
        """Where a follower starts: take it before ``iter_index``, then ``changes_since``."""
        return await self._reading(changes.start_cursor)

    async def changes_since(self, cursor: ChangeCursor) -> list[IndexEntry]:
        """Current entries of the opt-outs changed past the cursor; advances the cursor.
        ``cursor.more`` set: there is more to read at once."""

        async def work(session: AsyncSession) -> list[IndexEntry]:
            changed = await changes.read(session, cursor, CHANGES_PER_READ)
            return await blocklist.entries_for(session, changed)

        before = (cursor.seq, dict(cursor.gaps))
        try:
            return await self._reading(work)
        except BaseException:
            cursor.seq, cursor.gaps = before  # an entry lost to a failed read would stay lost
            raise

    async def learn_address(self, order_id: str, email: str) -> list[IndexEntry]:
        """``CHECK <addr> <order>`` found the order blocked: record the address on it if it
        has none. No-op (``[]``) when it has one or the order is not actively blocked."""
        return await self._transaction(
            lambda s: blocklist.learn_address(s, order_id, email, utcnow())
        )

    # -- operator API --------------------------------------------------------------------------

    async def list_opt_outs(
        self, *, active: bool | None = True, limit: int = 100, offset: int = 0
    ) -> list[OptOutRow]:
        statement = blocklist.rows(active).limit(limit).offset(offset)

        async def work(session: AsyncSession) -> list[OptOutRow]:
            return [blocklist.opt_out_row(m) for m in (await session.execute(statement)).mappings()]

        return await self._reading(work)

    async def find_opt_outs(self, key: str) -> list[OptOutRow]:
        """By relay address (case-insensitive) or order id, removed ones included."""
        return await self._reading(lambda s: blocklist.find(s, key))

    async def evidence_for(self, opt_out_id: int) -> list[EvidenceRow]:
        return await self._reading(lambda s: blocklist.evidence_for(s, opt_out_id))

    async def remove(self, key: str, *, reason: str, who: str) -> list[IndexEntry]:
        """Lift the block on every active opt-out the address or order id names. The rows stay
        with who, when and why; new evidence later makes them active again."""
        if not reason or not reason.strip():
            raise ValueError("a removal needs a reason")
        return await self._transaction(
            lambda s: blocklist.remove(s, key, reason.strip(), who, utcnow())
        )

    async def export_rows(self) -> AsyncIterator[OptOutRow]:
        """Every opt-out, removed ones included, oldest first, streamed."""
        statement = blocklist.rows().execution_options(yield_per=STREAM_ROWS)
        async with unavailable(), self.engine.connect() as conn:
            async for mapping in (await conn.stream(statement)).mappings():
                yield blocklist.opt_out_row(mapping)

    async def list_messages(self, *, outcome: str | None = None, limit: int = 50) -> list[RawRow]:
        """Kept messages, newest first, optionally of one outcome."""
        return await self._reading(lambda s: raw.list_rows(s, outcome, limit))

    async def get_message(self, ref: str) -> RawRecord | None:
        """By id or by a sha256 prefix of 4+ hex digits (ValueError when ambiguous)."""
        return await self._reading(lambda s: raw.find(s, ref))

    async def counts(self) -> dict[str, int]:
        """Messages by outcome (and ``messages`` in all), active and removed opt-outs."""

        async def work(session: AsyncSession) -> dict[str, int]:
            return {**await raw.outcome_counts(session), **await blocklist.active_counts(session)}

        return await self._reading(work)

