"""``quarantine``: kept messages that applied nothing — held notices, look-alikes, damaged
mail — to list, show, approve, discard, or run through the current parser and rules again."""

from __future__ import annotations

import click

from ..config import Config
from ..store import Store
from .common import by_option, emit, fail, iso, json_option, refusable, who as login, with_store

__all__ = ["quarantine"]


@click.group()
def quarantine() -> None:
    """Kept messages that applied nothing: held notices, look-alikes, damaged mail."""


@quarantine.command("list")
@click.option("--outcome", type=click.Choice(["quarantined", "not_opt_out", "malformed", "error"]),
              help="Only one outcome (default: all four).")
@click.option("--limit", default=50, show_default=True)
@json_option
@with_store
async def quarantine_list(store: Store, outcome: str | None, limit: int, as_json: bool) -> None:
    """List unapplied messages, newest first: id, received, outcome, seller, DKIM, reason."""
    rows = await store.list_held((outcome,), limit) if outcome else await store.list_held(limit=limit)
    for row in rows:
        emit(row, f"{row.id}\t{iso(row.received_at)}\t{row.outcome}\t{row.seller or '-'}\t"
                  f"{row.forwarder or '-'}\tdkim {row.dkim or '-'}\t{row.reason or ''}", as_json)


@quarantine.command("show")
@click.argument("raw_id", type=int, metavar="ID")
@json_option
@with_store
async def quarantine_show(store: Store, raw_id: int, as_json: bool) -> None:
    """Show message ID with what the admission step knew and decided."""
    row = await store.get_held(raw_id)
    if row is None:
        fail(f"no message {raw_id}")
    if as_json:
        emit({"message": {n: getattr(row, n) for n in row.__dataclass_fields__}, "trust": await store.trust_of(raw_id)},
             "", True)
        return
    for name in ("id", "received_at", "source", "outcome", "reason", "parser_version", "forwarder", "seller"):
        value = getattr(row, name)
        click.echo(f"{name}: {iso(value) if hasattr(value, 'isoformat') else value}")
    for name, value in (await store.trust_of(raw_id) or {}).items():
        if name not in ("raw_message_id", "seller_id", "forwarder"):
            click.echo(f"{name}: {iso(value) if hasattr(value, 'isoformat') else value}")


@quarantine.command("approve")
@click.argument("raw_id", type=int, metavar="ID")
@click.option("--note", default="", help="Why (kept in the audit trail).")
@by_option
@with_store
async def quarantine_approve(store: Store, cfg: Config, raw_id: int, note: str, who: str | None) -> None:
    """Apply held message ID (parsed again with the current parser)."""
    from ..processing import load_parser
    from ..processing.review import approve_held

    parser = load_parser(cfg.parser.module)
    applied = await refusable(approve_held(store, parser, raw_id, who=login(who), note=note))
    click.echo(f"approved {raw_id}: {applied.buyers_new} new, {applied.buyers_updated} updated")


@quarantine.command("discard")
@click.argument("raw_id", type=int, metavar="ID")
@click.option("--reason", default="discarded by the operator", help="Why (kept in the audit trail).")
@by_option
@with_store
async def quarantine_discard(store: Store, raw_id: int, reason: str, who: str | None) -> None:
    """Discard held message ID: kept, never applied, no longer listed as held."""
    from ..processing.review import discard_held

    await refusable(discard_held(store, raw_id, who=login(who), reason=reason))
    click.echo(f"discarded {raw_id}")


@quarantine.command("reprocess")
@click.option("--all", "every", is_flag=True,
              help="Every unapplied message, not only those an older parser read (held ones are always retried).")
@by_option
@with_store
async def quarantine_reprocess(store: Store, cfg: Config, every: bool, who: str | None) -> None:
    """Run the current parser and trust rules over kept, unapplied messages; apply what passes."""
    from ..processing import build_flow
    from ..processing.review import outcome_summary, reprocess_kept

    flow = build_flow(cfg, store)
    await flow.start()
    try:
        outcomes = await reprocess_kept(store, flow.processor, every=every, who=login(who))
    finally:
        await flow.stop()
    click.echo(f"reprocessed with parser {flow.processor.parser.version}: {outcome_summary(outcomes)}")
