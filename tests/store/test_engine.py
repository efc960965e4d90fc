"""Plain URLs map to the async drivers; explicit drivers are left alone."""

from __future__ import annotations

import pytest

from inbox_daemon.store.engine import async_url


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:////var/lib/inbox-daemon/inbox.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///inbox.db", "sqlite+aiosqlite"),
        ("postgresql://u:p%40ss@db:5432/inbox", "postgresql+asyncpg"),
        ("postgres://u@db/inbox", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@db/inbox", "postgresql+asyncpg"),
    ],
)
def test_async_url(given: str, driver: str) -> None:
    url = async_url(given)
    assert url.drivername == driver
    assert url.database is not None and url.database.endswith(("inbox.db", "inbox"))


def test_a_password_survives() -> None:
    assert async_url("postgresql://u:p%40ss@db/inbox").password == "p@ss"
