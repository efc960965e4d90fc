"""``db``: the schema (Alembic migrations)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import config_option, load

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
    from ..store.migrate import upgrade

    if cfg.is_embedded_sqlite:
        Path(cfg.state_dir).mkdir(parents=True, exist_ok=True)
    try:
        upgrade(cfg.database_url, revision)
    except Exception as exc:
        click.echo(f"inbox-daemon: upgrade failed: {exc}", err=True)
        sys.exit(2)
    click.echo(f"database at {revision}")
