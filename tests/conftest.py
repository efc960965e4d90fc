"""Shared fixtures: a way to run a coroutine under a timeout, and a throwaway database for
each engine; and the ``slow`` mark, put here on every test that runs real processes.

Slow: a test that starts a daemon process, Dovecot, Postfix or a PostgreSQL cluster of its own,
or builds the wheel, directly, through a fixture or through a helper of the test suite
(found by following the names its code uses); the few other slow tests are marked where they
are written. ``pytest -m "not slow"`` is the quick loop; CI runs everything.

PostgreSQL: a database ``inbox_test_<random>`` is made on the server named by
``INBOX_DAEMON_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) for the
session and dropped at its end, so parallel runs do not collide. When the server cannot be
reached the PostgreSQL tests fail under CI (``CI`` set) and are skipped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import types
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from inbox_daemon import keys
from inbox_daemon.privacy import new_keyring
from inbox_daemon.store import Store
from tests.intake.dovecot import Dovecot, dovecot_binary

T = TypeVar("T")

ASYNC_TEST_TIMEOUT_S = 30.0
PG_ADMIN_URL = os.environ.get(
    "INBOX_DAEMON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def run_async(coro: Coroutine[Any, Any, T], timeout: float = ASYNC_TEST_TIMEOUT_S) -> T:
    """Run a coroutine on a fresh event loop, failing it after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def run() -> Callable[..., Any]:
    return run_async


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests copy it (cheaper than migrating)."""
    from inbox_daemon.store import migrate

    path = tmp_path_factory.mktemp("template") / "migrated.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_path(tmp_path: Path, sqlite_template: Path) -> Path:
    """An empty SQLite database at the head revision (a copy: migrating per test is slow)."""
    path = tmp_path / "inbox.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inbox.db'}"


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def _throwaway_pg_database() -> Iterator[str]:
    """A new database on the local server, dropped afterwards; fail in CI if the server is down."""
    name = f"inbox_test_{secrets.token_hex(6)}"
    try:
        run_async(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as error:
        message = f"PostgreSQL at {PG_ADMIN_URL} unavailable: {error!r}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    run_async(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with _throwaway_pg_database() as url:
        yield url


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A database of this test's own (end-to-end tests that run daemons against it)."""
    with _throwaway_pg_database() as url:
        yield url


def _need_dovecot() -> None:
    """Dovecot must run, not skip, under CI."""
    if dovecot_binary() is None:
        message = "dovecot is not installed (bash .ci/install-dovecot.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A real Dovecot on a loopback port with one account (``tests/intake/dovecot.py``)."""
    _need_dovecot()
    with Dovecot.running() as server:
        yield server


@pytest.fixture
def dovecot_factory() -> Iterator[type[Dovecot]]:
    """For tests that need a Dovecot with other capabilities (``Dovecot.running(capability=…)``)."""
    _need_dovecot()
    yield Dovecot


def _slow_helpers() -> list[Any]:
    """What makes a test slow when its code (or a fixture's, or a helper's) reaches it."""
    from tests.support import daemon, installed, pgcluster, postfix

    return [daemon.DaemonProcess, daemon.EXE, Dovecot, postfix.PostfixInstance, pgcluster.PgCluster,
            pgcluster.throwaway_cluster, installed.build, installed.make_venv]


def _reaches(code: types.CodeType, scope: dict[str, Any], slow: list[Any], seen: set[int]) -> bool:
    """True when ``code`` names one of ``slow``, or calls a function of the test suite that does."""
    if id(code) in seen:
        return False
    seen.add(id(code))
    for name in code.co_names:
        found = scope.get(name)
        if found is None:
            continue
        if any(found is s for s in slow):
            return True
        inner = getattr(found, "__wrapped__", found)
        if isinstance(inner, types.FunctionType) and inner.__module__.startswith("tests"):
            if _reaches(inner.__code__, inner.__globals__, slow, seen):
                return True
    return any(isinstance(c, types.CodeType) and _reaches(c, scope, slow, seen) for c in code.co_consts)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow = _slow_helpers()
    for item in items:
        if item.get_closest_marker("slow") or not isinstance(item, pytest.Function):
            continue
        funcs = [item.function] + [d.func for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs]
        seen: set[int] = set()
        for func in funcs:
            inner = getattr(func, "__wrapped__", func)
            if isinstance(inner, types.FunctionType) and _reaches(inner.__code__, inner.__globals__, slow, seen):
                item.add_marker(pytest.mark.slow)
                break


TEST_KEYRING = new_keyring()  # the privacy key of every Store a test opens by hand


def stored(text: str) -> str:
    """What the blocklist keeps for a key under ``TEST_KEYRING``: its pseudonym in hex."""
    parsed = keys.parse(text)
    assert parsed is not None, "not a key"
    return parsed.stored(TEST_KEYRING)


@pytest.fixture(autouse=True)
def _store_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Store opened by hand (not through ``daemon.open_store``, which reads the key file) gets
    ``TEST_KEYRING``: the blocklist stores keys only as pseudonyms."""
    monkeypatch.setattr(Store, "keyring", TEST_KEYRING)
    opened = Store.__init__

    def with_test_keyring(self: Store, engine: Any, keyring: Any = None) -> None:
        opened(self, engine, TEST_KEYRING if keyring is None else keyring)

    monkeypatch.setattr(Store, "__init__", with_test_keyring)
