"""Make and move the schema with Alembic, configured in code (there is no alembic.ini).

The scripts live in ``migrations/`` at the top of the source tree and are installed as the
package ``inbox_daemon.migrations`` (setuptools ``package-dir``), so an installed wheel and an
editable checkout find them the same way: through ``importlib.resources``.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from ..keys import Pseudonyms
from .engine import make_engine, unavailable

__all__ = ["migrations_dir", "config", "upgrade", "downgrade", "current", "head"]

MIGRATIONS_PACKAGE = "inbox_daemon.migrations"


def migrations_dir() -> Path:
    """The directory holding ``env.py`` and ``versions/``. Alembic reads scripts from the file
    system, so a package imported from a zip archive is refused with a clear error."""
    root = resources.files(MIGRATIONS_PACKAGE)
    if not isinstance(root, Path) or not (root / "env.py").is_file():
        raise FileNotFoundError(f"Alembic migrations of {MIGRATIONS_PACKAGE} are not on the file system: {root}")
    return root


def config(url: str, keyring: Pseudonyms | None = None) -> Config:
    """An Alembic Config for this database. ``migrations/env.py`` reads ``url`` from
    ``attributes`` (not from an ini option, where ``%`` in a password would be interpolated);
    revisions that pseudonymise keys read ``keyring`` there (never written to any file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["url"] = url
    cfg.attributes["keyring"] = keyring
    return cfg


def upgrade(url: str, revision: str = "head", *, keyring: Pseudonyms | None = None) -> None:
    """Upgrade the schema (creating it on an empty database). Runs its own event loop: from
    async code call it through ``asyncio.to_thread``. ``keyring``: the privacy key the
    database's keys are pseudonymised with (revision 0010 needs it where rows hold plain keys)."""
    command.upgrade(config(url, keyring), revision)


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
