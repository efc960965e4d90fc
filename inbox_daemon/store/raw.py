"""Raw messages: the durable write before SMTP's 250, and the reads over kept mail.

Functions take an open session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, RowMapping, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.keys import message_id_stored
from inbox_daemon.privacy import KeyRing

from . import bulk
from .engine import chunks, database_clock
from .records import Delivery, PendingRow, RawRecord, RawRow, SavedRaw
from .schema import OUTCOMES, RawMessage
from .schema import table as schema_table
from .sealing import open_raw, seal_raw

__all__ = [
    "Sealed",
    "save_many",
    "pending",
    "claim",
    "renew",
    "claimers",
    "lost",
    "load",
    "load_many",
    "mark_error",
    "list_rows",
    "find",
]




class Sealed:
    """A batch of deliveries made ready to store: digests, repeats folded, bytes sealed.
    Made before the transaction (``Store.save_raw_many``): sealing and hashing are no part of
    the time SQLite's write lock is held."""

    def __init__(self, items: Sequence[Delivery], now: datetime, ring: KeyRing | None) -> None:
        self.digests = [hashlib.sha256(item.raw).hexdigest() for item in items]
        self.repeats = Counter(self.digests)
        firsts: dict[str, Delivery] = {}  # in arrival order: ids follow it
        for digest, item in zip(self.digests, items):
            firsts.setdefault(digest, item)
        self.rows = [_values(item, digest, self.repeats[digest], now, ring) for digest, item in firsts.items()]


async def save_many(session: AsyncSession, batch: Sealed, owner: str | None = None) -> list[SavedRaw]:
    """Insert the bytes, or count one more delivery of bytes already stored. A new message is
    claimed by ``owner`` from the start (see ``claim``), so that it is never without an owner
    while it waits in that process's queue; bytes already stored keep their claim.

    One ``INSERT … ON CONFLICT (sha256) DO UPDATE`` for the batch (``bulk.insert_rows``: each
    value converted once, bound by the driver), then one read of the batch's rows by sha256:
    no race between two deliveries of the same bytes. On SQLite this runs under the write lock
    the daemon's applying transactions wait for; SQLAlchemy's per-row work for a multi-row
    ``RETURNING`` cost that lock about 0.1 ms a message (bench/ingest.py). Repeats within the
    batch are folded first (PostgreSQL refuses to update a row twice in one statement); the
    first of them is the new one. The bytes are sealed under the ring's current data key
    (``sealing``).
    """
    totals: dict[str, tuple[int, int, str]] = {}
    if batch.rows:
        claim = (owner, await database_clock(session) if owner else None)
        names = (*batch.rows[0], "claimed_by", "claimed_at")  # every row of a batch has the same columns
        rows = [(*row.values(), *claim) for row in batch.rows]
        await bulk.insert_rows(session, _TABLE, names, rows, on_conflict=_REPEAT)
        found = await bulk.select_matching(session, _SAVED_COLUMNS, _TABLE.c.sha256, set(batch.repeats))
        totals.update({r.sha256: (r.id, r.times_received, r.outcome) for r in found})
    saved, seen = [], set()
    for digest in batch.digests:
        raw_id, times, outcome = totals[digest]
        first = times == batch.repeats[digest] and digest not in seen  # inserted by this batch
        saved.append(SavedRaw(raw_id, digest, is_new=first, pending=outcome == "pending"))
        seen.add(digest)
    return saved


def _values(item: Delivery, digest: str, repeats: int, now: datetime, ring: KeyRing | None) -> dict[str, object]:
    data, key_id = seal_raw(ring, item.raw, digest)
    sealed = {"key_id": key_id} if key_id is not None else {}  # unsealed: the columns of any revision
    return {
        **sealed,
        "sha256": digest,
        "data": data,
        "size": len(item.raw),
        "source": item.source,
        "envelope_from": item.envelope_from,
        "envelope_to": json.dumps(list(item.envelope_to)),
        "peer": item.peer,
        "message_id": item.message_id if ring is None or item.message_id is None else message_id_stored(ring, item.message_id),
        "received_at": item.received_at or now,
        "times_received": repeats,
        "outcome": "pending",
    }


_TABLE = schema_table(RawMessage)
_SAVED_COLUMNS = (_TABLE.c.id, _TABLE.c.sha256, _TABLE.c.times_received, _TABLE.c.outcome)
# The same bytes again: one delivery more, the first delivery's row and metadata kept.
_REPEAT = "ON CONFLICT (sha256) DO UPDATE SET times_received = raw_messages.times_received + excluded.times_received"


async def pending(session: AsyncSession, limit: int, lease: timedelta) -> list[PendingRow]:
    """Messages not processed yet, oldest first, with their claims and whether each claim ran
    out (older than ``lease`` by the database's clock)."""
    statement = (
        select(RawMessage.id, RawMessage.size, RawMessage.claimed_by, RawMessage.claimed_at)
        .where(RawMessage.outcome == "pending")
        .order_by(RawMessage.id)
        .limit(limit)
    )
    rows = list(await session.execute(statement))
    expired = await database_clock(session) - lease
    return [PendingRow(int(i), int(n), c, t, t is not None and t < expired) for i, n, c, t in rows]


async def claim(
    session: AsyncSession, raw_ids: Sequence[int], owner: str, lease: timedelta, dead: Sequence[str],
    ring: KeyRing | None = None,
) -> list[RawRecord]:
    """Claim the pending messages of these ids for ``owner`` — those nobody claimed, claimed
    more than ``lease`` ago, or claimed by an owner in ``dead`` — and return the ones it holds.
    Claims are stamped and compared by the database's clock (``engine.database_clock``)."""
    now = await database_clock(session)
    claimable = or_(
        RawMessage.claimed_by.is_(None), RawMessage.claimed_by == owner,
        RawMessage.claimed_at < now - lease, RawMessage.claimed_by.in_(list(dead)),
    )
    held: list[int] = []
    for chunk in chunks(raw_ids):
        statement = (
            update(RawMessage)
            .where(RawMessage.id.in_(chunk), RawMessage.outcome == "pending", claimable)
            .values(claimed_by=owner, claimed_at=now)
            .returning(RawMessage.id)
        )
        held.extend(int(i) for i in await session.scalars(statement))
    holding = set(held)
    return await load_many(session, [i for i in raw_ids if i in holding], ring)


def _held_by(owner: str | BindParameter[str]) -> ColumnElement[bool]:
    """``owner`` still holds the message's claim: not processed yet, and not taken over."""
    return and_(RawMessage.outcome == "pending", RawMessage.claimed_by == owner)


# ``lost``'s read, run inside every applying transaction: built once, its ids and owner bound.
_HOLDING = select(RawMessage.id).where(
    RawMessage.id.in_(bindparam("ids", expanding=True)), _held_by(bindparam("owner"))
).with_for_update(key_share=True)


async def claimers(session: AsyncSession, raw_ids: Sequence[int]) -> set[str]:
    """Who holds the claims on the pending messages of these ids."""
    found: set[str] = set()
    for chunk in chunks(raw_ids):
        statement = select(RawMessage.claimed_by).where(
            RawMessage.id.in_(chunk), RawMessage.outcome == "pending", RawMessage.claimed_by.is_not(None)
        ).distinct()
        found.update(str(c) for c in await session.scalars(statement))
    return found


async def renew(session: AsyncSession, owner: str) -> int:
    """Stamp all of ``owner``'s claims on pending messages with the time now, so that other
    daemons see it still at work; how many it holds (a claim taken over is not renewed)."""
    statement = (
        update(RawMessage)
        .where(_held_by(owner))
        .values(claimed_at=await database_clock(session))
    )
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


async def lost(session: AsyncSession, raw_ids: Sequence[int], owner: str) -> set[int]:
    """Of messages ``owner`` claimed, those it no longer holds (processed or taken over by
    another daemon after its claim ran out), with the rows locked for the rest of the
    transaction: the fence that keeps an owner who stalled past its lease from deciding a
    message a second time."""
    holding: set[int] = set()
    for chunk in chunks(raw_ids):
        holding.update(await session.scalars(_HOLDING, {"ids": chunk, "owner": owner}))
    return set(raw_ids) - holding


_HIDDEN = ("data", "key_id", "claimed_by", "claimed_at")
_ROW_COLUMNS = tuple(c for c in RawMessage.__table__.columns if c.key not in _HIDDEN)


def _decoded(found: RowMapping) -> dict[str, Any]:
    values = {k: v for k, v in found.items() if k not in _HIDDEN}
    values["envelope_to"] = tuple(json.loads(str(values["envelope_to"])))
    return values


def _record(found: RowMapping, ring: KeyRing | None) -> RawRecord:
    """A row with its bytes opened; bytes that do not open say why in ``unreadable``."""
    data, why = open_raw(ring, found["data"], found["key_id"], found["sha256"], found["purged_at"] is not None)
    return RawRecord(**_decoded(found), data=data, unreadable=why)


async def load(session: AsyncSession, raw_id: int, ring: KeyRing | None = None) -> RawRecord | None:
    statement = select(*_ROW_COLUMNS, RawMessage.data, RawMessage.key_id).where(RawMessage.id == raw_id)
    found = (await session.execute(statement)).mappings().one_or_none()
    return None if found is None else _record(found, ring)


async def load_many(session: AsyncSession, raw_ids: Sequence[int], ring: KeyRing | None = None) -> list[RawRecord]:
    """The messages of these ids that exist, in the order asked."""
    found: dict[int, RawRecord] = {}
    for chunk in chunks(raw_ids):
        statement = select(*_ROW_COLUMNS, RawMessage.data, RawMessage.key_id).where(RawMessage.id.in_(chunk))
        found.update((m["id"], _record(m, ring)) for m in (await session.execute(statement)).mappings())
    return [found[i] for i in raw_ids if i in found]


async def mark_error(session: AsyncSession, raw_id: int, reason: str, now: datetime, owner: str | None = None) -> bool:
    """Outcome "error"; with ``owner``, only while that owner's claim holds (see ``lost``)."""
    statement = (
        update(RawMessage)
        .where(RawMessage.id == raw_id)
        .values(outcome="error", reason=reason, processed_at=now)
    )
    if owner is not None:
        statement = statement.where(_held_by(owner))
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_rows(session: AsyncSession, outcome: str | None, limit: int) -> list[RawRow]:
    statement = select(*_ROW_COLUMNS).order_by(RawMessage.id.desc()).limit(limit)
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
        statement = statement.where(RawMessage.outcome == outcome)
    rows = (await session.execute(statement)).mappings()
    return [RawRow(**_decoded(m)) for m in rows]


async def by_reason(
    session: AsyncSession, prefix: str, outcome: str, skip_action: str, limit: int
) -> list[int]:
    """Ids of messages of ``outcome`` whose reason starts with ``prefix`` and that no audit row of
    ``skip_action`` names, newest first."""
    from .schema import AuditRow

    done = select(AuditRow.raw_message_id).where(AuditRow.action == skip_action, AuditRow.raw_message_id.is_not(None))
    statement = (select(RawMessage.id).where(RawMessage.outcome == outcome, RawMessage.reason.startswith(prefix, autoescape=True),
                                             RawMessage.id.not_in(done))
                 .order_by(RawMessage.id.desc()).limit(limit))
    return list((await session.scalars(statement)).all())


async def outcome_counts(session: AsyncSession, since: datetime) -> dict[str, int]:
    """Messages received since ``since``, counted by outcome (the web overview)."""
    statement = (select(RawMessage.outcome, func.count()).where(RawMessage.received_at >= since)
                 .group_by(RawMessage.outcome))
    return {outcome: count for outcome, count in await session.execute(statement)}


async def find(session: AsyncSession, ref: str, ring: KeyRing | None = None) -> RawRecord | None:
    """By id, else by sha256 prefix (at least 4 hex digits). ValueError if the prefix is
    ambiguous, so that a CLI never shows the wrong message."""
    ref = ref.strip().lower()
    if ref.isdigit():
        record = await load(session, int(ref), ring)
        if record is not None:
            return record
    if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref):
        return None
    statement = select(RawMessage.id).where(RawMessage.sha256.startswith(ref)).limit(2)
    ids = list((await session.scalars(statement)).all())
    if len(ids) > 1:
        raise ValueError(f"sha256 prefix {ref!r} names more than one message")
    return await load(session, ids[0], ring) if ids else None
