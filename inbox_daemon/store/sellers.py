"""Sellers and their forwarders: the registry that says whose notice a message is.

Functions take an open session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import keys
from .audit import audit
from .engine import chunks
from .records import SellerRow
from .schema import Forwarder, Seller

__all__ = ["registry", "add_seller", "remove_seller", "rotate_token", "sellers", "add_forwarder", "remove_forwarder"]


async def registry(session: AsyncSession) -> tuple[dict[str, int], dict[str, int]]:
    """(token -> seller id, forwarder address -> seller id) of the sellers not removed. Read in
    every applying transaction: its statements are built once."""
    tokens = {token: seller for token, seller in await session.execute(_LIVE_TOKENS)}
    return tokens, {address: seller for address, seller in await session.execute(_LIVE_FORWARDERS)}


_LIVE_TOKENS = select(Seller.token, Seller.id).where(Seller.removed_at.is_(None))
_LIVE_FORWARDERS = select(Forwarder.address, Forwarder.seller_id).join(Seller).where(Seller.removed_at.is_(None))


async def _seller(session: AsyncSession, name: str, *, live: bool = True) -> Seller:
    seller = await session.scalar(select(Seller).where(Seller.name == name))
    if seller is None or (live and seller.removed_at is not None):
        raise LookupError(f"no seller {name!r}")
    return seller


async def add_seller(session: AsyncSession, name: str, forwarders: Sequence[str], who: str, now: datetime) -> SellerRow:
    """A new seller with a fresh token (or a removed one revived), and its forwarders."""
    seller = await session.scalar(select(Seller).where(Seller.name == name))
    if seller is not None and seller.removed_at is None:
        raise ValueError(f"seller {name!r} exists")
    if seller is None:
        seller = Seller(name=name, token=secrets.token_hex(5), created_at=now)
        session.add(seller)
    seller.removed_at = None
    await session.flush()
    await audit(session, [{"actor": who, "action": "seller_add", "subject": name}], now)
    for address in forwarders:
        await add_forwarder(session, name, address, who, now)
    return (await sellers(session, name))[0]


async def remove_seller(session: AsyncSession, name: str, who: str, now: datetime) -> None:
    """Mark removed and drop its forwarders; the row stays for evidence and figures."""
    seller = await _seller(session, name)
    seller.removed_at = now
    for fwd in await session.scalars(select(Forwarder).where(Forwarder.seller_id == seller.id)):
        await session.delete(fwd)
    await audit(session, [{"actor": who, "action": "seller_remove", "subject": name}], now)


async def rotate_token(session: AsyncSession, name: str, who: str, now: datetime) -> SellerRow:
    """A fresh token: the seller's old per-seller address stops counting for it at once (the
    registry is read in each applying transaction)."""
    seller = await _seller(session, name)
    seller.token = secrets.token_hex(5)
    await audit(session, [{"actor": who, "action": "seller_rotate", "subject": name}], now)
    await session.flush()
    return (await sellers(session, name))[0]


async def sellers(session: AsyncSession, name: str | None = None) -> list[SellerRow]:
    """Live sellers by name, or the one named (removed or not)."""
    statement = select(Seller).order_by(Seller.name)
    statement = statement.where(Seller.name == name) if name else statement.where(Seller.removed_at.is_(None))
    found = list(await session.scalars(statement))
    addresses: dict[int, list[str]] = {s.id: [] for s in found}
    for chunk in chunks(addresses):
        for seller_id, address in await session.execute(
            select(Forwarder.seller_id, Forwarder.address).where(Forwarder.seller_id.in_(chunk)).order_by(Forwarder.address)
        ):
            addresses[seller_id].append(address)
    return [SellerRow(s.id, s.name, s.token, s.created_at, s.removed_at, tuple(addresses[s.id])) for s in found]


async def add_forwarder(session: AsyncSession, name: str, address: str, who: str, now: datetime) -> None:
    seller = await _seller(session, name)
    checked = keys.address(address)
    if checked is None:
        raise ValueError(f"not an address: {address!r}")
    address = checked
    if await session.scalar(select(func.count()).where(Forwarder.address == address)):
        raise ValueError(f"forwarder {address} is registered already")
    session.add(Forwarder(seller_id=seller.id, address=address, created_at=now))
    await audit(session, [{"actor": who, "action": "forwarder_add", "subject": address, "detail": f"seller {name}"}], now)


async def remove_forwarder(session: AsyncSession, address: str, who: str, now: datetime) -> None:
    address = keys.address(address) or address.strip().lower()
    fwd = await session.scalar(select(Forwarder).where(Forwarder.address == address))
    if fwd is None:
        raise LookupError(f"no forwarder {address}")
    await session.delete(fwd)
    await audit(session, [{"actor": who, "action": "forwarder_remove", "subject": address}], now)
