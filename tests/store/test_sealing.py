"""Raw messages sealed at rest: what the database holds is AES-GCM under the current data key,
reading opens it, rotation seals again under a new key a batch at a time (and resumes), rows
kept plain before sealing stay readable until sealed, and a key this process lacks makes that
one message unreadable with the reason, never an exception."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from inbox_daemon.privacy import KeyRing
from inbox_daemon.store import Delivery, Store
from inbox_daemon.store.schema import RawMessage

from .store_builders import save_raw

BUYER_TEXT = b"Dear Seller, buyer Jolanta Wieczorek-Brandt wrote: please never mail me again"


async def stored(store: Store) -> dict[int, tuple[bytes | None, str | None]]:
    """What the database itself holds per raw message: (data column, key_id column)."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(RawMessage.id, RawMessage.data, RawMessage.key_id))
        return {int(i): (d, k) for i, d, k in rows}


def test_raw_bytes_are_sealed_at_rest_and_open_on_read(with_store: Any) -> None:
    async def body(store: Store) -> None:
        saved = await save_raw(store, BUYER_TEXT, source="smtp")
        data, key_id = (await stored(store))[saved.id]
        assert data is not None and b"Jolanta" not in data and b"never mail" not in data
        assert key_id == store.keyring.current == KeyRing.key_id_of(data)  # type: ignore[union-attr]
        record = await store.load_raw(saved.id)
        assert (record.data, record.unreadable) == (BUYER_TEXT, None)
        assert (await store.get_message(saved.sha256[:8])).data == BUYER_TEXT  # type: ignore[union-attr]
        claimed = await store.claim_raw([saved.id], "me", lease=timedelta(minutes=1))
        assert [r.data for r in claimed] == [BUYER_TEXT]

    with_store(body)


def test_a_sealed_value_moved_to_another_row_does_not_open(with_store: Any) -> None:
    async def body(store: Store) -> None:
        a, b = await store.save_raw_many([Delivery(b"first message", "smtp"), Delivery(b"second one", "smtp")])
        sealed_a = (await stored(store))[a.id][0]
        async with store.engine.begin() as conn:
            await conn.execute(update(RawMessage).where(RawMessage.id == b.id).values(data=sealed_a))
        record = await store.load_raw(b.id)
        assert record.data == b"" and "does not open" in (record.unreadable or "")

    with_store(body)


def test_rotation_seals_again_in_batches_and_resumes(with_store: Any) -> None:
    async def body(store: Store) -> None:
        bodies = [BUYER_TEXT + b" %d" % n for n in range(7)]
        saved = await store.save_raw_many([Delivery(b, "smtp") for b in bodies])
        old = store.keyring
        assert old is not None
        store.keyring = old.with_new_data_key()
        assert await store.count_to_reseal() == 7
        first = await store.reseal_batch(0, 3)  # a rotation killed after one batch...
        assert first is not None and (first.resealed, first.unreadable) == (3, 0)
        assert [k for _, k in (await stored(store)).values()].count(store.keyring.current) == 3
        after, total = 0, 0  # ...run again from the start: the rows say what is left
        while (step := await store.reseal_batch(after, 3)) is not None:
            after, total = step.last_id, total + step.resealed
        assert total == 4
        assert await store.key_ids_in_use() == {store.keyring.current: 7}
        store.keyring = store.keyring.without_data_keys({old.current})
        assert [(await store.load_raw(s.id)).data for s in saved] == bodies

    with_store(body)


def test_rows_kept_plain_read_as_they_are_until_sealed(with_store: Any) -> None:
    async def body(store: Store) -> None:
        ring, store.keyring = store.keyring, None  # written as before sealing existed
        plain = await save_raw(store, BUYER_TEXT, source="smtp")
        store.keyring = ring
        assert (await stored(store))[plain.id] == (BUYER_TEXT, None)
        assert (await store.load_raw(plain.id)).data == BUYER_TEXT
        assert await store.count_to_reseal(plain_only=True) == 1
        step = await store.reseal_batch(0, 100, plain_only=True)
        assert step is not None and step.resealed == 1
        data, key_id = (await stored(store))[plain.id]
        assert data is not None and b"Jolanta" not in data and key_id == ring.current  # type: ignore[union-attr]
        assert (await store.load_raw(plain.id)).data == BUYER_TEXT

    with_store(body)


def test_a_key_this_process_lacks_makes_the_message_unreadable_not_an_error(with_store: Any) -> None:
    async def body(store: Store) -> None:
        here = store.keyring
        assert here is not None
        store.keyring = here.with_new_data_key()  # another daemon, after rotate-key
        saved = await save_raw(store, BUYER_TEXT, source="smtp")
        store.keyring = here  # this daemon never got the new key file
        record = await store.load_raw(saved.id)
        assert record.data == b"" and "'k2', which is not in the key file" in (record.unreadable or "")
        step = await store.reseal_batch(0, 10)  # rotation here skips it, and says so
        assert step is not None and (step.resealed, step.unreadable) == (0, 1)

    with_store(body)
