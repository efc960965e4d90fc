"""One rule for which strings name the same buyer (``inbox_daemon.keys``), on every path between
the store and the index: the database and the index always agree, also after a restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from inbox_daemon import keys
from inbox_daemon.lookup.follow import load_index
from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.notices.result import Buyer
from inbox_daemon.store import Store

from tests.conftest import TEST_KEYRING

from .store_builders import ingest, notice

RELAY = "abcdefghijklmno@marketplace.amazon.com"
OTHER_RELAY = "q2w3e4r5t6y7u8i@marketplace.amazon.de"
NOT_RELAY = "someone+tag@example.com"  # a tag outside the relay domains is the domain's own
# Every spelling of each buyer a notice, a CSV, a CHECK or an operator may use.
SPELLINGS: dict[str, tuple[str, ...]] = {
    RELAY: (RELAY, "abcdefghijklmno+x@marketplace.amazon.com", RELAY.upper(),
            "ABCDEFGHIJKLMNO+Promo.7@Marketplace.Amazon.com", f"<{RELAY}>"),
    OTHER_RELAY: (OTHER_RELAY, "q2w3e4r5t6y7u8i+a@marketplace.amazon.de"),
    NOT_RELAY: (NOT_RELAY, "SomeOne+Tag@Example.com"),
    "someone@example.com": ("someone@example.com",),
    "113-5663737-4342765": ("113-5663737-4342765", " 113-5663737-4342765 "),
    "D01-1234567-7654321": ("D01-1234567-7654321", "d01-1234567-7654321"),  # a digital order
    "D02-7777777-1111111": ("D02-7777777-1111111",),
}
EMAILS = [k for k in SPELLINGS if "@" in k]
ORDERS = [k for k in SPELLINGS if "@" not in k]


def _spelling(buyers: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(buyers).flatmap(lambda b: st.sampled_from(SPELLINGS[b]))


_operation = st.one_of(
    st.tuples(st.just("notice"), st.one_of(st.none(), _spelling(EMAILS)), st.one_of(st.none(), _spelling(ORDERS))),
    st.tuples(st.just("import"), st.one_of(st.none(), _spelling(EMAILS)), st.one_of(st.none(), _spelling(ORDERS))),
    st.tuples(st.just("remove"), _spelling(list(SPELLINGS)), st.none()),
    st.tuples(st.just("learn"), _spelling(EMAILS), _spelling(ORDERS)),  # CHECK <address> <order>
)


async def _empty(store: Store) -> None:
    async with store.engine.begin() as conn:
        for table in ("audit_log", "evidence", "blocklist_changes", "message_trust", "opt_outs", "raw_messages"):
            await conn.execute(text(f"DELETE FROM {table}"))


async def _blocked_in_database(store: Store, spelling: str) -> bool:
    return any(row.active for row in await store.find_opt_outs(spelling))


async def _check_agreement(store: Store, live: BlocklistIndex, followed: BlocklistIndex, model: dict[str, bool]) -> None:
    restarted = await load_index(store)
    for buyer, spellings in SPELLINGS.items():
        key = keys.parse(buyer)
        assert key is not None
        truth = await _blocked_in_database(store, buyer)
        assert model.get(buyer, truth) == truth, buyer
        for spelling in spellings:
            parsed = keys.parse(spelling)
            assert parsed == key, spelling  # every spelling is the one buyer
            assert await _blocked_in_database(store, spelling) == truth, spelling
            for name, index in (("live", live), ("followed", followed), ("restarted", restarted)):
                assert (index.check(parsed) is not None) == truth, (name, spelling, truth)


async def _follow(store: Store, cursor: Any) -> list[Any]:
    entries: list[Any] = []
    while True:
        entries += await store.changes_since(cursor)
        if not cursor.more:
            return entries


async def _run(store: Store, operations: list[tuple[str, str | None, str | None]]) -> None:
    await _empty(store)
    live = BlocklistIndex(secret=TEST_KEYRING.pseudonym_key)  # fed what each write returns, as the daemon does
    cursor = await store.change_cursor()
    live_cursor = await store.change_cursor()  # an import is another process: the daemon follows it
    followed = await load_index(store)
    for n, (verb, first, second) in enumerate(operations):
        model: dict[str, bool] = {}  # canonical key -> blocked, for the keys this operation decides
        if verb in ("notice", "import"):
            if first is None and second is None:
                continue
            buyer = Buyer(email=first, order_id=second, marketplace="marketplace.amazon.com")
            if verb == "notice":
                applied = await ingest(store, f"notice {n}".encode(), notice(buyer), minutes=n)
                entries = list(applied.entries)
            else:
                await store.import_buyers(f"import {n}".encode(), f"{n}.csv", [buyer], [], who="test")
                entries = await _follow(store, live_cursor)
            model.update({k.value: True for k in map(keys.parse, (first or "", second or "")) if k})
        elif verb == "remove":
            assert first is not None
            entries = await store.remove(first, reason="test", who="test")
            removed = keys.parse(first)
            assert removed is not None
            model[removed.value] = False
        else:
            assert first is not None and second is not None
            _, entries = await store.learn_address(second, first)
        live.apply(entries)
        followed.apply(await _follow(store, cursor))
        await _check_agreement(store, live, followed, model)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(_operation, min_size=1, max_size=10))
def test_database_and_index_agree_on_every_spelling(
    operations: list[tuple[str, str | None, str | None]], db_url: str, run: Callable[..., Any]
) -> None:
    async def main() -> None:
        async with await Store.open(db_url) as store:
            await _run(store, operations)

    run(main())


def test_removing_the_untagged_address_lifts_the_tagged_one_too(with_store: Any) -> None:
    """Rows for ``abc+x@`` and ``abc@`` are one buyer: removing one spelling lifts both rows, and
    the index and the database say so alike (before, the index said OK while a row stayed active)."""
    tagged = "abcdefghijklmno+x@marketplace.amazon.com"

    async def body(store: Store) -> None:
        live = BlocklistIndex(secret=TEST_KEYRING.pseudonym_key)
        for n, (email, order) in enumerate(((tagged, "113-5663737-4342765"), (RELAY, "114-1111111-2222222"))):
            live.apply((await ingest(store, f"n{n}".encode(), notice(Buyer(email, order, None)), minutes=n)).entries)
        live.apply(await store.remove(RELAY, reason="asked", who="op"))
        rows = await store.find_opt_outs(tagged)
        assert rows and not any(row.active for row in rows)
        assert live.check_address(tagged) is None
        assert (await load_index(store)).check_address(tagged) is None

    with_store(body)
