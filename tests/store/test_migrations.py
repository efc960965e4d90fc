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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    url = str(request.getfixturevalue("pg_url"))
    migrate.downgrade(url, "base")  # the session database may be at head already
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

    from .store_builders import at, ingest, notice

    relay, order = "abcdefghijklmno@marketplace.amazon.com", "113-5663737-4342765"
    migrate.upgrade(empty_url, "0006")

    async def before() -> None:
        async with await Store.open(empty_url) as store:
            await ingest(store, b"n1", notice(Buyer(relay, None, None)), minutes=5)
            for n, (email, order_id) in enumerate((("x1@marketplace.amazon.com", None), ("x2@marketplace.amazon.com", order))):
                await ingest(store, f"n{n + 2}".encode(), notice(Buyer(email, order_id, None)), minutes=n)
            await store.remove("x1@marketplace.amazon.com", reason="asked", who="op")
            async with store.engine.begin() as conn:  # as the earlier version stored them
                await conn.execute(text("UPDATE opt_outs SET email = 'abcdefghijklmno+x@marketplace.amazon.com'"
                                        " WHERE email = 'x1@marketplace.amazon.com'"))
                await conn.execute(text("UPDATE opt_outs SET email = 'abcdefghijklmno+y@marketplace.amazon.com'"
                                        " WHERE email = 'x2@marketplace.amazon.com'"))

    async def after() -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        async with await Store.open(empty_url) as store:
            rows = await store.find_opt_outs(relay)
            evidence = [await store.evidence_details(row.id) for row in rows]
            trail = await store.audit_log(opt_out_ids=[row.id for row in rows])
            return rows, evidence, trail, [e async for e in store.iter_index()]

    run(before())
    migrate.upgrade(empty_url)
    rows, evidence, trail, index = run(after())
    address_only = [r for r in rows if r.order_id is None]
    (merged,) = address_only
    (with_order,) = [r for r in rows if r.order_id == order]
    assert with_order.email == relay
    assert (merged.first_seen, merged.last_seen, merged.notice_count, merged.active) == (at(0), at(5), 2, True)
    assert merged.removed_by == "op"  # the removal of the merged row stays on record
    merged_evidence = evidence[rows.index(merged)]
    assert len(merged_evidence) == 2
    assert {"remove", "merge"} <= {entry.action for entry in trail}
    assert [(e.kind, e.value, e.count) for e in index if e.kind == "email"] == [("email", relay, 3)]
