"""The store side of the trust work (issue 5): the admission step inside the applying
transaction, the audit trail, and the seller and forwarder registry.

Functions take an open session and never commit; ``Store`` owns the transactions. The
decision itself is ``inbox_daemon.trust.admission.decide`` (pure); here it gets the registry
snapshot and the rate counters as this transaction sees them, so that two batches cannot both
slip under a cap they share (the rows it reads are written in the same transaction).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.notices.result import Kind, ParseResult
from inbox_daemon.trust import Assessment, Decision, Policy, Registry, decide

from .audit import audit
from .blocklist import chunks, normalize_email
from .tables import OptOut
from .trust_records import SellerRow
from .trust_tables import Forwarder, MessageTrust, Seller

__all__ = [
    "admit_batch",
    "registry",
    "add_seller",
    "remove_seller",
    "sellers",
    "add_forwarder",
    "remove_forwarder",
    "RATE_WINDOW",
]

RATE_WINDOW = timedelta(hours=1)


async def registry(session: AsyncSession) -> Registry:
    """Tokens and forwarders of the sellers not removed."""
    live = Seller.removed_at.is_(None)
    tokens = dict((await session.execute(select(Seller.token, Seller.id).where(live))).all())
    statement = select(Forwarder.address, Forwarder.seller_id).join(Seller).where(live)
    return Registry(tokens, dict((await session.execute(statement)).all()))


async def _recent(session: AsyncSession, keys: set[str], skip: set[int], now: datetime) -> dict[str, int]:
    """New opt-outs per rate key in the last hour (messages of this batch left out).

    Summed in the database: a busy forwarder has thousands of rows in the window.
    """
    counts: dict[str, int] = dict.fromkeys(keys, 0)
    for chunk in chunks(keys):
        statement = (
            select(MessageTrust.rate_key, func.sum(MessageTrust.new_opt_outs))
            .where(MessageTrust.rate_key.in_(chunk), MessageTrust.decided_at >= now - RATE_WINDOW)
            .where(MessageTrust.raw_message_id.not_in(skip))
            .group_by(MessageTrust.rate_key)
        )
        for key, total in await session.execute(statement):
            counts[key] = int(total or 0)
    return counts


async def _known_keys(session: AsyncSession, results: Sequence[ParseResult]) -> set[str]:
    """Order ids and relay addresses of the batch that already name an active opt-out."""
    orders = {b.order_id.strip() for r in results for b in r.buyers if b.order_id}
    emails = {normalize_email(b.email) for r in results for b in r.buyers if b.email}
    known: set[str] = set()
    for column, values in ((OptOut.order_id, orders), (OptOut.email, emails)):
        for chunk in chunks(values):
            found = await session.scalars(select(column).where(column.in_(chunk), OptOut.active))
            known.update(v for v in found if v)
    return known


def _new_buyers(result: ParseResult, known: set[str]) -> int:
    """Buyers of an admitted notice that no active opt-out names yet (they join ``known``)."""
    new = 0
    for b in result.buyers:
        keys = {b.order_id.strip() if b.order_id else None, normalize_email(b.email) if b.email else None} - {None}
        if keys and not keys & known:
            new += 1
        known.update(k for k in keys if k)
    return new


async def admit_batch(
    session: AsyncSession,
    items: Sequence[tuple[int, ParseResult]],
    assessed: Sequence[Assessment],
    policy: Policy,
    now: datetime,
) -> dict[int, Decision]:
    """Decide for each message of a batch, in order; record what was known and decided."""
    raw_ids = [raw_id for raw_id, _ in items]
    existing = {
        t.raw_message_id: t
        for chunk in chunks(raw_ids)
        for t in await session.scalars(select(MessageTrust).where(MessageTrust.raw_message_id.in_(chunk)))
    }
    reg = await registry(session)
    limited = {a.who.rate_key for a in assessed if a.source not in policy.rate_exempt_sources}
    counts = dict.fromkeys((a.who.rate_key for a in assessed), 0)
    if policy.rate_per_hour and limited:  # no cap, or only exempt sources: nothing to count
        counts.update(await _recent(session, limited, set(raw_ids), now))
    known = await _known_keys(session, [r for _, r in items]) if policy.rate_per_hour else set()
    decisions: dict[int, Decision] = {}
    fresh: list[dict[str, object]] = []
    for (raw_id, result), seen in zip(items, assessed):
        before = existing.get(raw_id)
        approved = before is not None and before.approved_by is not None
        decision = decide(result, seen.who, seen.dkim, reg, policy, recent_new=counts[seen.who.rate_key],
                          source=seen.source, approved=approved)
        admitted = decision.hold is None and result.kind is Kind.OPT_OUT
        new = _new_buyers(result, known) if admitted and policy.rate_per_hour else 0
        counts[seen.who.rate_key] += new
        decisions[raw_id] = decision
        values = _values(seen, decision, new, now)
        if before is None:
            fresh.append({"raw_message_id": raw_id, "approved_by": None, "approved_at": None, **values})
        else:  # a message seen before (reprocess): its row is updated, its approval kept
            for name, value in values.items():
                setattr(before, name, value)
    if fresh:  # one bulk INSERT, not an ORM object per message (issue 3's 500 notices/s)
        await session.execute(insert(MessageTrust), fresh)
    await session.flush()
    return decisions


def _values(seen: Assessment, decision: Decision, new: int, now: datetime) -> dict[str, object]:
    return {
        "seller_id": decision.seller_id, "forwarder": seen.who.forwarder, "forwarded_via": seen.who.via,
        "token": seen.who.token, "rate_key": seen.who.rate_key, "dkim": seen.dkim.status,
        "dkim_domain": seen.dkim.domain, "dkim_detail": seen.dkim.detail, "held": decision.hold,
        "new_opt_outs": new, "amazon_notices": seen.amazon_notices, "decided_at": now,
    }


# -- sellers and forwarders ------------------------------------------------------------------


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


async def sellers(session: AsyncSession, name: str | None = None) -> list[SellerRow]:
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
    address = normalize_email(address)
    if "@" not in address:
        raise ValueError(f"not an address: {address!r}")
    if await session.scalar(select(func.count()).where(Forwarder.address == address)):
        raise ValueError(f"forwarder {address} is registered already")
    session.add(Forwarder(seller_id=seller.id, address=address, created_at=now))
    await audit(session, [{"actor": who, "action": "forwarder_add", "subject": address, "detail": f"seller {name}"}], now)


async def remove_forwarder(session: AsyncSession, address: str, who: str, now: datetime) -> None:
    address = normalize_email(address)
    fwd = await session.scalar(select(Forwarder).where(Forwarder.address == address))
    if fwd is None:
        raise LookupError(f"no forwarder {address}")
    await session.delete(fwd)
    await audit(session, [{"actor": who, "action": "forwarder_remove", "subject": address}], now)
