"""``db``: the schema (Alembic migrations)."""

from __future__ import annotations

import sys

import click

from ..config import Config
from ..errors import ConfigError
from ..privacy import KeyRing
from .common import EX_CONFIG, config_option, load, run

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@config_option
def db_upgrade(revision: str, config_path: str | None) -> None:
    """Create or upgrade the schema to REVISION."""
    cfg = load(config_path)
    from ..state import secure_state
    from ..store.engine import driver_message, is_refused
    from ..store.migrate import upgrade

    secure_state(cfg)  # the state directory and a new SQLite file get their modes before Alembic
    try:
        keyring = _bind_key(cfg)  # a database written with another key is refused before any change
        upgrade(cfg.database_url, revision, keyring=keyring)  # 0010 pseudonymises plain keys with it
        _bind_key(cfg)  # creates the key file (0600) and records its check value when new
    except ConfigError as exc:  # the key does not match, or the database refused us (StoreRefused)
        click.echo(f"inbox-daemon: config error: {exc}", err=True)
        sys.exit(EX_CONFIG)
    except Exception as exc:
        if is_refused(exc):  # wrong credentials or no such database: the configuration is wrong
            click.echo(f"inbox-daemon: config error: database refused the connection: {driver_message(exc)}", err=True)
            sys.exit(EX_CONFIG)
        click.echo(f"inbox-daemon: upgrade failed: {driver_message(exc)}", err=True)
        sys.exit(2)
    click.echo(f"database at {revision}")
    if revision == "head":
        run(_seal_plain(cfg))


def _bind_key(cfg: Config) -> KeyRing:
    """The privacy key matched to the database (``daemon.open_store``), once the schema can
    hold its check value; before that there is nothing to match."""
    from ..daemon import open_store

    async def bind() -> KeyRing:
        store = await open_store(cfg)
        await store.close()
        assert store.keyring is not None  # open_store sets it
        return store.keyring

    return run(bind())


async def _seal_plain(cfg: Config) -> None:
    """Seal the raw messages kept plain before sealing existed (a migration does not hold the
    key), under the key just bound to the database (docs/privacy.md)."""
    from tqdm import tqdm

    from ..daemon import open_store
    from ..processing.privacy import reseal

    store = await open_store(cfg)
    try:
        total = await store.count_to_reseal(plain_only=True)
        if total:
            with tqdm(total=total, unit="msg", desc="seal", disable=None, mininterval=0.2) as bar:
                done = await reseal(store, plain_only=True, on_batch=bar.update)
            await store.drop_old_pages()
            click.echo(f"{done.resealed} stored messages sealed")
    finally:
        await store.close()
