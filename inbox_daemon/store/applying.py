"""Applying parse results to the blocklist, a batch at a time in one transaction.

Identity of a buyer (email E, order O) — the first rule that finds a row wins:

1. O given: the row with order O (unique). Its email is set to E if it has none; an email it
   already has is kept (a relay address belongs to one buyer, so which row a different one
   joins is left to the operator rather than guessed at). A different E is still blocked, on
   the row that rule 3 or 4 gives it: Amazon named E as the address of a buyer who opted out
   (an address learnt from a CHECK, or one seller's relay address for the buyer, must not
   leave the address in the notice open).
2. O and E given: the earliest row (lowest id) with email E and no order; it gets order O.
3. Only E given: the earliest row with email E, whatever its order or state.
4. Otherwise a new row.

A raw message counts as a notice for an opt-out once (evidence is unique per opt-out and raw
message), and not at all when the opt-out already has evidence with the same Amazon notice
Message-ID (two sellers forwarding one notice is one notice). A removed opt-out named by
evidence from a raw message not seen for it before becomes active again: the buyer has opted
out again (or still does), and a block must not stay lifted against new proof. Its
``removed_*`` fields stay as the record of the removal.

Held messages (the admission step gave a quarantine reason) get the outcome ``quarantined``
with the reason and apply nothing. Every opt-out a batch creates or reactivates gets an audit
row in the same transaction.

A batch costs a fixed handful of statements — the raw rows, the candidate opt-outs, the
evidence that matters, then bulk writes — instead of several round trips per buyer (durable
SQLite fsyncs once per transaction; bench/ingest.py); the identity rules run in memory over
what was loaded, on plain rows (``_Row``), not ORM objects: a CSV import applies hundreds of
thousands of buyers, and the bulk writes (``bulk``) convert each value once, not per attribute
event (bench/import.py --csv).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon import keys
from inbox_daemon.notices.result import Buyer, Kind, ParseResult

from . import bulk, changes, pseudonyms
from .audit import audit
from .blocklist import entries_for
from .engine import chunks
from .records import Applied, IndexEntry
from .schema import Evidence, OptOut, RawMessage, table

__all__ = ["apply_batch", "Written"]


@dataclass(frozen=True, slots=True)
class _Notice:
    raw_id: int
    received_at: datetime
    message_id: str | None  # as the evidence keeps it: keys.message_id_stored
    forwarder: str | None


@dataclass(slots=True, eq=False)
class _Row:
    """An opt-out as the identity rules see it; ``id`` None until inserted, ``dirty`` when a
    loaded row was changed (written back by ``_Batch.write``). Compared by identity."""

    id: int | None
    order_id: str | None
    email: str | None
    marketplace: str | None
    first_seen: datetime
    last_seen: datetime
    notice_count: int
    active: bool
    dirty: bool = False


_OPT_OUTS = table(OptOut)
_EVIDENCE = table(Evidence)
_ROW_COLUMNS = ("id", "order_id", "email", "marketplace", "first_seen", "last_seen", "notice_count", "active")
_NEW_COLUMNS = _ROW_COLUMNS[1:]
_EVIDENCE_COLUMNS = ("raw_message_id", "opt_out_id", "forwarder", "notice_message_id", "seen_at")
# A changed opt-out written back: every column the rules may change, by id.
_UPDATE = update(_OPT_OUTS).where(_OPT_OUTS.c.id == bindparam("row_id")).values(
    {c: bindparam(f"new_{c}") for c in _NEW_COLUMNS})


@dataclass
class _Outcome:
    """What one raw message did: opt-outs it named, and which of them are new or changed."""

    named: dict[int, _Row] = field(default_factory=dict)  # by id() of the row, in naming order
    new: set[int] = field(default_factory=set)  # id() of the row objects
    updated: set[int] = field(default_factory=set)


def _keys(ring: keys.Pseudonyms, buyer: Buyer) -> tuple[str | None, str | None]:
    """(email, order id) as stored: their pseudonyms (``pseudonyms.given_form``); a key that
    is not one is left out."""
    return pseudonyms.given_form(ring, "email", buyer.email), pseudonyms.given_form(ring, "order", buyer.order_id)


class _Batch:
    """The opt-outs and evidence a batch can touch, loaded once; identity rules in memory."""

    def __init__(self, session: AsyncSession, actor: str = "intake") -> None:
        self.session = session
        self.actor = actor  # who the audit rows name
        self.by_order: dict[str, _Row] = {}
        self.by_email: dict[str, list[_Row]] = defaultdict(list)  # oldest first
        self.loaded: list[_Row] = []
        self.seen_raw: set[tuple[int, int]] = set()  # (id(row), raw id)
        self.seen_notice: set[tuple[int, str]] = set()  # (id(row), Amazon Message-ID)
        self.evidence: list[tuple[_Row, _Notice]] = []
        self.created: list[_Row] = []  # new rows, inserted in bulk by ``write``
        self.audited: list[tuple[_Row, _Notice, str]] = []  # (row, notice, block|reactivate)

    async def load(self, keys: set[tuple[str | None, str | None]], notices: list[_Notice]) -> None:
        orders = {o for _, o in keys if o}
        emails = {e for e, _ in keys if e}
        rows: dict[int, _Row] = {}
        columns = [_OPT_OUTS.c[c] for c in _ROW_COLUMNS]
        for column, values in ((_OPT_OUTS.c.order_id, orders), (_OPT_OUTS.c.email, emails)):
            found = await bulk.select_matching(self.session, columns, column, values, lock=True)
            rows.update((r.id, _Row(r.id, r.order_id, r.email, r.marketplace, r.first_seen, r.last_seen,
                                     r.notice_count, r.active)) for r in found)
        self.loaded = sorted(rows.values(), key=lambda r: r.id or 0)
        for row in self.loaded:
            self._index(row)
        await self._load_evidence(rows, notices)

    async def _load_evidence(self, rows: dict[int, _Row], notices: list[_Notice]) -> None:
        raw_ids = {n.raw_id for n in notices}
        message_ids = {n.message_id for n in notices if n.message_id}
        for chunk in chunks(rows):
            statement = select(
                Evidence.opt_out_id, Evidence.raw_message_id, Evidence.notice_message_id
            ).where(
                Evidence.opt_out_id.in_(chunk),
                or_(
                    Evidence.raw_message_id.in_(raw_ids),
                    Evidence.notice_message_id.in_(message_ids),
                ),
            )
            for opt_out_id, raw_id, message_id in await self.session.execute(statement):
                key = id(rows[opt_out_id])
                self.seen_raw.add((key, raw_id))
                if message_id:
                    self.seen_notice.add((key, message_id))

    def _index(self, row: _Row) -> None:
        if row.order_id:
            self.by_order[row.order_id] = row
        if row.email and row not in self.by_email[row.email]:
            self.by_email[row.email].append(row)

    def locate(self, email: str | None, order: str | None) -> _Row | None:
        """The identity rules of the module docstring."""
        if order and order in self.by_order:
            return self.by_order[order]
        for row in self.by_email.get(email, ()) if email else ():
            if not order or row.order_id is None:
                return row
        return None

    def apply_keys(self, stored: tuple[str | None, str | None], marketplace: str | None, notice: _Notice,
                   outcome: _Outcome) -> None:
        email, order = stored
        if not email and not order:
            return
        row = self.locate(email, order)
        if row is None:
            row = _Row(None, order, email, marketplace, notice.received_at, notice.received_at, 0, True)
            self.created.append(row)
            self._index(row)
            outcome.new.add(id(row))
            self.audited.append((row, notice, "block"))
        elif self._fill(row, email, order, marketplace):
            outcome.updated.add(id(row))
        self._name(row, notice, outcome)
        if email and row.email != email:  # rule 1's other address: blocked on a row of its own
            self.apply_keys((email, None), marketplace, notice, outcome)

    def _name(self, row: _Row, notice: _Notice, outcome: _Outcome) -> None:
        outcome.named.setdefault(id(row), row)  # constant time per buyer, however large the batch
        if (id(row), notice.raw_id) not in self.seen_raw:
            self._count(row, notice)
            outcome.updated.add(id(row))

    def _fill(self, row: _Row, email: str | None, order: str | None, market: str | None) -> bool:
        """Fill what the row lacks, never overwrite; True if a key was filled."""
        filled = False
        if email and row.email is None:
            row.email, filled, row.dirty = email, True, True
        if order and row.order_id is None:
            row.order_id, filled, row.dirty = order, True, True
        if market and row.marketplace is None:
            row.marketplace, row.dirty = market, True  # not an index key: no change row on its own
        self._index(row)
        return filled

    def _count(self, row: _Row, notice: _Notice) -> None:
        """New evidence: a notice more unless the same Amazon notice was seen; reactivates."""
        if notice.message_id is None or (id(row), notice.message_id) not in self.seen_notice:
            row.notice_count += 1
        if notice.message_id:
            self.seen_notice.add((id(row), notice.message_id))
        self.seen_raw.add((id(row), notice.raw_id))
        row.first_seen = min(row.first_seen, notice.received_at)
        row.last_seen = max(row.last_seen, notice.received_at)
        if not row.active:
            self.audited.append((row, notice, "reactivate"))
        row.active = row.dirty = True
        self.evidence.append((row, notice))

    async def write(self, now: datetime, changed: Sequence[_Row]) -> None:
        """Insert the new rows in bulk (their ids come back with their keys), write the changed
        ones back, then the evidence and change rows in bulk."""
        # (order id, email) tells the new rows of one batch apart: an order is unique, and an
        # email gets a row without an order at most once (rules 3 and 4 find it again).
        by_keys = {(r.order_id, r.email): r for r in self.created}
        values = [(r.order_id, r.email, r.marketplace, r.first_seen, r.last_seen, r.notice_count, r.active)
                  for r in self.created]
        for new_id, order, email in await bulk.insert_returning(
                self.session, _OPT_OUTS, _NEW_COLUMNS, values, ("id", "order_id", "email")):
            by_keys[order, email].id = new_id
        if len(by_keys) != len(self.created) or any(r.id is None for r in self.created):
            raise AssertionError("two new opt-outs with the same keys in one batch")
        dirty = [{"row_id": r.id, **{f"new_{c}": getattr(r, c) for c in _NEW_COLUMNS}} for r in self.loaded if r.dirty]
        if dirty:
            await self.session.execute(_UPDATE, dirty)
        evidence = [(n.raw_id, row.id, n.forwarder, n.message_id, n.received_at) for row, n in self.evidence]
        await bulk.insert_rows(self.session, _EVIDENCE, _EVIDENCE_COLUMNS, evidence)
        await changes.record(self.session, [row.id for row in changed if row.id is not None], now)
        await audit(self.session, [_audit_row(r, n, action, self.actor) for r, n, action in self.audited], now)



def _audit_row(row: _Row, notice: _Notice, action: str, actor: str) -> dict[str, object]:
    by = f" forwarded by {notice.forwarder}" if notice.forwarder else ""
    return {
        "actor": actor, "action": action, "subject": row.order_id or row.email,
        "opt_out_id": row.id, "raw_message_id": notice.raw_id, "detail": f"notice in message {notice.raw_id}{by}",
    }


async def _verdicts(
    session: AsyncSession,
    ring: keys.Pseudonyms,
    items: Sequence[tuple[int, ParseResult]],
    parser_version: str,
    now: datetime,
    held: Mapping[int, str],
    received: Mapping[int, datetime],
) -> list[_Notice]:
    """Lock the raw rows, record each verdict (when it differs), return the notices. When every
    raw row is in ``received``, none is read or recorded (see ``apply_batch``)."""
    if received and all(raw_id in received for raw_id, _ in items):
        return [_notice(ring, raw_id, received[raw_id], result) for raw_id, result in items]
    found = await bulk.select_matching(session, _VERDICT_COLUMNS, _RAW.c.id, {raw_id for raw_id, _ in items}, lock=True)
    raws = {r.id: r for r in found}
    notices: list[_Notice] = []
    changed: list[tuple[object, ...]] = []
    for raw_id, result in items:
        raw = raws.get(raw_id)
        if raw is None:
            raise LookupError(f"no raw message with id {raw_id}")
        verdict = (result.kind.value, result.reason, parser_version, result.forwarder)
        if raw_id in held:
            verdict = ("quarantined", held[raw_id], parser_version, result.forwarder)
        if (raw.outcome, raw.reason, raw.parser_version, raw.forwarder) != verdict:
            changed.append((raw_id, *verdict, now))
        notices.append(_notice(ring, raw_id, raw.received_at, result))
    await bulk.update_rows(session, _RAW, "id", _VERDICT_SET, changed)
    return notices


def _notice(ring: keys.Pseudonyms, raw_id: int, received_at: datetime, result: ParseResult) -> _Notice:
    message_id = None if result.message_id is None else keys.message_id_stored(ring, result.message_id)
    return _Notice(raw_id, received_at, message_id, result.forwarder)


_RAW = table(RawMessage)
_VERDICT_COLUMNS = (_RAW.c.id, _RAW.c.outcome, _RAW.c.reason, _RAW.c.parser_version, _RAW.c.forwarder, _RAW.c.received_at)
_VERDICT_SET = ("outcome", "reason", "parser_version", "forwarder", "processed_at")


async def apply_batch(
    session: AsyncSession,
    items: Sequence[tuple[int, ParseResult]],
    parser_version: str,
    now: datetime,
    held: Mapping[int, str] | None = None,
    *,
    actor: str = "intake",
    received: Mapping[int, datetime] | None = None,
) -> Written:
    """Record each verdict and, for opt-outs not ``held``, their buyers. Idempotent. What it
    did comes back as ``Written``, whose ``applied`` reads the index entries. ``received``: raw
    messages whose verdict an earlier transaction recorded, each with when it was received,
    which are not read again (an imported file's later batches: its row holds the whole file,
    and SQLite reaches a column stored after it by walking the file's overflow pages, ~50 ms
    for a file of 70 MB)."""
    held = held or {}
    ring = pseudonyms.ring(session)
    notices = await _verdicts(session, ring, items, parser_version, now, held, received or {})
    opting = [(n, [(_keys(ring, b), b.marketplace) for b in r.buyers])
              for n, (_, r) in zip(notices, items) if r.kind is Kind.OPT_OUT and n.raw_id not in held]
    batch = _Batch(session, actor)
    await batch.load({stored for _, buyers in opting for stored, _ in buyers}, [n for n, _ in opting])
    outcomes: dict[int, _Outcome] = {}
    for notice, buyers in opting:
        outcome = outcomes.setdefault(notice.raw_id, _Outcome())
        for stored, marketplace in buyers:
            batch.apply_keys(stored, marketplace, notice, outcome)
    changed = [r for o in outcomes.values() for key, r in o.named.items() if key in o.new or key in o.updated]
    await batch.write(now, changed)
    return Written([raw_id for raw_id, _ in items], outcomes, held)


class Written:
    """What ``apply_batch`` did, to be told as ``Applied`` results with the index entries of
    every key it named. The entries may be read after the transaction commits (the daemon on
    SQLite: reading them is then no part of the time its write lock is held; a state read
    later is the same or newer, as the index followers would deliver it)."""

    def __init__(self, raw_ids: list[int], outcomes: dict[int, _Outcome], held: Mapping[int, str]) -> None:
        self.raw_ids = raw_ids
        self.outcomes = outcomes
        self.held = held

    async def applied(self, session: AsyncSession | None) -> list[Applied]:
        """The results in the order of the items; ``session`` None: without index entries (a
        CLI import: the daemons follow the change rows), which saves reading them back."""
        named = {r.id for o in self.outcomes.values() for r in o.named.values() if r.id is not None}
        found = await entries_for(session, named) if session is not None else []
        at = {(e.kind, e.value): n for n, e in enumerate(found)}  # one lookup per key, not a scan per message
        return [_applied(self.outcomes.get(raw_id), found, at, self.held.get(raw_id)) for raw_id in self.raw_ids]


def _applied(outcome: _Outcome | None, entries: list[IndexEntry], at: Mapping[tuple[Any, str], int],
             held: str | None) -> Applied:
    if outcome is None:
        return Applied(buyers_new=0, buyers_updated=0, entries=[], held=held)
    keys = {("order", r.order_id) for r in outcome.named.values() if r.order_id}
    keys |= {("email", r.email) for r in outcome.named.values() if r.email}
    return Applied(
        buyers_new=len(outcome.new),
        buyers_updated=len(outcome.updated - outcome.new),
        entries=[entries[n] for n in sorted(at[k] for k in keys if k in at)],
    )
