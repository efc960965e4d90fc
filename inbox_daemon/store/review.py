"""Operator review: the quarantine, approving and discarding, the evidence behind an opt-out,
per-seller figures, and imported buyer lists kept with their provenance.

Functions take an open session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.notices.result import Buyer, Kind, ParseResult
from inbox_daemon.privacy import KeyRing

from . import applying, raw
from .audit import audit
from .records import Applied, Delivery, EvidenceDetail, HeldRow, MonthFigures, SavedRaw
from .schema import Evidence, MessageTrust, RawMessage, Seller

__all__ = [
    "UNAPPLIED",
    "held_rows",
    "reprocess_ids",
    "approve",
    "discard",
    "evidence_details",
    "figures",
    "save_import",
    "import_batch",
    "import_done",
]

# Kept messages that applied nothing: what ``quarantine list`` shows and ``reprocess`` retries.
UNAPPLIED = ("quarantined", "not_opt_out", "malformed", "error")


def _held_query() -> object:
    return (
        select(
            RawMessage.id, RawMessage.received_at, RawMessage.source, RawMessage.outcome,
            RawMessage.reason, RawMessage.parser_version, RawMessage.forwarder,
            Seller.name.label("seller"), MessageTrust.dkim, MessageTrust.approved_by,
        )
        .outerjoin(MessageTrust, MessageTrust.raw_message_id == RawMessage.id)
        .outerjoin(Seller, Seller.id == MessageTrust.seller_id)
    )


async def held_rows(
    session: AsyncSession, outcomes: Sequence[str], limit: int, raw_id: int | None = None, offset: int = 0
) -> list[HeldRow]:
    """Unapplied messages of these outcomes, newest first, skipping ``offset`` (or the one ``raw_id``)."""
    statement = _held_query()
    if raw_id is not None:
        statement = statement.where(RawMessage.id == raw_id)  # type: ignore[attr-defined]
    else:
        statement = statement.where(RawMessage.outcome.in_(list(outcomes)))  # type: ignore[attr-defined]
    statement = statement.order_by(RawMessage.id.desc()).limit(limit).offset(offset)
    return [HeldRow(**m) for m in (await session.execute(statement)).mappings()]


async def reprocess_ids(session: AsyncSession, parser_version: str, every: bool, after: int, limit: int) -> list[int]:
    """Unapplied messages to run the current parser over: those an older parser read, or
    (``every``) all of them. Ids above ``after``, oldest first, at most ``limit``."""
    statement = select(RawMessage.id).where(
        RawMessage.outcome.in_(UNAPPLIED), RawMessage.id > after, RawMessage.purged_at.is_(None)  # bytes to read
    )
    if not every:
        statement = statement.where(
            (RawMessage.parser_version != parser_version) | RawMessage.parser_version.is_(None)
            | (RawMessage.outcome == "quarantined")  # the registry or the policy may have changed
        )
    return list((await session.scalars(statement.order_by(RawMessage.id).limit(limit))).all())


async def _held_message(session: AsyncSession, raw_id: int) -> RawMessage:
    message = await session.get(RawMessage, raw_id, with_for_update=True)
    if message is None:
        raise LookupError(f"no message {raw_id}")
    if message.outcome != "quarantined":
        raise ValueError(f"message {raw_id} is not in quarantine (outcome {message.outcome})")
    return message


async def approve(
    session: AsyncSession, raw_id: int, result: ParseResult, parser_version: str, who: str, now: datetime,
    note: str = "",
) -> Applied:
    """Apply a held notice as the operator vouches for it; later passes keep the approval."""
    await _held_message(session, raw_id)
    if result.kind is not Kind.OPT_OUT:
        raise ValueError(f"message {raw_id} now parses as {result.kind.value}: {result.reason}")
    trust = await session.get(MessageTrust, raw_id)
    if trust is not None:
        trust.approved_by, trust.approved_at, trust.held = who, now, None
    written = await applying.apply_batch(session, [(raw_id, result)], parser_version, now, actor=who)
    (applied,) = await written.applied(session)
    await audit(session, [{"actor": who, "action": "approve", "raw_message_id": raw_id,
                           "detail": f"{applied.buyers_new} new, {applied.buyers_updated} updated"
                           + (f": {note}" if note else "")}], now)
    return applied


async def discard(session: AsyncSession, raw_id: int, who: str, reason: str, now: datetime) -> None:
    """Keep the bytes, apply nothing, never offer it again."""
    message = await _held_message(session, raw_id)
    message.outcome, message.processed_at = "discarded", now
    message.reason = f"discarded by {who}: {reason} (was: {message.reason})"[:2000]
    await audit(session, [{"actor": who, "action": "discard", "raw_message_id": raw_id, "detail": reason}], now)


async def evidence_details(session: AsyncSession, opt_out_id: int) -> list[EvidenceDetail]:
    statement = (
        select(
            Evidence.raw_message_id, Evidence.seen_at, RawMessage.source, Evidence.forwarder,
            Seller.name.label("seller"), MessageTrust.dkim, Evidence.notice_message_id,
        )
        .join(RawMessage, RawMessage.id == Evidence.raw_message_id)
        .outerjoin(MessageTrust, MessageTrust.raw_message_id == Evidence.raw_message_id)
        .outerjoin(Seller, Seller.id == MessageTrust.seller_id)
        .where(Evidence.opt_out_id == opt_out_id)
        .order_by(Evidence.seen_at, Evidence.id)
    )
    return [EvidenceDetail(**m) for m in (await session.execute(statement)).mappings()]


async def figures(session: AsyncSession, seller_id: int) -> list[MonthFigures]:
    """Per month (UTC, of receipt): messages attributed to the seller, distinct buyers they
    named, and the Amazon notices in them. Summed here, the same way on both engines."""
    notices: dict[str, int] = defaultdict(int)
    blocked: dict[str, int] = defaultdict(int)
    statement = (
        select(RawMessage.received_at, MessageTrust.amazon_notices)
        .join(MessageTrust, MessageTrust.raw_message_id == RawMessage.id)
        .where(MessageTrust.seller_id == seller_id, RawMessage.outcome != "discarded")
    )
    for received, amazon in await session.execute(statement):
        notices[received.strftime("%Y-%m")] += 1
        blocked[received.strftime("%Y-%m")] += amazon
    buyers: dict[str, set[int]] = defaultdict(set)
    statement = (
        select(RawMessage.received_at, Evidence.opt_out_id)
        .join(Evidence, Evidence.raw_message_id == RawMessage.id)
        .join(MessageTrust, MessageTrust.raw_message_id == RawMessage.id)
        .where(MessageTrust.seller_id == seller_id)
    )
    for received, opt_out_id in await session.execute(statement):
        buyers[received.strftime("%Y-%m")].add(opt_out_id)
    return [MonthFigures(m, notices[m], len(buyers[m]), blocked[m]) for m in sorted(notices)]


async def save_import(
    session: AsyncSession, data: bytes, name: str, who: str, now: datetime, ring: KeyRing | None = None
) -> SavedRaw:
    """Keep an imported file whole as a raw message, its provenance (name, sha256, who, when):
    the evidence its rows point at. The same file again is the same message."""
    (saved,) = await raw.save_many(session, raw.Sealed([Delivery(data, f"csv:{name}"[:200], envelope_from=who)], now, ring))
    return saved


async def import_batch(
    session: AsyncSession, raw_id: int, buyers: Sequence[Buyer], who: str, now: datetime,
    received_at: datetime | None = None,
) -> Applied:
    """One batch of an imported file's buyers, applied as a notice of the file (``raw_id``):
    evidence and audit rows point at it. Idempotent: a batch applied again (an import run again
    after a failure) adds no notice and no evidence. ``received_at``: when the file was kept,
    given for the batches after the first, which recorded its verdict (``apply_batch``)."""
    result = ParseResult(Kind.OPT_OUT, buyers=tuple(buyers), forwarded_via="csv-import")
    received = {raw_id: received_at} if received_at is not None else None
    written = await applying.apply_batch(session, [(raw_id, result)], "csv-import", now, actor=who, received=received)
    (applied,) = await written.applied(None)
    return applied


async def received_at(session: AsyncSession, raw_id: int) -> datetime:
    """When a raw message was first received."""
    found = await session.scalar(select(RawMessage.received_at).where(RawMessage.id == raw_id))
    if found is None:
        raise LookupError(f"no raw message with id {raw_id}")
    return found


async def import_done(
    session: AsyncSession, raw_id: int, sha256: str, name: str, rows: int, skipped: int, who: str, now: datetime
) -> None:
    """The audit row of a whole import: the file, its sha256, how many rows it gave."""
    detail = f"file {name} sha256 {sha256}: {rows} rows, {skipped} skipped"
    await audit(session, [{"actor": who, "action": "import", "subject": name[:400], "raw_message_id": raw_id,
                           "detail": detail}], now)
