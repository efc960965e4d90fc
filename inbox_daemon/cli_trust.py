"""Operator commands of the trust work (issue 5): ``sellers``, ``forwarders``, ``quarantine``,
``audit`` and ``blocklist import``. Registered on the ``inbox-daemon`` group by ``cli``; they
follow its pattern: ``with_store`` opens the configured store, every command has ``--config``
and ``--help``; exit 0 done, 1 not found or refused, 2 usage, 78 bad configuration.

A running daemon learns of every change here through the change sequence (within
``query.sync_seconds``); nothing needs a restart.
"""

from __future__ import annotations

import csv
import getpass
import io
import sys
from pathlib import Path
from collections.abc import Awaitable
from typing import Any, NoReturn, TypeVar

import click

from .cli import _iso, with_store
from .config import Config
from .trust import seller_address

__all__ = ["sellers", "forwarders", "quarantine", "audit", "blocklist_import"]

T = TypeVar("T")

by_option = click.option("--by", "who", default=None, help="Who does it, for the audit trail (default: login name).")


def _who(who: str | None) -> str:
    return who or getpass.getuser()


def _fail(message: str) -> NoReturn:
    click.echo(f"inbox-daemon: {message}", err=True)
    sys.exit(1)


async def _refusable(change: Awaitable[T]) -> T:
    """Await a store change; a refusal (no such thing, already there) exits 1 with the reason."""
    try:
        return await change
    except (ValueError, LookupError) as exc:
        _fail(str(exc))


def _address_base(cfg: Config) -> str:
    """``<local>@<domain>`` the per-seller addresses extend: the setting, else the first SMTP
    recipient, else a placeholder that says what to configure."""
    return cfg.security.seller_address or next(iter(cfg.smtp.recipients), "optout@opt-out.invalid")


def _seller_line(cfg: Config, row: Any) -> str:
    return f"{row.name}\t{seller_address(_address_base(cfg), row.token)}\t{', '.join(row.forwarders) or '-'}"


@click.group()
def sellers() -> None:
    """Seller accounts: their per-seller address and registered forwarders."""


@sellers.command("add")
@click.argument("name")
@click.option("--forwarder", "forwarder_list", multiple=True, metavar="ADDR", help="A forwarding address (repeatable).")
@by_option
@with_store
async def sellers_add(store: Any, cfg: Config, name: str, forwarder_list: tuple[str, ...], who: str | None) -> None:
    """Add seller NAME; print its recipient address <local>+<token>@<domain>."""
    row = await _refusable(store.add_seller(name, forwarder_list, who=_who(who)))
    click.echo(_seller_line(cfg, row))


@sellers.command("list")
@with_store
async def sellers_list(store: Any, cfg: Config) -> None:
    """List sellers: name, recipient address, forwarders."""
    for row in await store.list_sellers():
        click.echo(_seller_line(cfg, row))


@sellers.command("show")
@click.argument("name")
@with_store
async def sellers_show(store: Any, cfg: Config, name: str) -> None:
    """Show seller NAME with its figures per month: notices received, buyers blocked, and
    messages Amazon blocked (what a mail tool must not bill as delivered)."""
    row = await store.get_seller(name)
    if row is None:
        _fail(f"no seller {name!r}")
    state = f"removed {_iso(row.removed_at)}" if row.removed_at else "active"
    click.echo(f"seller: {row.name} ({state}, since {_iso(row.created_at)})")
    click.echo(f"address: {seller_address(_address_base(cfg), row.token)}")
    click.echo(f"forwarders: {', '.join(row.forwarders) or '-'}")
    click.echo("month\tnotices_received\tbuyers_blocked\tamazon_blocked")
    for month in await store.seller_figures(row.id):
        click.echo(f"{month.month}\t{month.notices_received}\t{month.buyers_blocked}\t{month.amazon_blocked}")


@sellers.command("remove")
@click.argument("name")
@by_option
@with_store
async def sellers_remove(store: Any, name: str, who: str | None) -> None:
    """Remove seller NAME and its forwarders (its evidence and figures stay)."""
    await _refusable(store.remove_seller(name, who=_who(who)))
    click.echo(f"removed seller {name}")


@click.group()
def forwarders() -> None:
    """Addresses whose forwarded notices count for a seller."""


@forwarders.command("add")
@click.argument("seller")
@click.argument("address")
@by_option
@with_store
async def forwarders_add(store: Any, seller: str, address: str, who: str | None) -> None:
    """Register ADDRESS as a forwarder of SELLER."""
    await _refusable(store.add_forwarder(seller, address, who=_who(who)))
    click.echo(f"{address.lower()} forwards for {seller}")


@forwarders.command("remove")
@click.argument("address")
@by_option
@with_store
async def forwarders_remove(store: Any, address: str, who: str | None) -> None:
    """Unregister forwarder ADDRESS."""
    await _refusable(store.remove_forwarder(address, who=_who(who)))
    click.echo(f"removed forwarder {address.lower()}")


@click.group()
def quarantine() -> None:
    """Kept messages that applied nothing: held notices, look-alikes, damaged mail."""


@quarantine.command("list")
@click.option("--outcome", type=click.Choice(["quarantined", "not_opt_out", "malformed", "error"]),
              help="Only one outcome (default: all four).")
@click.option("--limit", default=50, show_default=True)
@with_store
async def quarantine_list(store: Any, outcome: str | None, limit: int) -> None:
    """List unapplied messages, newest first: id, received, outcome, seller, DKIM, reason."""
    rows = await store.list_held((outcome,), limit) if outcome else await store.list_held(limit=limit)
    for row in rows:
        click.echo(f"{row.id}\t{_iso(row.received_at)}\t{row.outcome}\t{row.seller or '-'}\t"
                   f"{row.forwarder or '-'}\tdkim {row.dkim or '-'}\t{row.reason or ''}")


@quarantine.command("show")
@click.argument("raw_id", type=int, metavar="ID")
@with_store
async def quarantine_show(store: Any, raw_id: int) -> None:
    """Show message ID with what the admission step knew and decided."""
    row = await store.get_held(raw_id)
    if row is None:
        _fail(f"no message {raw_id}")
    for name in ("id", "received_at", "source", "outcome", "reason", "parser_version", "forwarder", "seller"):
        value = getattr(row, name)
        click.echo(f"{name}: {_iso(value) if hasattr(value, 'isoformat') else value}")
    for name, value in (await store.trust_of(raw_id) or {}).items():
        if name not in ("raw_message_id", "seller_id", "forwarder"):
            click.echo(f"{name}: {_iso(value) if hasattr(value, 'isoformat') else value}")


@quarantine.command("approve")
@click.argument("raw_id", type=int, metavar="ID")
@by_option
@with_store
async def quarantine_approve(store: Any, cfg: Config, raw_id: int, who: str | None) -> None:
    """Apply held message ID (parsed again with the current parser)."""
    from .intake.parsers import load_parser

    parser = load_parser(cfg.parser.module)
    if await store.get_held(raw_id) is None:
        _fail(f"no message {raw_id}")
    record = await store.load_raw(raw_id)
    applied = await _refusable(store.approve(raw_id, parser.parse(record.data), parser_version=parser.version, who=_who(who)))
    click.echo(f"approved {raw_id}: {applied.buyers_new} new, {applied.buyers_updated} updated")


@quarantine.command("discard")
@click.argument("raw_id", type=int, metavar="ID")
@click.option("--reason", default="discarded by the operator", help="Why (kept in the audit trail).")
@by_option
@with_store
async def quarantine_discard(store: Any, raw_id: int, reason: str, who: str | None) -> None:
    """Discard held message ID: kept, never applied, no longer listed as held."""
    await _refusable(store.discard(raw_id, who=_who(who), reason=reason))
    click.echo(f"discarded {raw_id}")


@quarantine.command("reprocess")
@click.option("--all", "every", is_flag=True,
              help="Every unapplied message, not only those an older parser read (held ones are always retried).")
@with_store
async def quarantine_reprocess(store: Any, cfg: Config, every: bool) -> None:
    """Run the current parser and trust rules over kept, unapplied messages; apply what passes."""
    from .intake.parsers import load_parser
    from .intake.pipeline import Intake
    from .trust import Gatekeeper

    parser = load_parser(cfg.parser.module)
    intake = Intake(store, lambda entries: None, Gatekeeper.from_config(cfg.security), parser)
    await intake.start()
    outcomes: dict[str, int] = {}
    try:
        after = 0
        while ids := await store.reprocess_ids(parser.version, every=every, after=after, limit=500):
            for done in await intake.reprocess(ids):
                outcomes[done.outcome] = outcomes.get(done.outcome, 0) + 1
            after = ids[-1]
    finally:
        await intake.stop()
    summary = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "nothing to do"
    click.echo(f"reprocessed with parser {parser.version}: {summary}")


@click.command("audit")
@click.option("--limit", default=50, show_default=True)
@with_store
async def audit(store: Any, limit: int) -> None:
    """The audit trail, newest first: when, who, what, subject, detail."""
    for row in await store.audit_log(limit=limit):
        click.echo(f"{_iso(row.at)}\t{row.actor}\t{row.action}\t{row.subject or '-'}\t{row.detail or ''}")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@by_option
@with_store
async def blocklist_import(store: Any, file: str, who: str | None) -> None:
    """Import FILE.csv (columns order_id, email[, marketplace]: as ``export`` writes them).
    The file is kept as the evidence of its rows; the audit trail names it, who and when."""
    from .store.review import parse_csv_rows

    data = Path(file).read_bytes()
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    if not reader.fieldnames or not {"order_id", "email"} & set(reader.fieldnames):
        _fail(f"{file}: needs an order_id or email column")
    buyers, skipped = parse_csv_rows(list(reader))
    done = await store.import_buyers(data, Path(file).name, buyers, skipped, who=_who(who))
    for why in done.skipped:
        click.echo(f"skipped {why}", err=True)
    click.echo(f"imported {done.rows} rows from {file}: {done.new} new, {done.updated} updated, {len(done.skipped)} skipped")
