"""Raw messages: the durable write behind SMTP's 250, and the reads over kept mail."""

from __future__ import annotations

import hashlib
from datetime import UTC
from typing import Any

import pytest
from tests.conftest import stored

from .store_builders import O1, T0, apply_result, buyer, notice, save_raw

from inbox_daemon.notices.result import Kind, ParseResult
from inbox_daemon.store import Delivery, Store, migrate


def test_same_bytes_are_stored_once_and_counted(with_store: Any) -> None:
    async def body(store: Store) -> None:
        first = await save_raw(
            store, b"one", source="smtp", envelope_from="a@b", envelope_to=["x@y", "z@y"],
            peer="10.0.0.1", message_id="m1@b",
        )
        again = await save_raw(store, b"one", source="imap:acct")
        assert first.is_new and not again.is_new
        assert again.id == first.id and again.sha256 == hashlib.sha256(b"one").hexdigest()
        record = await store.load_raw(first.id)
        assert record.data == b"one" and record.size == 3
        assert record.times_received == 2
        assert record.source == "smtp"  # the first delivery's metadata stays
        assert record.envelope_to == ("x@y", "z@y") and record.peer == "10.0.0.1"
        assert record.outcome == "pending" and record.received_at.tzinfo is UTC

    with_store(body)


def test_save_many_is_one_batch_and_handles_repeats_within_it(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await store.save_raw_many(
            [Delivery(b"a", "smtp"), Delivery(b"b", "smtp"), Delivery(b"a", "smtp")]
        )
        assert [s.is_new for s in saved] == [True, True, False]
        assert saved[0].id == saved[2].id
        assert (await store.load_raw(saved[0].id)).times_received == 2
        assert [(p.id, p.size, p.claimed_by) for p in await store.pending_raw()] == [(saved[0].id, 1, None), (saved[1].id, 1, None)]
        assert [p.id for p in await store.pending_raw(limit=1)] == [saved[0].id]

    with_store(body)


def test_verdicts_and_errors_are_kept(with_store: Any) -> None:
    async def body(store: Store) -> None:
        a = await save_raw(store, b"not a notice", source="smtp")
        b = await save_raw(store, b"broken", source="smtp")
        c = await save_raw(store, b"crashes the parser", source="smtp")
        verdict = ParseResult(Kind.NOT_OPT_OUT, reason="a shipping notice", forwarder="s@x")
        applied = await apply_result(store, a.id, verdict, parser_version="p1")
        assert (applied.buyers_new, applied.entries) == (0, [])
        await apply_result(store, b.id, ParseResult(Kind.MALFORMED, reason="no body"),
                                 parser_version="p1")
        await store.mark_error(c.id, "ValueError: boom")
        kept = {r.id: r for r in await store.list_messages()}
        assert (kept[a.id].outcome, kept[a.id].reason) == ("not_opt_out", "a shipping notice")
        assert kept[a.id].forwarder == "s@x" and kept[a.id].parser_version == "p1"
        assert kept[a.id].processed_at is not None
        assert kept[b.id].outcome == "malformed"
        assert (kept[c.id].outcome, kept[c.id].reason) == ("error", "ValueError: boom")
        assert (await store.load_raw(c.id)).data == b"crashes the parser"
        assert await store.pending_raw() == []
        assert [r.id for r in await store.list_messages(outcome="error")] == [c.id]
        with pytest.raises(ValueError):
            await store.list_messages(outcome="nonsense")
        with pytest.raises(LookupError):
            await store.mark_error(9999, "x")
        with pytest.raises(LookupError):
            await store.load_raw(9999)

    with_store(body)


def test_get_message_by_id_or_sha256_prefix(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await save_raw(store, b"hello", source="import", received_at=T0)
        assert (await store.get_message(str(saved.id))).data == b"hello"  # type: ignore[union-attr]
        by_prefix = await store.get_message(saved.sha256[:8].upper())
        assert by_prefix is not None and by_prefix.id == saved.id
        assert by_prefix.received_at == T0
        assert await store.get_message("abc") is None  # too short to be a prefix

    with_store(body)


def test_listings_by_outcome(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await save_raw(store, b"n", source="smtp")
        pending = await save_raw(store, b"p", source="smtp")
        await apply_result(store, saved.id, notice(buyer(order=O1)), parser_version="p")
        assert [r.id for r in await store.list_messages(outcome="pending")] == [pending.id]
        assert [r.id for r in await store.list_messages(outcome="opt_out")] == [saved.id]
        assert [r.order_id for r in await store.list_opt_outs()] == [stored(O1)]
        assert await store.list_opt_outs(active=False) == []

    with_store(body)


def test_sqlite_is_durable(sqlite_url: str, run: Any) -> None:
    """WAL and synchronous=FULL: a 250 must survive power loss."""
    migrate.upgrade(sqlite_url)

    async def body() -> list[Any]:
        async with await Store.open(sqlite_url) as store, store.engine.connect() as conn:
            return [
                (await conn.exec_driver_sql(f"PRAGMA {p}")).scalar()
                for p in ("journal_mode", "synchronous", "foreign_keys")
            ]

    assert run(body()) == ["wal", 2, 1]



def test_claims_are_exclusive_until_their_lease_ends_or_their_owner_is_gone(with_store: Any) -> None:
    from datetime import timedelta

    async def body(store: Store) -> None:
        a, b = await store.save_raw_many([Delivery(b"a", "smtp"), Delivery(b"b", "smtp")])
        lease = timedelta(minutes=10)
        assert [r.id for r in await store.claim_raw([a.id, b.id], "one", lease=lease)] == [a.id, b.id]
        assert await store.claim_raw([a.id, b.id], "two", lease=lease) == []  # held by "one"
        assert [r.id for r in await store.claim_raw([a.id], "two", lease=lease, dead=["one"])] == [a.id]
        assert [r.id for r in await store.claim_raw([b.id], "two", lease=timedelta(0))] == [b.id]  # expired
        assert {p.claimed_by for p in await store.pending_raw()} == {"two"}
        await apply_result(store, a.id, notice(buyer(order=O1)), parser_version="p")
        assert [r.id for r in await store.claim_raw([a.id, b.id], "three", lease=timedelta(0))] == [b.id]  # a is done
        resent = await save_raw(store, b"b", source="smtp")
        assert not resent.is_new and resent.pending

    with_store(body)
