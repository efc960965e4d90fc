"""A migrated, empty database per test on each engine, and a way to run a body against a
Store opened on it."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from inbox_daemon.store import Store, migrate
from inbox_daemon.store.engine import make_engine
from tests.conftest import TEST_KEYRING

T = TypeVar("T")

TABLES = "raw_messages, opt_outs, evidence, blocklist_changes, sellers"  # CASCADE: the rest


async def _truncate(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture
def pg_db_url(pg_url: str, run: Callable[..., Any]) -> str:
    """The session's PostgreSQL database, at the head revision and emptied."""
    migrate.upgrade(pg_url)  # a no-op at head; the migration tests may have walked it down
    run(_truncate(pg_url))
    return pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database at the head revision, on each engine."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_db_url"))
    path = tmp_path / "inbox.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


StoreBody = Callable[[Store], Awaitable[T]]


@pytest.fixture
def with_store(db_url: str, run: Callable[..., Any]) -> Callable[[StoreBody[Any]], Any]:
    """``with_store(body)`` runs ``await body(store)`` on a fresh loop and closes the store,
    which seals raw messages under a fresh key ring as the daemon's does."""

    def go(body: StoreBody[T]) -> T:
        async def main() -> T:
            async with await Store.open(db_url, keyring=TEST_KEYRING) as store:
                return await body(store)

        return run(main())  # type: ignore[no-any-return]

    return go
