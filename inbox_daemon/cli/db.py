"""``db``: the schema (Alembic migrations)."""

from __future__ import annotations

import sys

import click

from .common import EX_CONFIG, config_option, load

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
        upgrade(cfg.database_url, revision)
    except Exception as exc:
        if is_refused(exc):  # wrong credentials or no such database: the configuration is wrong
            click.echo(f"inbox-daemon: config error: database refused the connection: {driver_message(exc)}", err=True)
            sys.exit(EX_CONFIG)
        click.echo(f"inbox-daemon: upgrade failed: {driver_message(exc)}", err=True)
        sys.exit(2)
    click.echo(f"database at {revision}")
