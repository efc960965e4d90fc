"""Forwarding confirmations (``notices.confirmation``) among the mail that is not a notice:
marked in the stored reason when processed, logged once at warning, listed until an operator
deals with them (registers the requester as a forwarder, or dismisses the message)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..notices import ParseResult
from ..notices.confirmation import REASON_PREFIX, Confirmation, forwarding_confirmation
from ..notices.result import Kind
from ..store import RawRecord, Store

__all__ = ["annotate", "Pending", "pending_confirmations", "dismiss_confirmation", "DISMISS"]

DISMISS = "confirmation_done"  # the audit action that takes a confirmation off the list


def annotate(records: Sequence[RawRecord], results: Sequence[Any], log: Any) -> list[Any]:
    """Results with each forwarding confirmation's reason naming it (the rest as they are)."""
    marked = list(results)
    for i, (record, result) in enumerate(zip(records, results)):
        if isinstance(result, ParseResult) and result.kind is Kind.NOT_OPT_OUT:
            found = forwarding_confirmation(record.data)
            if found is not None:
                marked[i] = replace(result, reason=found.reason())
                log.warning("forwarding_confirmation", raw_id=record.id, provider=found.provider,
                            requester=found.requester, code=found.code)
    return marked


@dataclass(frozen=True)
class Pending:
    raw_id: int
    received_at: Any
    confirmation: Confirmation


async def pending_confirmations(store: Store, limit: int = 50) -> list[Pending]:
    """Confirmations not dismissed whose requester is not a registered forwarder yet, newest first."""
    registered = {f for seller in await store.list_sellers() for f in seller.forwarders}
    found = []
    for record in await store.messages_by_reason(REASON_PREFIX, outcome="not_opt_out", skip_action=DISMISS, limit=limit):
        confirmation = forwarding_confirmation(record.data)
        if confirmation is not None and confirmation.requester not in registered:
            found.append(Pending(record.id, record.received_at, confirmation))
    return found


async def dismiss_confirmation(store: Store, raw_id: int, *, who: str) -> None:
    """Take a confirmation off the list (it was confirmed, or refused): an audit row says who."""
    record = await store.get_message(str(raw_id))
    if record is None or not (record.reason or "").startswith(REASON_PREFIX):
        raise LookupError(f"message {raw_id} is not a forwarding confirmation")
    await store.add_audit(who=who, action=DISMISS, raw_message_id=raw_id, detail="forwarding confirmation dealt with")
