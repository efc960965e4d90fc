"""Exclusive claims: each stored message is processed once, by one owner, however many
processes are handed it; a resend of a message still pending is processed; a flow without
recovery (a CLI verb) leaves the daemon's backlog alone."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from inbox_daemon.processing import Flow, Processor
from inbox_daemon.processing.parsers import BUILTIN, Parser
from inbox_daemon.store import Delivery, Store
from tests.support.notices import opt_out_notice, order_id


def deliveries(seed: int, n: int) -> list[Delivery]:
    rng = random.Random(seed)
    return [Delivery(opt_out_notice(order_id(rng), None, seq=i), "smtp") for i in range(n)]


def test_two_processors_handed_the_same_messages_process_each_once(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await store.save_raw_many(deliveries(1, 40))
        first, second = (Processor(store) for _ in range(2))
        for p in (first, second):
            await p.start()
        try:
            results = await asyncio.gather(*(p.submit(s.id) for s in saved for p in (first, second)))
        finally:
            for p in (first, second):
                await p.stop()
        applied = [r for r in results if r.outcome == "opt_out"]
        assert sorted(r.raw_id for r in applied) == sorted(s.id for s in saved)  # each once
        assert all(r.outcome == "duplicate" for r in results if r.outcome != "opt_out")
        assert first.counters["opt_out"] + second.counters["opt_out"] == 40
        assert await store.pending_raw() == []

    with_store(body)


def test_a_resend_of_a_pending_message_is_processed_and_a_cli_flow_leaves_the_backlog(with_store: Any) -> None:
    async def body(store: Store) -> None:
        left, resent = deliveries(2, 2)
        left_id = (await store.save_raw_many([left, resent]))[0].id  # stored, then the process died
        flow = Flow(store, Processor(store))  # no recovery, as a CLI verb has
        await flow.start()
        try:
            again = await flow.accept(resent)  # the MTA did not get our 250 and sends it again
            assert not again.is_new and again.pending
            await flow.processor.drain()
        finally:
            await flow.stop()
        assert [p.id for p in await store.pending_raw()] == [left_id]  # the resent one was processed

    with_store(body)


def test_the_store_going_away_mid_batch_leaves_no_caller_waiting(with_store: Any) -> None:
    """A batch fails for a reason of its data, then the database goes away while its messages
    are applied one by one: every caller gets an answer ("pending": recovered later)."""
    from inbox_daemon.errors import StoreUnavailable

    async def body(store: Store) -> None:
        saved = await store.save_raw_many(deliveries(3, 5))
        calls = 0
        real = store.apply_many

        async def failing(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ValueError("a row the database refuses")  # the whole batch
            if calls == 3:
                raise StoreUnavailable("connection lost")  # the second message alone
            return await real(*args, **kwargs)

        store.apply_many = failing  # type: ignore[method-assign]
        processor = Processor(store)
        await processor.start()
        try:
            results = await asyncio.wait_for(asyncio.gather(*(processor.submit(s.id) for s in saved)), 20)
        finally:
            await processor.stop()
        assert [r.outcome for r in results] == ["opt_out", "pending", "pending", "pending", "pending"]
        assert len(await store.pending_raw()) == 4

    with_store(body)


class Stalled:
    """A parser (run in a thread: ``workers=0``) that holds every parse until released: an
    owner at work on a message for as long as the test wants."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def parse(self, raw: bytes) -> Any:
        self.started.set()
        assert self.release.wait(60), "never released"
        return BUILTIN.parse(raw)

    @property
    def parser(self) -> Parser:
        return Parser(self.parse, BUILTIN.version)


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def two_owners(store: Store, first_lease: float, second_lease: float) -> AsyncIterator[tuple[Stalled, Processor, Processor]]:
    """A first owner whose parses stall until released, and a second with a working parser."""
    stalled = Stalled()
    first = Processor(store, parser=stalled.parser, claim_seconds=first_lease, parse_timeout=120)
    second = Processor(store, claim_seconds=second_lease)
    for p in (first, second):
        await p.start()
    try:
        yield stalled, first, second
    finally:
        stalled.release.set()
        for p in (first, second):
            await p.stop()


def test_an_owner_that_stalls_past_its_lease_is_fenced_and_the_message_decided_once(with_store: Any) -> None:
    """The first owner holds a message in a parse and does not renew its claim (its lease is an
    hour, renewed every 20 minutes); the second, whose lease is 1 s, takes the claim over and
    decides. When the first comes back its apply is refused: one decision, by the second."""

    async def body(store: Store) -> None:
        (saved,) = await store.save_raw_many(deliveries(4, 1))
        async with two_owners(store, 3600, 1) as (stalled, first, second):
            by_first = first.submit(saved.id)
            await asyncio.to_thread(stalled.started.wait, 10)
            (held,) = await store.pending_raw()
            assert held.claimed_by == first.owner

            async def taken_over() -> bool:
                await second.recover()
                return (await second.submit(saved.id)).outcome == "opt_out"

            await _until(taken_over)
            stalled.release.set()
            late = await asyncio.wait_for(by_first, 20)
        assert (late.outcome, late.reason) == ("duplicate", "claim lost to another owner")
        assert (first.counters["opt_out"], second.counters["opt_out"]) == (0, 1)
        (row,) = await store.list_messages()
        assert (row.outcome, row.id) == ("opt_out", saved.id)

    with_store(body)


@pytest.mark.slow
def test_a_renewed_claim_is_not_taken_over_however_long_the_work(with_store: Any) -> None:
    """Both owners use a 1.5 s lease; the first is at work for three leases, renewing every
    half second, and the second, asking all the while, never gets the message."""

    async def body(store: Store) -> None:
        (saved,) = await store.save_raw_many(deliveries(5, 1))
        async with two_owners(store, 1.5, 1.5) as (stalled, first, second):
            by_first = first.submit(saved.id)
            await asyncio.to_thread(stalled.started.wait, 10)
            deadline = asyncio.get_running_loop().time() + 4.5
            while asyncio.get_running_loop().time() < deadline:
                assert await second.recover() == 0
                assert (await second.submit(saved.id)).outcome == "duplicate"
                await asyncio.sleep(0.2)
            stalled.release.set()
            decided = await asyncio.wait_for(by_first, 20)
        assert decided.outcome == "opt_out"
        assert (first.counters["opt_out"], second.counters["opt_out"]) == (1, 0)

    with_store(body)


def test_a_lost_claim_fences_marking_an_error_too(with_store: Any) -> None:
    """``mark_error`` for an owner whose claim was taken over writes nothing."""

    async def body(store: Store) -> None:
        (saved,) = await store.save_raw_many(deliveries(6, 1))
        assert [r.id for r in await store.claim_raw([saved.id], "one", lease=timedelta(hours=1))] == [saved.id]
        assert [r.id for r in await store.claim_raw([saved.id], "two", lease=timedelta(0))] == [saved.id]
        assert await store.mark_error(saved.id, "late", owner="one") is False
        assert await store.renew_claims("one") == 0
        assert await store.renew_claims("two") == 1
        (row,) = await store.pending_raw(lease=timedelta(hours=1))
        assert row.claimed_by == "two" and not row.claim_expired
        assert (await store.pending_raw(lease=timedelta(0)))[0].claim_expired
        assert await store.mark_error(saved.id, "parse failed", owner="two") is True
        assert await store.pending_raw() == []

    with_store(body)


def test_a_stored_message_is_claimed_by_the_process_that_stored_it(with_store: Any) -> None:
    """From the durable write on, a message has an owner: another daemon's recovery pass leaves
    it alone while that owner renews, and the same bytes stored again keep the first claim."""

    async def body(store: Store) -> None:
        message = deliveries(7, 1)
        (saved,) = await store.save_raw_many(message, owner="one")
        (again,) = await store.save_raw_many(message, owner="two")
        assert again.id == saved.id and not again.is_new
        (row,) = await store.pending_raw(lease=timedelta(hours=1))
        assert (row.claimed_by, row.claim_expired) == ("one", False)
        other = Processor(store)
        assert await other.recover() == 0
        assert await store.claim_raw([saved.id], "two", lease=timedelta(hours=1)) == []
        assert await store.renew_claims("one") == 1

    with_store(body)


def test_messages_stored_by_a_process_gone_from_this_host_are_taken_at_once(with_store: Any) -> None:
    """A daemon killed after its durable writes leaves its claims: a process on the same host
    that is handed those messages (an IMAP takeover, a resend) sees the pid is gone and takes
    them without waiting for the lease, as recovery at start does."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owner = f"{socket.gethostname()}:{gone.pid}:dead00"

    async def body(store: Store) -> None:
        saved = await store.save_raw_many(deliveries(8, 3), owner=owner)
        processor = Processor(store)  # a lease of 30 s: not waited for
        await processor.start()
        try:
            results = await asyncio.wait_for(asyncio.gather(*(processor.submit(s.id) for s in saved)), 20)
        finally:
            await processor.stop()
        assert [r.outcome for r in results] == ["opt_out"] * 3

    with_store(body)


def test_a_database_error_while_renewing_is_logged_and_work_goes_on(with_store: Any) -> None:
    """The store away at a renewal: a warning, the renewal task lives on, the message held in
    a parse meanwhile is still decided once the store is back."""
    from inbox_daemon.errors import StoreUnavailable

    async def body(store: Store) -> None:
        (saved,) = await store.save_raw_many(deliveries(9, 1))
        failures = 0

        async def away(owner: str) -> int:
            nonlocal failures
            failures += 1
            raise StoreUnavailable("connection refused")

        store.renew_claims = away  # type: ignore[method-assign]
        stalled = Stalled()
        processor = Processor(store, parser=stalled.parser, claim_seconds=0.3, parse_timeout=60)
        await processor.start()
        try:
            decided = processor.submit(saved.id)
            await asyncio.to_thread(stalled.started.wait, 10)
            await _until(lambda: asyncio.sleep(0, failures >= 3))
            assert all(not t.done() for t in processor.tasks)
            stalled.release.set()
            result = await asyncio.wait_for(decided, 20)
        finally:
            stalled.release.set()
            await processor.stop()
        assert result.outcome == "opt_out"

    with_store(body)
