"""The daemon's periodic privacy task: one round seals the messages kept plain from before
sealing existed and purges what retention says is due (the clock is injected, not waited for);
a database error waits for the next round instead of ending the task."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from inbox_daemon.config import PrivacyConfig
from inbox_daemon.privacy import new_keyring
from inbox_daemon.processing.privacy import PrivacyTask
from inbox_daemon.store import Store
from tests.store.store_builders import T0, save_raw
from tests.store.test_sealing import stored


def test_one_round_seals_plain_rows_and_purges_what_is_due(with_store: Any) -> None:
    async def body(store: Store) -> None:
        ring, store.keyring = store.keyring, None
        old = await save_raw(store, b"old notice, buyer Ada Quist", source="smtp", received_at=T0)
        young = await save_raw(store, b"young notice, buyer Bo Ek", source="smtp", received_at=T0 + timedelta(days=20))
        store.keyring = ring
        await store.mark_error(old.id, "x")  # held: retain_days_held
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(f"UPDATE raw_messages SET outcome = 'opt_out' WHERE id = {young.id}")
        task = PrivacyTask(store, PrivacyConfig(retain_days=30, retain_days_held=90), every=3600,
                           clock=lambda: T0 + timedelta(days=60))
        await task.start()
        try:
            await asyncio.wait_for(task.round_done.wait(), 30)
            assert task.tasks[0].done() is False  # it waits for the next round
        finally:
            await task.stop()
        kept = await stored(store)
        assert kept[young.id] == (b"", None)  # 40 days old and decided: purged
        data, key_id = kept[old.id]  # 60 days and held: kept, and sealed now
        assert data is not None and b"Ada Quist" not in data and key_id == ring.current  # type: ignore[union-attr]
        assert (await store.load_raw(old.id)).data == b"old notice, buyer Ada Quist"

    with_store(body)


def test_a_database_error_waits_for_the_next_round(run: Any) -> None:
    async def body() -> None:
        broken = await Store.open("postgresql://nobody@127.0.0.1:1/none", keyring=new_keyring())
        task = PrivacyTask(broken, PrivacyConfig(), every=3600)
        await task.start()
        try:
            await asyncio.wait_for(task.round_done.wait(), 30)
            assert not task.tasks[0].done() and task.rounds == 1
        finally:
            await task.stop()
            await broken.close()

    run(body())
