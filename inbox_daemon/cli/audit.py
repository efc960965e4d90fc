"""``audit``: the audit trail."""

from __future__ import annotations

import click

from ..store import Store
from .common import emit, iso, json_option, with_store

__all__ = ["audit"]


@click.command("audit")
@click.option("--limit", default=50, show_default=True)
@click.option("--actor", default=None, help="Only changes by this user.")
@click.option("--action", default=None, help="Only this action (approve, remove, seller_add, ...).")
@json_option
@with_store
async def audit(store: Store, limit: int, actor: str | None, action: str | None, as_json: bool) -> None:
    """The audit trail, newest first: when, who, what, subject, detail."""
    for row in await store.audit_log(limit=limit, actor=actor, action=action):
        emit(row, f"{iso(row.at)}\t{row.actor}\t{row.action}\t{row.subject or '-'}\t{row.detail or ''}", as_json)
