"""Builders shared by the store tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from inbox_daemon.notices.result import Buyer, Kind, ParseResult
from inbox_daemon.store import Applied, Delivery, SavedRaw, Store
from inbox_daemon.store.schema import BlocklistChange
from tests.conftest import stored

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MARKET = "marketplace.amazon.com"
E1 = "jxxvbothd0wtflh@marketplace.amazon.com"
E2 = "q2w3e4r5t6y7u8i@marketplace.amazon.com"
O1 = "113-5663737-4342765"
O2 = "114-1111111-2222222"
O3 = "205-3333333-4444444"
# What the store keeps for them: pseudonyms (tests/conftest.py TEST_KEYRING)
SE1, SE2, SO1, SO2, SO3 = (stored(k) for k in (E1, E2, O1, O2, O3))


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def buyer(email: str | None = None, order: str | None = None) -> Buyer:
    return Buyer(email=email, order_id=order, marketplace=MARKET)


def notice(
    *buyers: Buyer, message_id: str | None = None, forwarder: str | None = None
) -> ParseResult:
    return ParseResult(
        kind=Kind.OPT_OUT,
        buyers=buyers,
        message_id=message_id,
        forwarder=forwarder,
        notices=1,
    )


async def ingest(
    store: Store, body: bytes, result: ParseResult, *, minutes: int = 0
) -> Applied:
    """Save ``body`` as received ``minutes`` after T0 and apply ``result`` to it."""
    saved = await save_raw(store, body, source="smtp", received_at=at(minutes))
    return await apply_result(store, saved.id, result, parser_version="test-1")


async def save_raw(
    store: Store, data: bytes, *, source: str, envelope_to: Sequence[str] = (), received_at: datetime | None = None,
    **metadata: str,
) -> SavedRaw:
    """One delivery stored on its own."""
    delivery = Delivery(data, source, envelope_to=tuple(envelope_to), received_at=received_at, **metadata)
    return (await store.save_raw_many([delivery]))[0]


async def apply_result(store: Store, raw_id: int, result: ParseResult, *, parser_version: str) -> Applied:
    """One verdict applied on its own, without an admission step."""
    return (await store.apply_many([(raw_id, result)], parser_version=parser_version))[0]


async def last_change_seq(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.coalesce(func.max(BlocklistChange.seq), 0)))).scalar_one())


def keys(entries: list) -> dict[tuple[str, str], int]:  # type: ignore[type-arg]
    return {(e.kind, e.value): e.count for e in entries}
