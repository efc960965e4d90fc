"""Every revision walks up, down and up again on both engines, and at head the database
agrees with the models (Mailman's database/tests/test_migrations.py does the same)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

from inbox_daemon.store import migrate
from inbox_daemon.store.engine import make_engine
from inbox_daemon.store.schema import Base
from tests.conftest import TEST_KEYRING, stored
from tests.store.conftest import _truncate


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    url = str(request.getfixturevalue("pg_url"))
    # The session database may be at head already, holding sealed rows other tests left, which
    # 0010 refuses to downgrade over: empty it at head first.
    migrate.upgrade(url, keyring=TEST_KEYRING)
    request.getfixturevalue("run")(_truncate(url))
    migrate.downgrade(url, "base")
    return url


def revisions() -> list[str]:
    scripts = ScriptDirectory.from_config(migrate.config(""))
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]


def test_revisions_form_one_line() -> None:
    scripts = ScriptDirectory.from_config(migrate.config(""))
    assert revisions()[0] == "0001"
    assert scripts.get_heads() == [revisions()[-1]]


@pytest.mark.slow
def test_walk_every_revision_up_down_up(empty_url: str) -> None:
    assert migrate.current(empty_url) is None
    previous = "base"
    for revision in revisions():
        migrate.upgrade(empty_url, revision)
        assert migrate.current(empty_url) == revision
        migrate.downgrade(empty_url, previous)
        assert migrate.current(empty_url) == (None if previous == "base" else previous)
        migrate.upgrade(empty_url, revision)
        previous = revision
    assert migrate.current(empty_url) == migrate.head()


def _differences(sync: Connection) -> list[Any]:
    context = MigrationContext.configure(sync, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def test_models_match_migrations(empty_url: str, run: Callable[..., Any]) -> None:
    migrate.upgrade(empty_url)

    async def compare() -> list[Any]:
        engine = make_engine(empty_url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(_differences)
        finally:
            await engine.dispose()

    assert run(compare()) == []



def test_buyer_keys_upgrade_drops_relay_tags_and_merges_one_buyers_rows(empty_url: str, run: Callable[..., Any]) -> None:
    """Rows an earlier version wrote with a relay address's +tag take the canonical form;
    address-only rows of one buyer become one row with all their evidence, counts and trail."""
    from sqlalchemy import text

    from inbox_daemon.notices.result import Buyer
    from inbox_daemon.store import Store

    from .store_builders import apply_result, at, notice, save_raw

    relay, order = "abcdefghijklmno@marketplace.amazon.com", "113-5663737-4342765"
    migrate.upgrade(empty_url, "0006")

    async def ingest(store: Store, body: bytes, result: Any, *, minutes: int) -> None:
        ring, store.keyring = store.keyring, None  # raw bytes as revision 0006 kept them: unsealed
        saved = await save_raw(store, body, source="smtp", received_at=at(minutes))
        store.keyring = ring
        await apply_result(store, saved.id, result, parser_version="test-1")

    async def before() -> None:
        async with await Store.open(empty_url) as store:
            await ingest(store, b"n1", notice(Buyer(relay, None, None)), minutes=5)
            for n, (email, order_id) in enumerate((("x1@marketplace.amazon.com", None), ("x2@marketplace.amazon.com", order))):
                await ingest(store, f"n{n + 2}".encode(), notice(Buyer(email, order_id, None)), minutes=n)
            await store.remove("x1@marketplace.amazon.com", reason="asked", who="op")
            async with store.engine.begin() as conn:  # as the earlier version stored them: plain
                for was, plain in ((stored("x1@marketplace.amazon.com"), "abcdefghijklmno+x@marketplace.amazon.com"),
                                   (stored("x2@marketplace.amazon.com"), "abcdefghijklmno+y@marketplace.amazon.com"),
                                   (stored(relay), relay)):
                    await conn.execute(text("UPDATE opt_outs SET email = :p WHERE email = :w"), {"p": plain, "w": was})
                await conn.execute(text("UPDATE opt_outs SET order_id = :p WHERE order_id = :w"),
                                   {"p": order, "w": stored(order)})

    async def after() -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        async with await Store.open(empty_url) as store:
            rows = await store.find_opt_outs(relay)
            evidence = [await store.evidence_details(row.id) for row in rows]
            trail = await store.audit_log(opt_out_ids=[row.id for row in rows])
            return rows, evidence, trail, [e async for e in store.iter_index()]

    run(before())
    migrate.upgrade(empty_url, keyring=TEST_KEYRING)
    rows, evidence, trail, index = run(after())
    address_only = [r for r in rows if r.order_id is None]
    (merged,) = address_only
    (with_order,) = [r for r in rows if r.order_id == stored(order)]
    assert with_order.email == stored(relay)
    assert (merged.first_seen, merged.last_seen, merged.notice_count, merged.active) == (at(0), at(5), 2, True)
    assert merged.removed_by == "op"  # the removal of the merged row stays on record
    merged_evidence = evidence[rows.index(merged)]
    assert len(merged_evidence) == 2
    assert {"remove", "merge"} <= {entry.action for entry in trail}
    assert [(e.kind, e.value, e.count) for e in index if e.kind == "email"] == [("email", stored(relay), 3)]


def upgraded_only_with_the_key(url: str, revision: str, dump: Callable[[], Any]) -> Any:
    """A revision that digests or seals with the key ring: without one the upgrade is refused
    and leaves ``dump()`` and the revision (``revision``) as they were; with it, it runs.
    Returns ``dump()`` after."""
    plain = dump()
    with pytest.raises(RuntimeError, match="no privacy key"):
        migrate.upgrade(url)
    assert dump() == plain and migrate.current(url) == revision
    migrate.upgrade(url, keyring=TEST_KEYRING)
    return dump()


def test_pseudonyms_upgrade_leaves_no_plain_key(empty_url: str, run: Callable[..., Any]) -> None:
    """Rows, audit subjects and audit details written in plain text before revision 0011 hold
    pseudonyms after it, and every key still finds its row; without the key ring the upgrade
    is refused and changes nothing."""
    from sqlalchemy import text

    from inbox_daemon.store import Store

    relay, order, odd = "abcdefghijklmno@marketplace.amazon.com", "113-5663737-4342765", "not-an-order"
    migrate.upgrade(empty_url, "0010")

    async def before() -> None:
        async with await Store.open(empty_url) as store, store.engine.begin() as conn:
            for order_id, email in ((order, relay), (odd, None)):
                await conn.execute(text("INSERT INTO opt_outs (order_id, email, first_seen, last_seen, notice_count,"
                                        " active) VALUES (:o, :e, '2024-01-01 00:00:00', '2024-01-01 00:00:00', 1, true)"),
                                   {"o": order_id, "e": email})
            await conn.execute(text("INSERT INTO audit_log (at, actor, action, subject, opt_out_id, detail) VALUES"
                                    " ('2024-01-01 00:00:00', 'query uid 1', 'learn', :s, 1, :d)"),
                               {"s": relay, "d": f"CHECK named {relay} with blocked order {order}: recorded"})

    async def dump() -> str:
        async with await Store.open(empty_url) as store, store.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT order_id, email FROM opt_outs"))).all()
            rows += (await conn.execute(text("SELECT subject, detail FROM audit_log"))).all()
            return repr(rows)

    async def found() -> list[int]:
        async with await Store.open(empty_url) as store:
            return [len(await store.find_opt_outs(key)) for key in (relay, order, odd)]

    run(before())
    converted = upgraded_only_with_the_key(empty_url, "0010", lambda: run(dump()))
    assert relay not in converted and order not in converted and odd not in converted
    assert stored(relay) in converted and stored(order) in converted
    assert run(found()) == [1, 1, 1]


def test_message_ids_upgrade_keeps_only_their_digests(empty_url: str, run: Callable[..., Any]) -> None:
    """Message-IDs written in plain text before revision 0012 (they may quote an order id) hold
    their keyed digests after it; without the key ring the upgrade is refused and changes nothing."""
    from sqlalchemy import text

    from inbox_daemon.keys import message_id_stored
    from inbox_daemon.store import Store

    notice_id, own_id = "notice-113-5663737-4342765-0@email.amazonses.com", "<abc-113-5663737-4342765@seller.example>"
    migrate.upgrade(empty_url, "0011")

    async def before() -> None:
        async with await Store.open(empty_url) as store, store.engine.begin() as conn:
            await conn.execute(text("INSERT INTO raw_messages (sha256, data, size, source, envelope_to, received_at,"
                                    " times_received, outcome, message_id) VALUES ('ab', :d, 1, 'smtp', '[]',"
                                    " '2024-01-01 00:00:00', 1, 'opt_out', :m)"), {"d": b"x", "m": own_id})
            await conn.execute(text("INSERT INTO opt_outs (order_id, first_seen, last_seen, notice_count, active)"
                                    " VALUES (:o, '2024-01-01 00:00:00', '2024-01-01 00:00:00', 1, true)"),
                               {"o": stored("113-5663737-4342765")})
            await conn.execute(text("INSERT INTO evidence (raw_message_id, opt_out_id, notice_message_id, seen_at)"
                                    " VALUES (1, 1, :n, '2024-01-01 00:00:00')"), {"n": notice_id})

    async def dump() -> list[Any]:
        async with await Store.open(empty_url) as store, store.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT notice_message_id FROM evidence"))).all()
            return [*rows, *(await conn.execute(text("SELECT message_id FROM raw_messages"))).all()]

    run(before())
    converted = upgraded_only_with_the_key(empty_url, "0011", lambda: run(dump()))
    assert [tuple(r) for r in converted] == [(message_id_stored(TEST_KEYRING, m),) for m in (notice_id, own_id)]
    migrate.downgrade(empty_url, "0011")
    migrate.upgrade(empty_url)  # digests are left as they are: no key ring needed
    assert migrate.current(empty_url) == migrate.head()
