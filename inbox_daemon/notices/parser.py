"""``parse_notice``: raw bytes in, one ``ParseResult`` out. Pure, bounded, never raises."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .classify import NOT_A_NOTICE, Verdict, classify, is_notice
from .forwarder import identify
from .mime import MailNode, has_alternatives, read_message, read_unread_html
from .result import Buyer, Kind, ParseResult
from .unwrap import Candidate, View, candidates

__all__ = ["MAX_BUYERS_PER_MESSAGE", "parse_notice", "merge_buyers"]

# A digest or a forwarded conversation holds a few notices; each names one buyer.
MAX_BUYERS_PER_MESSAGE: Final = 200


def parse_notice(raw: bytes) -> ParseResult:
    """Parse one raw message. Any failure inside becomes ``malformed`` with the reason."""
    try:
        return _parse(bytes(raw))
    except Exception as exc:  # last resort only; the property tests fail on this reason
        return ParseResult(Kind.MALFORMED, reason=f"parser error: {type(exc).__name__}")


def _parse(raw: bytes) -> ParseResult:
    if not raw.strip():
        return ParseResult(Kind.MALFORMED, reason="empty message")
    root = read_message(raw)
    pairs = _read(root)
    notices = [(c, v) for c, v in pairs if v.is_notice]
    opt_outs = [(c, v) for c, v in notices if v.kind is Kind.OPT_OUT]
    chosen = opt_outs or notices or [(c, v) for c, v in pairs if v.has_opt_out_wording] or pairs[:1]
    forwarder, via = identify(root.headers, chosen[0][0].via)
    first = (opt_outs or notices)[0][0] if (opt_outs or notices) else None
    common = {
        "message_id": first.message_id if first else None,
        "date": first.date if first else None,
        "forwarder": forwarder,
        "forwarded_via": via,
        "notices": len(notices),
    }
    if opt_outs:
        buyers = merge_buyers(b for _, v in opt_outs for b in v.buyers)
        if len(buyers) > MAX_BUYERS_PER_MESSAGE:
            # Each notice names one buyer; a message naming more than a digest ever holds is a
            # fabrication or an accident, and one message must not block a crowd.
            why = (f"{len(buyers)} buyers named in one message (more than {MAX_BUYERS_PER_MESSAGE}):"
                   " not credible as notices")
            return ParseResult(Kind.NOT_OPT_OUT, reason=why, **common)  # type: ignore[arg-type]
        return ParseResult(Kind.OPT_OUT, buyers=buyers, **common)  # type: ignore[arg-type]
    kind, reason = _verdict_without_opt_out(root, pairs, notices)
    return ParseResult(kind, reason=reason, **common)  # type: ignore[arg-type]


def _read(root: MailNode) -> list[tuple[Candidate, Verdict]]:
    """Candidates with their verdicts. When the views of an alternative body, read together,
    yield no Amazon notice, each view is read alone and the first that yields one is used:
    a forward's header block may be readable in one view only
    (charsets_alternatives_rejections/yahoo_fwd_runon_header_fields_en.eml)."""
    pairs = _classified(candidates(root))
    if any(v.is_notice for _, v in pairs) or not has_alternatives(root):
        return pairs
    views: tuple[View, ...] = ("both", "html", "plain") if read_unread_html(root) else ("html", "plain")
    for view in views:
        tried = _classified(candidates(root, view))
        if any(v.is_notice for _, v in tried):
            return tried
    return pairs


# What a candidate that is not a notice contributes when the mail holds a notice: nothing (the
# result is drawn from the notices alone, see ``_parse`` and ``_verdict_without_opt_out``).
_UNREAD: Final = Verdict(Kind.NOT_OPT_OUT, "not read: the message holds an Amazon notice")


def _classified(found: list[Candidate]) -> list[tuple[Candidate, Verdict]]:
    """Each candidate with its verdict. When some are Amazon notices, only those are read:
    the others' verdicts would not change the result (reading them was a third of a parse)."""
    notice = [is_notice(c) for c in found]
    if any(notice):
        return [(c, classify(c) if n else _UNREAD) for c, n in zip(found, notice)]
    return [(c, classify(c)) for c in found]


def _verdict_without_opt_out(
    root: MailNode, pairs: list[tuple[Candidate, Verdict]], notices: list[tuple[Candidate, Verdict]]
) -> tuple[Kind, str]:
    """Kind and reason when nothing is an opt-out: damage first, then the most telling reason."""
    if root.bounded:
        # What lies past the bound is unread, not absent: a notice attached 17 levels deep is
        # unverifiable, not "no notice" (tests/notices/test_structure.py, 40 nested forwards).
        return Kind.MALFORMED, f"work bound reached ({root.bounded}): a notice may lie beyond it"
    for _, verdict in notices or pairs:
        if verdict.kind is Kind.MALFORMED:
            return Kind.MALFORMED, verdict.reason or "malformed"
    if not any(c.text.strip() for c, _ in pairs):
        damage = "; ".join(root.defects) or "no readable text"
        return Kind.MALFORMED, f"message has no readable body ({damage})"
    for _, verdict in notices:
        return Kind.NOT_OPT_OUT, verdict.reason or "not an opt-out"
    telling = [v for _, v in pairs if v.has_opt_out_wording] + [
        v for _, v in pairs if v.reason != NOT_A_NOTICE
    ]
    for verdict in telling:
        return Kind.NOT_OPT_OUT, verdict.reason or "not an opt-out"
    return Kind.NOT_OPT_OUT, "not an Amazon notice: no Amazon sender found"


def merge_buyers(buyers: Iterable[Buyer]) -> tuple[Buyer, ...]:
    """One record per buyer: a record joins the earliest one sharing its address (with no
    conflicting order) or its order (with no conflicting address). Linear: dictionaries find
    the earlier record, so a notice naming 13,000 orders costs milliseconds, not seconds."""
    merged: list[Buyer] = []
    index = _BuyerIndex()
    for buyer in buyers:
        at = index.find(buyer)
        if at is None:
            merged.append(buyer)
            index.add(len(merged) - 1, buyer)
            continue
        known = merged[at]
        joined = Buyer(
            known.email or buyer.email, known.order_id or buyer.order_id, known.marketplace or buyer.marketplace
        )
        merged[at] = joined
        index.update(at, known, joined)
    return tuple(merged)


class _BuyerIndex:
    """Where the earliest record with a given address and/or order sits in the merged list.

    Address-only and order-only records are unique: a second one would have joined the first.
    """

    __slots__ = ("pair", "email_only", "order_only", "any_email", "any_order")

    def __init__(self) -> None:
        self.pair: dict[tuple[str, str], int] = {}
        self.email_only: dict[str, int] = {}
        self.order_only: dict[str, int] = {}
        self.any_email: dict[str, int] = {}
        self.any_order: dict[str, int] = {}

    def find(self, buyer: Buyer) -> int | None:
        """The earliest record ``buyer`` is the same buyer as (see ``merge_buyers``), or None."""
        email, order = buyer.email, buyer.order_id
        if email and order:
            found = [
                self.pair.get((email, order)), self.email_only.get(email), self.order_only.get(order)
            ]
            return min((n for n in found if n is not None), default=None)
        if email:
            return self.any_email.get(email)
        if order:
            return self.any_order.get(order)
        return None

    def add(self, at: int, buyer: Buyer) -> None:
        email, order = buyer.email, buyer.order_id
        if email and order:
            self.pair.setdefault((email, order), at)
        elif email:
            self.email_only.setdefault(email, at)
        elif order:
            self.order_only.setdefault(order, at)
        if email:
            self.any_email[email] = min(at, self.any_email.get(email, at))
        if order:
            self.any_order[order] = min(at, self.any_order.get(order, at))

    def update(self, at: int, before: Buyer, after: Buyer) -> None:
        """Record ``at`` changed from ``before`` to ``after`` (it gained an address or order)."""
        if before.email and not before.order_id and after.order_id:
            self.email_only.pop(before.email, None)
        if before.order_id and not before.email and after.email:
            self.order_only.pop(before.order_id, None)
        self.add(at, after)
