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

