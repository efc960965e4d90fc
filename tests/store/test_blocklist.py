"""Applying parse results: identity rules, notice counting, removal and reactivation, learnt
addresses and the index view, on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from inbox_daemon.errors import StoreUnavailable
from inbox_daemon.keys import message_id_stored
from inbox_daemon.store import Delivery, IndexEntry, Store
from tests.conftest import TEST_KEYRING, stored

from .store_builders import E1, E2, O1, O2, O3, SE1, SE2, SO1, SO2, SO3, apply_result, at, buyer, ingest, keys, last_change_seq, notice, save_raw


def test_first_notice_inserts_and_applying_again_changes_nothing(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await save_raw(store, b"n1", source="smtp", received_at=at(0))
        result = notice(buyer(E1, O1), message_id="amz-1@amazon.com", forwarder="seller@x.com")
        first = await apply_result(store, saved.id, result, parser_version="p1")
        assert (first.buyers_new, first.buyers_updated) == (1, 0)
        assert sorted(first.entries, key=lambda e: e.kind) == [
            IndexEntry("email", SE1, at(0), 1),
            IndexEntry("order", SO1, at(0), 1),
        ]
        seq = await last_change_seq(store)
        record = await store.load_raw(saved.id)
        assert (record.outcome, record.forwarder, record.parser_version) == (
            "opt_out", "seller@x.com", "p1")

        again = await apply_result(store, saved.id, result, parser_version="p1")
        assert (again.buyers_new, again.buyers_updated) == (0, 0)
        assert sorted(again.entries, key=lambda e: e.kind) == sorted(
            first.entries, key=lambda e: e.kind)
        assert await last_change_seq(store) == seq  # nothing changed, nothing to follow
        assert (await store.load_raw(saved.id)).processed_at == record.processed_at
        (row,) = await store.find_opt_outs(O1)
        assert (row.notice_count, row.email, row.marketplace) == (1, SE1, "marketplace.amazon.com")
        (evidence,) = await store.evidence_details(row.id)
        assert (evidence.raw_message_id, evidence.source, evidence.dkim) == (saved.id, "smtp", None)
        assert (evidence.forwarder, evidence.notice_message_id) == (  # the Message-ID as its digest
            "seller@x.com", message_id_stored(TEST_KEYRING, "amz-1@amazon.com"))

    with_store(body)


def test_a_later_notice_bumps_the_count_and_last_seen(with_store: Any) -> None:
    async def body(store: Store) -> None:
        await ingest(store, b"n1", notice(buyer(order=O1)), minutes=5)
        applied = await ingest(store, b"n2", notice(buyer(order=O1)), minutes=9)
        earlier = await ingest(store, b"n0", notice(buyer(order=O1)), minutes=1)  # recovery order
        assert (applied.buyers_new, applied.buyers_updated) == (0, 1)
        assert earlier.entries == [IndexEntry("order", SO1, at(1), 3)]
        (row,) = await store.find_opt_outs(O1)
        assert (row.first_seen, row.last_seen, row.notice_count) == (at(1), at(9), 3)

    with_store(body)


def test_one_amazon_notice_forwarded_twice_counts_once(with_store: Any) -> None:
    async def body(store: Store) -> None:
        same = "amz-7@amazon.com"
        await ingest(store, b"via seller a", notice(buyer(order=O1), message_id=same,
                                                    forwarder="a@x"))
        applied = await ingest(store, b"via seller b", notice(buyer(order=O1), message_id=same,
                                                              forwarder="b@y"), minutes=3)
        assert applied.entries == [IndexEntry("order", SO1, at(0), 1)]
        (row,) = await store.find_opt_outs(O1)
        assert row.last_seen == at(3)
        assert {e.forwarder for e in await store.evidence_details(row.id)} == {"a@x", "b@y"}

    with_store(body)


def test_an_address_with_no_order_takes_the_order(with_store: Any) -> None:
    async def body(store: Store) -> None:
        await ingest(store, b"email only", notice(buyer(E1)))
        applied = await ingest(store, b"both", notice(buyer(E1, O1)), minutes=2)
        assert (applied.buyers_new, applied.buyers_updated) == (0, 1)
        (by_order,) = await store.find_opt_outs(O1)
        (by_email,) = await store.find_opt_outs(E1.upper())
        assert by_order == by_email and by_order.notice_count == 2

    with_store(body)


def test_an_order_learns_its_address_and_keeps_one_it_has(with_store: Any) -> None:
    """A notice naming another address for the order: the order's row keeps its address and
    the other one is blocked on a row of its own, never left open."""
    async def body(store: Store) -> None:
        await ingest(store, b"order only", notice(buyer(order=O1)))
        learnt = await ingest(store, b"both", notice(buyer(E1, O1)), minutes=1)
        assert keys(learnt.entries) == {("order", SO1): 2, ("email", SE1): 2}
        other = await ingest(store, b"other address", notice(buyer(E2, O1)), minutes=2)
        assert keys(other.entries) == {("order", SO1): 3, ("email", SE1): 3, ("email", SE2): 1}  # E1 kept
        assert (other.buyers_new, other.buyers_updated) == (1, 1)
        (alone,) = await store.find_opt_outs(E2)
        assert (alone.order_id, alone.notice_count) == (None, 1)
        again = await ingest(store, b"other address again", notice(buyer(E2, O1)), minutes=3)
        assert keys(again.entries) == {("order", SO1): 4, ("email", SE1): 4, ("email", SE2): 2}
        assert [r.id for r in await store.find_opt_outs(E2)] == [alone.id]  # no second row

    with_store(body)


def test_an_address_alone_bumps_its_earliest_row(with_store: Any) -> None:
    async def body(store: Store) -> None:
        await ingest(store, b"o1", notice(buyer(E1, O1)))
        await ingest(store, b"o2", notice(buyer(E1, O2)), minutes=1)  # same buyer, new order
        applied = await ingest(store, b"e", notice(buyer(E1)), minutes=2)
        assert keys(applied.entries) == {("order", SO1): 2, ("email", SE1): 3}
        rows = {r.order_id: r.notice_count for r in await store.find_opt_outs(E1)}
        assert rows == {SO1: 2, SO2: 1}

    with_store(body)


def test_buyers_of_one_message_and_a_batch(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await store.save_raw_many(
            [Delivery(b"a", "smtp"), Delivery(b"b", "smtp")]
        )
        results = [
            notice(buyer(E1, O1), buyer(order=O2), buyer(order=O1)),  # O1 twice: one notice
            notice(buyer(order=O2), buyer(None, None)),  # a buyer naming nothing is ignored
        ]
        applied = await store.apply_many(
            [(s.id, r) for s, r in zip(saved, results)], parser_version="p")
        assert [(a.buyers_new, a.buyers_updated) for a in applied] == [(2, 0), (0, 1)]
        assert keys(applied[1].entries) == {("order", SO2): 2}
        assert len(await store.list_opt_outs()) == 2

    with_store(body)


def test_remove_keeps_history_and_new_evidence_reactivates(with_store: Any) -> None:
    async def body(store: Store) -> None:
        await ingest(store, b"n1", notice(buyer(E1, O1)))
        with pytest.raises(ValueError):
            await store.remove(O1, reason="  ", who="ops")
        removed = await store.remove(E1.upper(), reason="buyer asked", who="ops@us")
        assert keys(removed) == {("order", SO1): 0, ("email", SE1): 0}
        assert all(e.first_seen is None for e in removed)
        assert await store.remove(O1, reason="again", who="ops") == []
        (row,) = await store.find_opt_outs(O1)
        assert (row.active, row.removed_by, row.removed_reason) == (False, "ops@us", "buyer asked")
        assert row.removed_at is not None
        assert [e async for e in store.iter_index()] == []
        assert await store.list_opt_outs() == []
        assert [r.id for r in await store.list_opt_outs(active=False)] == [row.id]

        again = await ingest(store, b"n1", notice(buyer(E1, O1)))  # same bytes: no new proof
        assert (again.buyers_updated, keys(again.entries)[("order", SO1)]) == (0, 0)
        back = await ingest(store, b"n2", notice(buyer(order=O1)), minutes=4)
        assert keys(back.entries) == {("order", SO1): 2, ("email", SE1): 2}
        (row,) = await store.find_opt_outs(O1)
        assert row.active and row.removed_reason == "buyer asked"  # history stays

    with_store(body)


def test_learn_address(with_store: Any) -> None:
    async def body(store: Store) -> None:
        await ingest(store, b"n1", notice(buyer(order=O1)), minutes=1)
        await ingest(store, b"n2", notice(buyer(E2, O2)))
        assert await store.learn_address(O3, E1) == ("none", [])  # not blocked
        assert await store.learn_address(O2, E2) == ("none", [])  # already has this address
        assert await store.learn_address(O2, E1, client="uid 1000") == ("conflict", [])  # held, not merged
        outcome, learnt = await store.learn_address(O1, f"  <{E1.upper()}> ", client="uid 1000")
        assert outcome == "learned" and sorted(learnt, key=lambda e: e.kind) == [
            IndexEntry("email", SE1, at(1), 1),
            IndexEntry("order", SO1, at(1), 1),
        ]
        assert await store.learn_address(O1, E2) == ("conflict", [])
        trail = [(a.actor, a.action, a.subject) for a in await store.audit_log(limit=10)]
        assert ("query uid 1000", "learn", SE1) in trail and ("query uid 1000", "learn_conflict", SE1) in trail
        await store.remove(O2, reason="test", who="t")
        assert await store.learn_address(O2, E1) == ("none", [])  # removed: not actively blocked

    with_store(body)


def test_a_notice_naming_another_address_than_a_learnt_one_blocks_it_too(with_store: Any) -> None:
    """A CHECK taught the order an address; a later notice for that order names another relay
    address: both stay blocked (the learnt one may be the right one, the noticed one is)."""
    async def body(store: Store) -> None:
        await ingest(store, b"order only", notice(buyer(order=O1)))
        assert (await store.learn_address(O1, E1))[0] == "learned"
        applied = await ingest(store, b"names another", notice(buyer(E2, O1)), minutes=1)
        assert {(k, v) for (k, v) in keys(applied.entries)} == {("order", SO1), ("email", SE1), ("email", SE2)}
        assert [r.order_id for r in await store.find_opt_outs(E2)] == [None]
        assert [r.email for r in await store.find_opt_outs(O1)] == [SE1]

    with_store(body)


def test_iter_index_streams_every_active_key(with_store: Any) -> None:
    async def body(store: Store) -> None:
        await ingest(store, b"1", notice(buyer(E1, O1)), minutes=3)
        await ingest(store, b"2", notice(buyer(E1, O2)), minutes=1)
        await ingest(store, b"3", notice(buyer(E2, O3)))
        await ingest(store, b"4", notice(buyer(order="999-0000000-0000000")))
        await store.remove(O3, reason="test", who="t")
        got = {(e.kind, e.value): (e.first_seen, e.count) async for e in store.iter_index()}
        assert got == {
            ("order", SO1): (at(3), 1),
            ("order", SO2): (at(1), 1),
            ("order", stored("999-0000000-0000000")): (at(0), 1),
            ("email", SE1): (at(1), 2),  # earliest of its rows, notices summed
        }

    with_store(body)


def test_operator_listings_and_export(with_store: Any) -> None:
    async def body(store: Store) -> None:
        for n, order in enumerate((O1, O2, O3)):
            await ingest(store, f"n{n}".encode(), notice(buyer(order=order)), minutes=n)
        await store.remove(O2, reason="test", who="t")
        assert [r.order_id for r in await store.list_opt_outs()] == [SO1, SO3]
        assert [r.order_id for r in await store.list_opt_outs(active=None, offset=1, limit=1)] == [
            SO2]
        exported = [r async for r in store.export_rows()]
        assert [(r.order_id, r.active) for r in exported] == [(SO1, True), (SO2, False), (SO3, True)]
        assert exported[0].first_seen == at(0)

    with_store(body)


def test_identity_rules_hold_within_one_batch(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await store.save_raw_many([Delivery(b, "smtp", received_at=at(n))
                                           for n, b in enumerate((b"a", b"b", b"c", b"d"))])
        results = [
            notice(buyer(E1), message_id="amz-1"),
            notice(buyer(E1, O1), message_id="amz-2"),
            notice(buyer(order=O1), message_id="amz-2"),  # the same notice again
            notice(buyer(E2, O1), message_id="amz-3"),
        ]
        applied = await store.apply_many(
            [(s.id, r) for s, r in zip(saved, results)], parser_version="p")
        assert [(a.buyers_new, a.buyers_updated) for a in applied] == [
            (1, 0), (0, 1), (0, 1), (1, 1)]  # the last: E2 blocked on a row of its own
        (row,) = await store.find_opt_outs(O1)
        assert (row.email, row.notice_count, row.first_seen, row.last_seen) == (SE1, 3, at(0), at(3))
        assert len(await store.evidence_details(row.id)) == 4
        # entries are the state after the batch, of every key the named opt-outs have by then
        assert keys(applied[0].entries) == {("email", SE1): 3, ("order", SO1): 3}

    with_store(body)


def test_applied_when_the_entries_cannot_be_read_after_the_commit(with_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entries are read after the applying transaction commits; when that read fails, the
    notice is applied all the same, its results carry no entries, and its change rows are there
    for the index followers."""

    async def body(store: Store) -> None:
        (saved,) = await store.save_raw_many([Delivery(b"a", "smtp")])
        before = await last_change_seq(store)
        reading = store._reading

        async def refused(work: Any, *args: Any) -> Any:
            if getattr(work, "__name__", "") == "applied":
                raise StoreUnavailable("database is locked")
            return await reading(work, *args)

        monkeypatch.setattr(store, "_reading", refused)
        (applied,) = await store.apply_many([(saved.id, notice(buyer(E1, O1)))], parser_version="p")
        monkeypatch.setattr(store, "_reading", reading)
        assert (applied.buyers_new, applied.entries, applied.held) == (1, [], None)
        assert await last_change_seq(store) > before
        assert {(e.kind, e.value) async for e in store.iter_index()} == {("order", SO1), ("email", SE1)}

    with_store(body)
