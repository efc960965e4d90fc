"""The admission step inside the applying transaction, on both engines: the decision asked
through ``admitter``, the rate counters, approve/discard, the audit trail, figures, imports
and the registry."""

from __future__ import annotations

from typing import Any

import pytest

from inbox_daemon.notices.result import Kind, ParseResult
from inbox_daemon.processing.admission import admitter
from inbox_daemon.processing.csvfile import read_buyers
from inbox_daemon.store import Store
from inbox_daemon.trust import ABSENT, Assessment, Attribution, Claim, DkimEvidence, Policy
from tests.store.store_builders import E1, E2, O1, O2, O3, apply_result, at, buyer, notice, save_raw

GUARDED = Policy(require_registered_forwarder=True, rate_per_hour=2)


def seen(forwarder: str | None, token: str | None = None, source: str = "smtp") -> Assessment:
    """A forward whose From the forwarder's own DKIM signature proves (trust/identity.py)."""
    claims = (Claim(forwarder, "from", f"dkim d={forwarder.rpartition('@')[2]}"),) if forwarder else ()
    return Assessment(Attribution(token, claims), DkimEvidence(ABSENT), source, 1)


async def save(store: Store, body: bytes, minutes: int = 0) -> int:
    return (await save_raw(store, body, source="smtp", received_at=at(minutes))).id


async def admit(store: Store, items: list[tuple[bytes, ParseResult, Assessment]], policy: Policy = GUARDED) -> list[Any]:
    ids = [await save(store, body) for body, _, _ in items]
    return await apply(store, [(i, r, a) for i, (_, r, a) in zip(ids, items)], policy)


async def apply(store: Store, items: list[tuple[int, ParseResult, Assessment]], policy: Policy) -> list[Any]:
    return await store.apply_many([(i, r) for i, r, _ in items], parser_version="p1", admit=admitter(policy, items))


def test_unregistered_forwarder_is_held_and_a_token_or_forwarder_admits(with_store: Any) -> None:
    async def body(store: Store) -> None:
        acme = await store.add_seller("acme", ["Ops@Acme.example"], who="ops")
        applied = await admit(store, [
            (b"a", notice(buyer(order=O1)), seen("mallory@evil.example")),
            (b"b", notice(buyer(order=O2)), seen("ops@acme.example")),
            (b"c", notice(buyer(order=O3)), seen(None, acme.token)),
            (b"d", ParseResult(Kind.NOT_OPT_OUT, reason="look-alike"), seen("mallory@evil.example")),
        ])
        assert [a.held for a in applied] == ["unregistered forwarder mallory@evil.example (dkim d=evil.example)", None, None, None]
        assert applied[0].entries == [] and applied[1].entries[0].blocked
        assert await store.find_opt_outs(O1) == []
        rows = {r.id: r for r in await store.list_held(limit=10)}
        (first_id,) = [i for i, r in rows.items() if r.outcome == "quarantined"]
        assert rows[first_id].reason == "unregistered forwarder mallory@evil.example (dkim d=evil.example)"
        trust = await store.trust_of(first_id + 2)
        assert trust is not None and (trust["seller_id"], trust["token"], trust["dkim"]) == (acme.id, acme.token, "absent")

    with_store(body)


def test_rate_limit_counts_new_opt_outs_per_forwarder_across_batches(with_store: Any) -> None:
    async def body(store: Store) -> None:
        await store.add_seller("acme", ["a@x.example", "b@x.example"], who="ops")
        one = await admit(store, [(b"1", notice(buyer(E1, O1)), seen("a@x.example")),
                                  (b"1again", notice(buyer(order=O1)), seen("a@x.example"))])  # not new
        two = await admit(store, [(b"2", notice(buyer(order=O2)), seen("a@x.example")),
                                  (b"3", notice(buyer(order=O3)), seen("a@x.example")),
                                  (b"4", notice(buyer(E2)), seen("b@x.example")),
                                  (b"5", notice(buyer(order="999-0000000-0000001")), seen("a@x.example", source="import"))])
        assert [a.held for a in one + two] == [None, None, None, "rate limit", None, None]

    with_store(body)


def test_approve_discard_and_the_audit_trail(with_store: Any) -> None:
    async def body(store: Store) -> None:
        held = await admit(store, [(b"x", notice(buyer(E1, O1)), seen("m@evil.example")),
                                   (b"y", notice(buyer(order=O2)), seen("m@evil.example"))])
        assert all(a.held for a in held)
        x, y = [r.id for r in sorted(await store.list_held(("quarantined",)), key=lambda r: r.id)]
        applied = await store.approve(x, notice(buyer(E1, O1)), parser_version="p1", who="ana")
        assert applied.buyers_new == 1 and applied.entries
        again = await admit(store, [(b"x", notice(buyer(E1, O1)), seen("m@evil.example"))])  # reprocess
        assert again[0].held is None  # the approval holds on later passes
        await store.discard(y, who="ana", reason="forged")
        with pytest.raises(ValueError, match="not in quarantine"):
            await store.approve(y, notice(buyer(order=O2)), parser_version="p1", who="ana")
        with pytest.raises(LookupError):
            await store.discard(10_000, who="ana", reason="?")
        await store.remove(O1, reason="asked by phone", who="bo")
        (row,) = await store.find_opt_outs(O1)
        trail = [(e.actor, e.action, e.detail) for e in await store.audit_log(opt_out_ids=[row.id])]
        assert trail[0][:2] == ("ana", "block") and trail[1] == ("bo", "remove", "asked by phone")
        await admit(store, [(b"z", notice(buyer(order=O1)), seen(None))], Policy())  # new proof
        assert [e.action for e in await store.audit_log(opt_out_ids=[row.id])][-1] == "reactivate"
        actions = [e.action for e in await store.audit_log()]
        assert {"approve", "discard", "remove"} <= set(actions)

    with_store(body)


def test_figures_per_month_and_evidence_details(with_store: Any) -> None:
    async def body(store: Store) -> None:
        acme = await store.add_seller("acme", [], who="ops")
        for body_, minutes, result in ((b"m1", 0, notice(buyer(order=O1))), (b"m2", 60 * 24 * 40, notice(buyer(order=O2))),
                                       (b"m3", 60 * 24 * 41, ParseResult(Kind.NOT_OPT_OUT, reason="policy", notices=1))):
            raw_id = await save(store, body_, minutes)
            await apply(store, [(raw_id, result, seen(None, acme.token))], Policy())
        months = await store.seller_figures(acme.id)
        assert [(m.month, m.notices_received, m.buyers_blocked, m.amazon_blocked) for m in months] == [
            ("2024-03", 1, 1, 1), ("2024-04", 2, 1, 2)]
        (row,) = await store.find_opt_outs(O1)
        (ev,) = await store.evidence_details(row.id)
        assert (ev.seller, ev.dkim, ev.seen_at) == ("acme", "absent", at(0))

    with_store(body)


def test_sellers_and_forwarders_registry(with_store: Any) -> None:
    async def body(store: Store) -> None:
        acme = await store.add_seller("acme", ["a@x.example"], who="ops")
        with pytest.raises(ValueError, match="exists"):
            await store.add_seller("acme", who="ops")
        with pytest.raises(ValueError, match="registered already"):
            await store.add_forwarder("acme", "A@X.example", who="ops")
        await store.add_forwarder("acme", "b@x.example", who="ops")
        await store.remove_forwarder("a@x.example", who="ops")
        assert (await store.get_seller("acme")).forwarders == ("b@x.example",)  # type: ignore[union-attr]
        await store.remove_seller("acme", who="ops")
        assert await store.list_sellers() == []
        revived = await store.add_seller("acme", ["c@x.example"], who="ops")
        assert (revived.id, revived.token, revived.forwarders) == (acme.id, acme.token, ("c@x.example",))

    with_store(body)


def test_import_keeps_the_file_as_evidence(with_store: Any) -> None:
    async def body(store: Store) -> None:
        buyers, skipped = read_buyers(f"order_id,email\n{O1},{E1}\nx,\n,\n".encode())
        assert len(buyers) == 1 and len(skipped) == 2
        done = await store.import_buyers(b"order_id,email\n", "old.csv", buyers, skipped, who="ana")
        assert (done.rows, done.new) == (1, 1)
        (row,) = await store.find_opt_outs(O1)
        (ev,) = await store.evidence_details(row.id)
        assert ev.source == "csv:old.csv"
        assert [(e.actor, e.action) for e in await store.audit_log(limit=2)] == [("ana", "import"), ("ana", "block")]

    with_store(body)


def test_reprocess_ids_pick_older_parsers_and_held_messages(with_store: Any) -> None:
    async def body(store: Store) -> None:
        old = await save(store, b"old")
        await apply_result(store, old, ParseResult(Kind.NOT_OPT_OUT, reason="?"), parser_version="p0")
        same = await save(store, b"same")
        await apply_result(store, same, ParseResult(Kind.MALFORMED, reason="?"), parser_version="p1")
        await admit(store, [(b"held", notice(buyer(order=O1)), seen("m@evil.example"))])
        ids = await store.reprocess_ids("p1")
        assert same not in ids and old in ids and len(ids) == 2
        assert len(await store.reprocess_ids("p1", every=True)) == 3

    with_store(body)
