"""``quarantine``: kept messages that applied nothing — held notices, look-alikes, damaged
mail — to list, show, approve, discard, or run through the current parser and rules again."""

from __future__ import annotations

import click

from ..config import Config
from ..store import Store
from .common import by_option, fail, iso, refusable, who as login, with_store

__all__ = ["quarantine"]


@click.group()
def quarantine() -> None:
    """Kept messages that applied nothing: held notices, look-alikes, damaged mail."""


@quarantine.command("list")
@click.option("--outcome", type=click.Choice(["quarantined", "not_opt_out", "malformed", "error"]),
              help="Only one outcome (default: all four).")
@click.option("--limit", default=50, show_default=True)
@with_store
async def quarantine_list(store: Store, outcome: str | None, limit: int) -> None:
    """List unapplied messages, newest first: id, received, outcome, seller, DKIM, reason."""
    rows = await store.list_held((outcome,), limit) if outcome else await store.list_held(limit=limit)
    for row in rows:
        click.echo(f"{row.id}\t{iso(row.received_at)}\t{row.outcome}\t{row.seller or '-'}\t"
                   f"{row.forwarder or '-'}\tdkim {row.dkim or '-'}\t{row.reason or ''}")


@quarantine.command("show")
@click.argument("raw_id", type=int, metavar="ID")
@with_store
async def quarantine_show(store: Store, raw_id: int) -> None:
    """Show message ID with what the admission step knew and decided."""
    row = await store.get_held(raw_id)
    if row is None:
        fail(f"no message {raw_id}")
    for name in ("id", "received_at", "source", "outcome", "reason", "parser_version", "forwarder", "seller"):
        value = getattr(row, name)
        click.echo(f"{name}: {iso(value) if hasattr(value, 'isoformat') else value}")
    for name, value in (await store.trust_of(raw_id) or {}).items():
        if name not in ("raw_message_id", "seller_id", "forwarder"):
            click.echo(f"{name}: {iso(value) if hasattr(value, 'isoformat') else value}")


@quarantine.command("approve")
@click.argument("raw_id", type=int, metavar="ID")
@by_option
@with_store
async def quarantine_approve(store: Store, cfg: Config, raw_id: int, who: str | None) -> None:
    """Apply held message ID (parsed again with the current parser)."""
    from ..processing import load_parser

    parser = load_parser(cfg.parser.module)
    if await store.get_held(raw_id) is None:
        fail(f"no message {raw_id}")
    record = await store.load_raw(raw_id)
    if record.unreadable:
        fail(f"message {raw_id}: {record.unreadable}")
    applied = await refusable(store.approve(raw_id, parser.parse(record.data), parser_version=parser.version, who=login(who)))
    click.echo(f"approved {raw_id}: {applied.buyers_new} new, {applied.buyers_updated} updated")


@quarantine.command("discard")
@click.argument("raw_id", type=int, metavar="ID")
@click.option("--reason", default="discarded by the operator", help="Why (kept in the audit trail).")
@by_option
@with_store
async def quarantine_discard(store: Store, raw_id: int, reason: str, who: str | None) -> None:
    """Discard held message ID: kept, never applied, no longer listed as held."""
    await refusable(store.discard(raw_id, who=login(who), reason=reason))
    click.echo(f"discarded {raw_id}")


@quarantine.command("reprocess")
@click.option("--all", "every", is_flag=True,
              help="Every unapplied message, not only those an older parser read (held ones are always retried).")
@with_store
async def quarantine_reprocess(store: Store, cfg: Config, every: bool) -> None:
    """Run the current parser and trust rules over kept, unapplied messages; apply what passes."""
    from ..processing import build_flow

    flow = build_flow(cfg, store)
    await flow.start()
    outcomes: dict[str, int] = {}
    try:
        after, version = 0, flow.processor.parser.version
        while ids := await store.reprocess_ids(version, every=every, after=after, limit=500):
            for done in await flow.processor.process(ids):
                outcomes[done.outcome] = outcomes.get(done.outcome, 0) + 1
            after = ids[-1]
    finally:
        await flow.stop()
    summary = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "nothing to do"
    click.echo(f"reprocessed with parser {version}: {summary}")
