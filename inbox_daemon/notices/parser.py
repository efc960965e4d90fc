"""``parse_notice``: raw bytes in, one ``ParseResult`` out. Pure, bounded, never raises."""

from __future__ import annotations

from .classify import NOT_A_NOTICE, Verdict, classify
from .forwarder import identify
from .mime import MailNode, read_message
from .result import Buyer, Kind, ParseResult
from .unwrap import Candidate, candidates

__all__ = ["parse_notice", "merge_buyers"]


def parse_notice(raw: bytes) -> ParseResult:
    """Parse one raw message. Any failure inside becomes ``malformed`` with the reason."""
    try:
        return _parse(bytes(raw))
    except Exception as exc:  # last resort only: real inputs are handled below (issue 2, point 7)
        return ParseResult(Kind.MALFORMED, reason=f"parser error: {type(exc).__name__}")


def _parse(raw: bytes) -> ParseResult:
    if not raw.strip():
        return ParseResult(Kind.MALFORMED, reason="empty message")
    root = read_message(raw)
    found = candidates(root)
    verdicts = [classify(c) for c in found]
    pairs = list(zip(found, verdicts))
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
        return ParseResult(Kind.OPT_OUT, buyers=buyers, **common)  # type: ignore[arg-type]
    kind, reason = _verdict_without_opt_out(root, pairs, notices)
    return ParseResult(kind, reason=reason, **common)  # type: ignore[arg-type]


def _verdict_without_opt_out(
    root: MailNode, pairs: list[tuple[Candidate, Verdict]], notices: list[tuple[Candidate, Verdict]]
) -> tuple[Kind, str]:
    """Kind and reason when nothing is an opt-out: damage first, then the most telling reason."""
    if root.bounded:
        # What lies past the bound is unread, not absent: a notice attached 17 levels deep is
        # unverifiable, not "no notice" (redteam2/nested_17_attachment_forwards.eml).
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


def merge_buyers(buyers: object) -> tuple[Buyer, ...]:
    """One record per buyer: merge records sharing an address or an order (issue 2, point 6)."""
    merged: list[Buyer] = []
    for buyer in buyers:  # type: ignore[attr-defined]
        for n, known in enumerate(merged):
            if _same_buyer(known, buyer):
                merged[n] = Buyer(
                    known.email or buyer.email,
                    known.order_id or buyer.order_id,
                    known.marketplace or buyer.marketplace,
                )
                break
        else:
            merged.append(buyer)
    return tuple(merged)


def _same_buyer(a: Buyer, b: Buyer) -> bool:
    """Same address, or same order with no conflicting address."""
    if a.email and b.email:
        return a.email == b.email and (not a.order_id or not b.order_id or a.order_id == b.order_id)
    return bool(a.order_id and a.order_id == b.order_id)
