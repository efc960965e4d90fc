"""``sellers`` and ``forwarders``: seller accounts, their per-seller address and the
addresses whose forwarded notices count for them. A running daemon learns of every change
through the change sequence (within ``query.sync_seconds``); nothing needs a restart."""

from __future__ import annotations

import click

from ..config import Config
from ..store import SellerRow, Store
from ..processing.sellers import recipient
from .common import by_option, emit, fail, iso, json_option, refusable, who as login, with_store

__all__ = ["sellers", "forwarders"]


def _seller_line(cfg: Config, row: SellerRow) -> str:
    return f"{row.name}\t{recipient(cfg, row)}\t{', '.join(row.forwarders) or '-'}"


@click.group()
def sellers() -> None:
    """Seller accounts: their per-seller address and registered forwarders."""


@sellers.command("add")
@click.argument("name")
@click.option("--forwarder", "forwarder_list", multiple=True, metavar="ADDR", help="A forwarding address (repeatable).")
@by_option
@with_store
async def sellers_add(store: Store, cfg: Config, name: str, forwarder_list: tuple[str, ...], who: str | None) -> None:
    """Add seller NAME; print its recipient address <local>+<token>@<domain>."""
    row = await refusable(store.add_seller(name, forwarder_list, who=login(who)))
    click.echo(_seller_line(cfg, row))


@sellers.command("list")
@json_option
@with_store
async def sellers_list(store: Store, cfg: Config, as_json: bool) -> None:
    """List sellers: name, recipient address, forwarders."""
    for row in await store.list_sellers():
        emit({"name": row.name, "address": recipient(cfg, row), "forwarders": list(row.forwarders),
              "created_at": row.created_at}, _seller_line(cfg, row), as_json)


@sellers.command("show")
@click.argument("name")
@json_option
@with_store
async def sellers_show(store: Store, cfg: Config, name: str, as_json: bool) -> None:
    """Show seller NAME with its figures per month: notices received, buyers blocked, and
    messages Amazon blocked (what a mail tool must not bill as delivered)."""
    row = await store.get_seller(name)
    if row is None:
        fail(f"no seller {name!r}")
    if as_json:
        months = [{"month": m.month, "notices_received": m.notices_received, "buyers_blocked": m.buyers_blocked,
                   "amazon_blocked": m.amazon_blocked} for m in await store.seller_figures(row.id)]
        emit({"name": row.name, "address": recipient(cfg, row), "forwarders": list(row.forwarders),
              "created_at": row.created_at, "removed_at": row.removed_at, "months": months}, "", True)
        return
    state = f"removed {iso(row.removed_at)}" if row.removed_at else "active"
    click.echo(f"seller: {row.name} ({state}, since {iso(row.created_at)})")
    click.echo(f"address: {recipient(cfg, row)}")
    click.echo(f"forwarders: {', '.join(row.forwarders) or '-'}")
    click.echo("month\tnotices_received\tbuyers_blocked\tamazon_blocked")
    for month in await store.seller_figures(row.id):
        click.echo(f"{month.month}\t{month.notices_received}\t{month.buyers_blocked}\t{month.amazon_blocked}")


@sellers.command("rotate")
@click.argument("name")
@by_option
@with_store
async def sellers_rotate(store: Store, cfg: Config, name: str, who: str | None) -> None:
    """Give seller NAME a new per-seller address; the old one stops counting for it at once."""
    row = await refusable(store.rotate_seller_token(name, who=login(who)))
    click.echo(_seller_line(cfg, row))


@sellers.command("remove")
@click.argument("name")
@by_option
@with_store
async def sellers_remove(store: Store, name: str, who: str | None) -> None:
    """Remove seller NAME and its forwarders (its evidence and figures stay)."""
    await refusable(store.remove_seller(name, who=login(who)))
    click.echo(f"removed seller {name}")


@click.group()
def forwarders() -> None:
    """Addresses whose forwarded notices count for a seller."""


@forwarders.command("add")
@click.argument("seller")
@click.argument("address")
@by_option
@with_store
async def forwarders_add(store: Store, seller: str, address: str, who: str | None) -> None:
    """Register ADDRESS as a forwarder of SELLER."""
    await refusable(store.add_forwarder(seller, address, who=login(who)))
    click.echo(f"{address.lower()} forwards for {seller}")


@forwarders.command("remove")
@click.argument("address")
@by_option
@with_store
async def forwarders_remove(store: Store, address: str, who: str | None) -> None:
    """Unregister forwarder ADDRESS."""
    await refusable(store.remove_forwarder(address, who=login(who)))
    click.echo(f"removed forwarder {address.lower()}")


@forwarders.command("pending")
@json_option
@with_store
async def forwarders_pending(store: Store, as_json: bool) -> None:
    """Forwarding confirmations (Gmail's) waiting for someone to act: message id, requesting
    address, code, link. Listed until the address is registered or ``forwarders dismiss ID``."""
    from ..processing.confirmations import pending_confirmations

    for item in await pending_confirmations(store):
        c = item.confirmation
        emit({"raw_id": item.raw_id, "received_at": item.received_at, "provider": c.provider, "requester": c.requester,
              "code": c.code, "link": c.link},
             f"{item.raw_id}\t{iso(item.received_at)}\t{c.provider}\t{c.requester}\tcode {c.code}\t{c.link}", as_json)


@forwarders.command("dismiss")
@click.argument("raw_id", type=int, metavar="ID")
@by_option
@with_store
async def forwarders_dismiss(store: Store, raw_id: int, who: str | None) -> None:
    """Take forwarding confirmation ID off the pending list (confirmed or refused)."""
    from ..processing.confirmations import dismiss_confirmation

    await refusable(dismiss_confirmation(store, raw_id, who=login(who)))
    click.echo(f"dismissed confirmation {raw_id}")
