"""Opt-outs: the index view of them, operator removal, learnt addresses and listings.

Functions take an open session and never commit; ``Store`` owns the transactions.
The identity rules and notice counting are in ``applying``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, bindparam, cast, func, literal, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from .. import keys
from . import changes, pseudonyms
from .audit import audit
from .engine import chunks
from .records import IndexEntry, OptOutRow
from .schema import AuditRow, OptOut, UTCDateTime

__all__ = [
    "entries_for",
    "remove",
    "learn_address",
    "LEARN",
    "LEARN_CONFLICT",
    "order_index",
    "index_entry",
    "email_index",
    "rows",
    "find",
    "subject",
]

IndexSelect = Select[str | None, datetime, int]  # (key, first_seen, count)


async def entries_for(session: AsyncSession, opt_out_ids: Iterable[int]) -> list[IndexEntry]:
    """The current index state of every email and order key of these opt-outs: one statement
    per chunk of ids (their keys, and the index rows of those keys), not one per kind of key."""
    unblocked: dict[tuple[str, str], IndexEntry] = {}
    blocked: dict[tuple[str, str], IndexEntry] = {}
    for chunk in chunks(opt_out_ids):
        async for entry in _stream_union(session, _ENTRIES, {"ids": chunk}):
            if entry.first_seen is None:
                unblocked[entry.kind, entry.value] = entry
            else:
                blocked[entry.kind, entry.value] = entry
    ordered = sorted(unblocked, key=lambda k: (k[0] != "order", k[1]))
    return [blocked.get(k, unblocked[k]) for k in ordered]


def _entries_statement() -> Any:
    """(key, first_seen, count, kind) of each key of the opt-outs ``ids`` (bound when run) as
    not blocked (first seen NULL, count 0), and then as ``order_index``/``email_index`` give it
    where blocked. Built once (``_ENTRIES``): building the union anew took longer than running
    it for a batch of a few notices, and every applied batch and every follower poll runs it."""
    touched = select(OptOut.email, OptOut.order_id).where(OptOut.id.in_(bindparam("ids", expanding=True))).cte("touched")
    none, zero = cast(null(), UTCDateTime), literal(0)
    return union_all(
        select(touched.c.order_id, none, zero, literal("order")).where(touched.c.order_id.is_not(None)),
        select(touched.c.email, none, zero, literal("email")).where(touched.c.email.is_not(None)),
        order_index().where(OptOut.order_id.in_(select(touched.c.order_id))).add_columns(literal("order")),
        email_index(OptOut.email.in_(select(touched.c.email))).add_columns(literal("email")),
    )


async def _stream_union(session: AsyncSession, statement: Any, parameters: dict[str, Any]) -> AsyncIterator[IndexEntry]:
    for row in (await session.execute(statement, parameters)):
        yield index_entry(row[3], row)


def order_index() -> IndexSelect:
    """Order keys as (order_id, first_seen, notice_count) of active opt-outs."""
    return select(OptOut.order_id, OptOut.first_seen, OptOut.notice_count).where(
        OptOut.active, OptOut.order_id.is_not(None)
    )


def email_index(*conditions: Any) -> IndexSelect:
    """Email keys as (email, min first_seen, sum notice_count) over active opt-outs."""
    return (
        select(OptOut.email, func.min(OptOut.first_seen), func.sum(OptOut.notice_count))
        .where(OptOut.active, OptOut.email.is_not(None), *conditions)
        .group_by(OptOut.email)
    )


_ENTRIES = _entries_statement()


def index_entry(kind: Literal["email", "order"], row: Sequence[Any]) -> IndexEntry:
    """A row of ``order_index()`` or ``email_index()`` as an IndexEntry."""
    return IndexEntry(kind, row[0], row[1], int(row[2]))


def subject(session: AsyncSession, key: str) -> tuple[keys.Kind | None, str]:
    """(kind, stored form) of a key an operator gave: an address or order id (``keys.parse``),
    or a pseudonym as ``blocklist export`` writes it (kind None: it may be either). Audit rows
    name this, never the text."""
    text = key.strip()
    if keys.is_stored(text.lower()):
        return None, text.lower()
    kind: keys.Kind = "email" if "@" in text else "order"
    return kind, pseudonyms.stored_text(session, kind, text)


def _key_condition(session: AsyncSession, key: str) -> Any:
    """The rows a key names (``subject``)."""
    kind, stored = subject(session, key)
    if kind is None:
        return or_(OptOut.email == stored, OptOut.order_id == stored)
    return OptOut.email == stored if kind == "email" else OptOut.order_id == stored


async def remove(
    session: AsyncSession, key: str, reason: str, who: str, now: datetime
) -> list[IndexEntry]:
    """Lift every active opt-out the key names, recording who, when and why."""
    statement = select(OptOut).where(_key_condition(session, key), OptOut.active)
    statement = statement.with_for_update(key_share=True)
    removed = list((await session.scalars(statement)).all())
    for row in removed:
        row.active = False
        row.removed_at, row.removed_by, row.removed_reason = now, who, reason
    ids = [row.id for row in removed]
    await session.flush()
    await changes.record(session, ids, now)
    rows = [{"actor": who, "action": "remove", "subject": subject(session, key)[1], "opt_out_id": i, "detail": reason} for i in ids]
    await audit(session, rows, now)
    return await entries_for(session, ids)


LEARN, LEARN_CONFLICT = "learn", "learn_conflict"  # audit actions of CHECK <address> <order>
MAX_CONFLICTS = 20  # conflicting addresses held per opt-out; a flood of guesses stops here


async def learn_address(
    session: AsyncSession, order_id: str, email: str, now: datetime, client: str = "query"
) -> tuple[str, list[IndexEntry]]:
    """Record a relay address on the active opt-out of this order if it has none yet.

    ("learned", entries) with an audit row naming the client; ("conflict", []) when the
    opt-out already has another address: nothing is merged, an audit row holds the claim for
    review (at most ``MAX_CONFLICTS`` per opt-out); ("none", []) otherwise.
    """
    order_key, address_key = keys.BuyerKey.order(order_id), keys.BuyerKey.email(email)
    if order_key is None or address_key is None:
        return "none", []
    order, address = pseudonyms.stored(session, order_key), pseudonyms.stored(session, address_key)
    statement = (
        select(OptOut)
        .where(OptOut.order_id == order, OptOut.active)
        .with_for_update(key_share=True)
    )
    row = await session.scalar(statement)
    actor = f"query {client}"[:200]
    if row is None or address is None or row.email == address:
        return "none", []
    if row.email is not None:
        held = await session.scalar(select(func.count()).select_from(AuditRow).where(
            AuditRow.opt_out_id == row.id, AuditRow.action == LEARN_CONFLICT))
        if (held or 0) >= MAX_CONFLICTS:
            return "conflict", []
        detail = f"CHECK named the subject's address for order {row.order_id}, which has {row.email}: not merged, held for review"
        await audit(session, [{"actor": actor, "action": LEARN_CONFLICT, "subject": address, "opt_out_id": row.id,
                               "detail": detail}], now)
        return "conflict", []
    row.email = address
    await session.flush()
    await changes.record(session, [row.id], now)
    await audit(session, [{"actor": actor, "action": LEARN, "subject": address, "opt_out_id": row.id,
                           "detail": f"CHECK named the subject's address with blocked order {row.order_id}: recorded, "
                                     "no notice names it"}], now)
    return "learned", await entries_for(session, [row.id])


_OPT_OUT_COLUMNS = tuple(OptOut.__table__.columns)


def rows(active: bool | None = None) -> Select[Any]:
    """All opt-outs, or only active / only removed ones, oldest first."""
    statement = select(*_OPT_OUT_COLUMNS).order_by(OptOut.id)
    return statement if active is None else statement.where(OptOut.active.is_(active))


def opt_out_row(mapping: Any) -> OptOutRow:
    return OptOutRow(**mapping)


async def find(session: AsyncSession, key: str) -> list[OptOutRow]:
    result = await session.execute(rows().where(_key_condition(session, key)))
    return [opt_out_row(m) for m in result.mappings()]
