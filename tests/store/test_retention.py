"""Retention with the clock moved instead of waited for: past ``retain_days`` a decided
message loses its bytes and says when; one held for review keeps them until
``retain_days_held``; one not processed yet keeps them; and the blocklist answers exactly as
before (entries, counts, first-seen dates, evidence links, the change feed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from inbox_daemon.config import PrivacyConfig
from inbox_daemon.notices.result import Kind, ParseResult
from inbox_daemon.processing.privacy import purge, retention_rule
from inbox_daemon.store import Store
from inbox_daemon.store.schema import RawMessage

from .store_builders import E1, E2, O1, O2, T0, apply_result, buyer, ingest, last_change_seq, notice, save_raw
from .test_sealing import stored

POLICY = PrivacyConfig(retain_days=30, retain_days_held=90)


async def snapshot(store: Store) -> tuple[Any, ...]:
    """Everything a lookup, an export or ``blocklist show`` answers from."""
    index = sorted([(e.kind, e.value, e.first_seen, e.count) async for e in store.iter_index()])
    rows = await store.list_opt_outs(active=None)
    evidence = [await store.evidence_details(r.id) for r in rows]
    return index, rows, evidence, await last_change_seq(store)


def test_purge_deletes_bytes_past_retain_days_and_every_answer_stays(with_store: Any) -> None:
    async def body(store: Store) -> None:
        blocked = await ingest(store, b"notice one: buyer Ada Quist", notice(buyer(E1, O1)))
        assert blocked.buyers_new == 1
        await ingest(store, b"notice two", notice(buyer(E2, O2), buyer(E1)), minutes=5)
        other = await save_raw(store, b"a shipping note", source="smtp", received_at=T0)
        await apply_result(store, other.id, ParseResult(Kind.NOT_OPT_OUT, reason="shipping"), parser_version="p")
        held = await save_raw(store, b"held for review", source="smtp", received_at=T0)
        async with store.engine.begin() as conn:
            await conn.execute(update(RawMessage).where(RawMessage.id == held.id).values(outcome="quarantined"))
        failed = await save_raw(store, b"parser crashed", source="smtp", received_at=T0)
        await store.mark_error(failed.id, "ValueError: boom")
        waiting = await save_raw(store, b"not processed yet", source="smtp", received_at=T0)
        before = await snapshot(store)

        early = retention_rule(POLICY, T0 + timedelta(days=29))
        assert await store.purge_due(early) == {} and await purge(store, early) == 0
        month = retention_rule(POLICY, T0 + timedelta(days=31))
        assert await store.purge_due(month) == {"opt_out": 2, "not_opt_out": 1}
        assert await purge(store, month, batch=2) == 3  # two batches
        assert await snapshot(store) == before
        kept = await stored(store)
        assert sorted(i for i, (data, _) in kept.items() if data == b"") == [1, 2, other.id]
        assert all(key_id is None for data, key_id in kept.values() if data == b"")
        record = await store.load_raw(1)
        assert (record.data, record.unreadable, record.purged_at) == (b"", "purged by retention", month.now)
        assert record.outcome == "opt_out" and record.sha256  # the row itself stays
        assert (await store.load_raw(held.id)).data == b"held for review"
        assert await store.reprocess_ids("p", every=True) == [held.id, failed.id]  # purged ones have nothing to read

        late = retention_rule(POLICY, T0 + timedelta(days=91))
        assert await purge(store, late) == 2  # held and error: retain_days_held
        assert await purge(store, late) == 0
        assert (await store.load_raw(waiting.id)).data == b"not processed yet"  # never before it is processed
        assert await snapshot(store) == before

    with_store(body)
