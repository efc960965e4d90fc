"""``db``: the schema (Alembic migrations)."""

from __future__ import annotations

import sys

import click

from ..config import Config
from .common import config_option, load, run

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
    from ..store.migrate import upgrade

    secure_state(cfg)  # the state directory and a new SQLite file get their modes before Alembic
    try:
        upgrade(cfg.database_url, revision)
    except Exception as exc:
        click.echo(f"inbox-daemon: upgrade failed: {exc}", err=True)
        sys.exit(2)
    click.echo(f"database at {revision}")
    if revision == "head":
        run(_seal_plain(cfg))


async def _seal_plain(cfg: Config) -> None:
    """Seal the raw messages kept plain before sealing existed (a migration does not hold the
    key), creating the privacy key file if there is none yet (docs/privacy.md)."""
    from tqdm import tqdm

    from ..daemon import open_keyring
    from ..processing.privacy import reseal
    from ..store import Store

    async with await Store.open(cfg.database_url) as store:
        total = await store.count_to_reseal(plain_only=True)
        if total:  # a new database gets its key file at the first start (no state folder before)
            store.keyring = open_keyring(cfg, create=True)
            with tqdm(total=total, unit="msg", desc="seal", disable=None, mininterval=0.2) as bar:
                done = await reseal(store, plain_only=True, on_batch=bar.update)
            await store.drop_old_pages()
            click.echo(f"{done.resealed} stored messages sealed")
