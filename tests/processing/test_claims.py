"""Exclusive claims: each stored message is processed once, by one owner, however many
processes are handed it; a resend of a message still pending is processed; a flow without
recovery (a CLI verb) leaves the daemon's backlog alone."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from inbox_daemon.processing import Flow, Processor
from inbox_daemon.store import Delivery, Store
from tests.support.notices import opt_out_notice, order_id


def deliveries(seed: int, n: int) -> list[Delivery]:
    rng = random.Random(seed)
    return [Delivery(opt_out_notice(order_id(rng), None, seq=i), "smtp") for i in range(n)]


def test_two_processors_handed_the_same_messages_process_each_once(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await store.save_raw_many(deliveries(1, 40))
        first, second = (Processor(store, lambda _e: None) for _ in range(2))
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
        flow = Flow(store, Processor(store, lambda _e: None))  # no recovery, as a CLI verb has
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
        processor = Processor(store, lambda _e: None)
        await processor.start()
        try:
            results = await asyncio.wait_for(asyncio.gather(*(processor.submit(s.id) for s in saved)), 20)
        finally:
            await processor.stop()
        assert [r.outcome for r in results] == ["opt_out", "pending", "pending", "pending", "pending"]
        assert len(await store.pending_raw()) == 4

    with_store(body)
