"""Make and move the schema with Alembic, configured in code (there is no alembic.ini).

The scripts live in ``migrations/`` at the top of the repository, found next to the package:
that is where an editable install (``pip install -e .``, as README and CI use) has them. A
non-editable install has no ``migrations/`` beside the package; it looks for a copy at
``inbox_daemon/_migrations`` instead, which packaging would have to provide (not done yet).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

import inbox_daemon

from .engine import WRITE, make_engine, unavailable

__all__ = [
    "migrations_dir",
    "config",
    "upgrade",
    "downgrade",
    "current",
    "head",
    "upgrade_async",
]


def migrations_dir() -> Path:
    package = Path(inbox_daemon.__file__).resolve().parent
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"no Alembic migrations next to {package}")


def config(url: str, connection: Connection | None = None) -> Config:
    """An Alembic Config for this database. ``migrations/env.py`` reads ``url`` from
    ``attributes`` (not from an ini option, where ``%`` in a password would be interpolated)
    and uses ``connection`` when given instead of making its own engine."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["url"] = url
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the schema (creating it on an empty database). Not from inside a running event
    loop: use ``upgrade_async`` there."""
    command.upgrade(config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(config(url), revision)


def head() -> str | None:
    return ScriptDirectory.from_config(config("")).get_current_head()


def current(url: str) -> str | None:
    """The revision the database is at; None for an empty database."""
    return asyncio.run(_current(url))


async def _current(url: str) -> str | None:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with unavailable(), engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


async def upgrade_async(url: str, revision: str = "head") -> None:
    """``upgrade`` for a caller already on an event loop (``serve`` on an embedded SQLite)."""
    engine = make_engine(url, poolclass=NullPool, execution_options={WRITE: True})
    try:
        async with unavailable(), engine.connect() as conn:
            await conn.run_sync(lambda sync: command.upgrade(config(url, sync), revision))
            await conn.commit()
    finally:
        await engine.dispose()
