"""Alembic environment, async-aware; configured by ``inbox_daemon.store.migrate``.

Installed as ``inbox_daemon.migrations`` (see ``package-dir`` in pyproject.toml)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

from inbox_daemon.store.engine import WRITE, async_url, make_engine
from inbox_daemon.store.schema import Base

config = context.config
url: str = config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or ""
target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later revisions copy-and-move the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = make_engine(url, poolclass=NullPool, execution_options={WRITE: True})
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=async_url(url), target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_async())
