"""``audit``: the audit trail."""

from __future__ import annotations

import click

from ..store import Store
from .common import iso, with_store

__all__ = ["audit"]


@click.command("audit")
@click.option("--limit", default=50, show_default=True)
@with_store
async def audit(store: Store, limit: int) -> None:
    """The audit trail, newest first: when, who, what, subject, detail."""
    for row in await store.audit_log(limit=limit):
        click.echo(f"{iso(row.at)}\t{row.actor}\t{row.action}\t{row.subject or '-'}\t{row.detail or ''}")
