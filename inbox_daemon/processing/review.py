"""Operator decisions on kept mail, for every front end (the CLI's ``quarantine`` verbs and the
web pages): approve a held notice, discard it, run kept mail through the current parser and
rules again. One place each, so the command line and the browser cannot drift apart."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..store import Applied, AuditEntry, EvidenceDetail, IndexEntry, OptOutRow, Store
from ..store.review import UNAPPLIED
from .parsers import Parser
from .processor import Processed, Processor

__all__ = [
    "approve_held", "discard_held", "reprocess_one", "reprocess_kept", "BlocklistEntry", "blocklist_entries",
    "remove_from_blocklist",
]


@dataclass(frozen=True)
class BlocklistEntry:
    """One opt-out a key names, with who reported it (evidence) and every change (audit)."""

    row: OptOutRow
    evidence: list[EvidenceDetail]
    trail: list[AuditEntry]


async def blocklist_entries(store: Store, key: str) -> list[BlocklistEntry]:
    """The opt-outs a relay address or order id names, removed ones included (``blocklist show``)."""
    found = []
    for row in await store.find_opt_outs(key):
        found.append(BlocklistEntry(row, await store.evidence_details(row.id), await store.audit_log(opt_out_ids=[row.id])))
    return found


async def remove_from_blocklist(
    store: Store, key: str, *, reason: str, who: str,
    on_applied: Callable[[Sequence[IndexEntry]], None] | None = None,
) -> list[IndexEntry]:
    """Lift the block on what ``key`` names, with a reason; the history stays. Empty: nothing was
    blocked. ``on_applied``: the daemon's index, updated with the commit."""
    if not reason.strip():
        raise ValueError("a removal needs a reason")
    entries = await store.remove(key, reason=reason, who=who)
    if on_applied is not None and entries:
        on_applied(entries)
    return entries


async def approve_held(
    store: Store, parser: Parser, raw_id: int, *, who: str, note: str = "",
    on_applied: Callable[[Sequence[IndexEntry]], None] | None = None,
) -> Applied:
    """Apply held message ``raw_id``, parsed again with the current parser (LookupError: no such
    message; ValueError: not held, or no longer an opt-out). ``on_applied``: the daemon's index,
    updated in the same step as the commit."""
    if await store.get_held(raw_id) is None:
        raise LookupError(f"no message {raw_id}")
    record = await store.load_raw(raw_id)
    if record.unreadable:  # purged, or sealed under a key this process lacks
        raise ValueError(f"message {raw_id}: {record.unreadable}")
    result = await asyncio.to_thread(parser.parse, record.data)  # never the event loop's time
    applied = await store.approve(raw_id, result, parser_version=parser.version, who=who, note=note)
    if on_applied is not None:
        on_applied(applied.entries)
    return applied


async def discard_held(store: Store, raw_id: int, *, who: str, reason: str) -> None:
    """Keep held message ``raw_id`` unapplied for good (a reason is required)."""
    if not reason.strip():
        raise ValueError("a discard needs a reason")
    await store.discard(raw_id, who=who, reason=reason.strip())


async def reprocess_one(store: Store, processor: Processor, raw_id: int, *, who: str, note: str = "") -> Processed:
    """Run one kept, unapplied message through the current parser and trust rules (a started
    processor); what was applied or discarded stays as it is (ValueError), as for ``reprocess``.
    An audit row names who asked, the outcome and their note."""
    held = await store.get_held(raw_id)
    if held is None:
        raise LookupError(f"no message {raw_id}")
    if held.outcome not in UNAPPLIED:
        raise ValueError(f"message {raw_id} is {held.outcome}: only unapplied messages are reprocessed")
    (done,) = await processor.process([raw_id])
    detail = f"{held.outcome} -> {done.outcome}" + (f": {note}" if note else "")
    await store.add_audit(who=who, action="reprocess", raw_message_id=raw_id, detail=detail)
    return done


async def reprocess_kept(store: Store, processor: Processor, *, every: bool, who: str, batch: int = 500) -> Counter[str]:
    """Every unapplied message an older parser read (``every``: all of them; held ones always),
    through the current parser and rules; outcomes counted. One audit row names who ran it,
    the parser and the outcomes."""
    outcomes: Counter[str] = Counter()
    after, version = 0, processor.parser.version
    while ids := await store.reprocess_ids(version, every=every, after=after, limit=batch):
        for done in await processor.process(ids):
            outcomes[done.outcome] += 1
        after = ids[-1]
    await store.add_audit(who=who, action="reprocess", detail=f"{'all unapplied' if every else 'older parsers'}, "
                                                             f"parser {version}: {outcome_summary(outcomes)}")
    return outcomes


def outcome_summary(outcomes: Counter[str]) -> str:
    """``2 opt_out, 1 quarantined``, or ``nothing to do``: what a reprocess run did, for the
    operator and the audit trail alike."""
    return ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "nothing to do"
