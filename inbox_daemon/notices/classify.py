"""The verdict on one candidate notice: who sent it, what its reason sentence says, whom it names.

Rules: the reason sentence decides, never the subject; the sender must be one of Amazon's
notice senders (``senders``: an Amazon domain alone is not enough), writing outside Amazon's
bulk mail, with its own text (quotes belong to nobody, ``quoting``); buyer addresses count only
on ``marketplace.amazon.<tld>``; an order id missing from the text may come from an Amazon link
or a subject; anything forged or look-alike is ``not_opt_out`` with a reason; damage that hides
the reason is ``malformed``. In doubt, never an opt-out.
"""

from __future__ import annotations

from typing import Final

from .addresses import find_forged_relay_domains, find_order_ids, find_relay_addresses, sender_kind
from .bulk import is_amazon_bulk_mail
from .languages import (
    OPT_OUT,
    LookAlike,
    cause_sentence,
    first_reason,
    is_notice_subject,
    mentions_opt_out,
    normalise,
)
from .result import Buyer, Kind
from .senders import is_notice_sender, what_it_sends
from .unwrap import Candidate

__all__ = ["MAX_BUYERS", "NOT_A_NOTICE", "UNKNOWN_REJECTION", "Verdict", "classify", "is_notice"]

NOT_A_NOTICE: Final = "not an Amazon notice"
UNKNOWN_REJECTION: Final = "rejection for a reason not recognised"
# A notice is about one message to one buyer (an address, an order, at most a few orders of that
# buyer). A "notice" naming more is not one Amazon wrote, and must not block a crowd.
MAX_BUYERS: Final = 50


class Verdict:
    """What one candidate contributes to the message's result."""

    __slots__ = ("kind", "reason", "buyers", "is_notice", "has_opt_out_wording")

    def __init__(self, kind: Kind, reason: str | None = None, buyers: tuple[Buyer, ...] = (),
                 is_notice: bool = False, has_opt_out_wording: bool = False) -> None:
        self.kind: Final = kind
        self.reason: Final = reason
        self.buyers: Final = buyers
        self.is_notice: Final = is_notice  # sent from an Amazon marketplace domain
        self.has_opt_out_wording: Final = has_opt_out_wording


def is_notice(candidate: Candidate) -> bool:
    """Whether ``classify`` will call the candidate an Amazon notice (``Verdict.is_notice``):
    its own text, from one of Amazon's notice senders, outside Amazon's bulk mail. Cheap: it
    reads headers only, so the parser can leave the other candidates unread when one is."""
    if candidate.inside_relay or sender_kind(candidate.sender) != "amazon":
        return False
    if candidate.own_node is not None and is_amazon_bulk_mail(candidate.own_node.headers):
        return False
    return is_notice_sender(candidate.sender)


def classify(candidate: Candidate) -> Verdict:
    """Classify one candidate; never raises on any text."""
    norm = normalise(candidate.text)
    found = first_reason(norm)
    reason = found[0] if found else None
    if candidate.inside_relay:
        why = "quoted inside a message from a buyer relay address: the buyer's text, not an Amazon notice"
        return Verdict(Kind.NOT_OPT_OUT, why, has_opt_out_wording=reason == OPT_OUT)
    kind = sender_kind(candidate.sender)
    if kind != "amazon":
        return _not_from_amazon(candidate, kind, reason)
    if candidate.own_node is not None and is_amazon_bulk_mail(candidate.own_node.headers):
        why = "Amazon bulk mail (newsletter or forum digest), not a delivery notice"
        return Verdict(Kind.NOT_OPT_OUT, why, has_opt_out_wording=reason == OPT_OUT)
    if not is_notice_sender(candidate.sender):
        return _other_amazon_sender(candidate.sender or "", reason)
    if reason is None:
        return _no_reason(candidate, norm)
    if isinstance(reason, LookAlike):
        return Verdict(Kind.NOT_OPT_OUT, reason.value, is_notice=True)
    return _opt_out(candidate)


def _not_from_amazon(candidate: Candidate, kind: str, reason: str | LookAlike | None) -> Verdict:
    wording = reason == OPT_OUT
    if kind == "relay":
        # A buyer's own message relayed by Amazon, even one that talks about opting out (s20).
        why = "message relayed from a buyer, not an Amazon notice"
        return Verdict(Kind.NOT_OPT_OUT, why, has_opt_out_wording=wording)
    if not wording:
        return Verdict(Kind.NOT_OPT_OUT, NOT_A_NOTICE)
    if kind == "none":
        why = "opt-out wording in a forward without the sender's address: cannot verify it is from Amazon"
        return Verdict(Kind.MALFORMED, why, has_opt_out_wording=True)
    why = f"opt-out wording from {candidate.sender}, which is not an Amazon domain (forged or look-alike)"
    return Verdict(Kind.NOT_OPT_OUT, why, has_opt_out_wording=True)


def _other_amazon_sender(sender: str, reason: str | LookAlike | None) -> Verdict:
    """Mail from an Amazon address that does not send delivery notices (``senders``)."""
    if isinstance(reason, LookAlike):
        return Verdict(Kind.NOT_OPT_OUT, reason.value)
    what = what_it_sends(sender)
    if reason == OPT_OUT:
        why = (f"opt-out wording in mail from {sender}, which sends {what}, not delivery notices:"
               " a quotation, not a notice")
        return Verdict(Kind.NOT_OPT_OUT, why, has_opt_out_wording=True)
    return Verdict(Kind.NOT_OPT_OUT, f"Amazon mail from {sender} ({what}), not a delivery notice")


def _no_reason(candidate: Candidate, norm: str) -> Verdict:
    """An Amazon message without a known reason sentence: damaged, unknown, or not a notice."""
    if candidate.defects:
        why = "Amazon message damaged, reason unreadable: " + "; ".join(candidate.defects)
        return Verdict(Kind.MALFORMED, why, is_notice=True)
    if not norm.strip():
        return Verdict(Kind.MALFORMED, "Amazon message with no readable text", is_notice=True)
    if is_notice_subject(candidate.subject):
        return _unknown_rejection(candidate)
    return Verdict(Kind.NOT_OPT_OUT, "Amazon message that is not a delivery notice", is_notice=True)


def _unknown_rejection(candidate: Candidate) -> Verdict:
    """Amazon's rejection subject over a readable sentence giving a cause no table holds (a
    daily message limit, a file format, a closed buyer account: charsets_alternatives_rejections/)
    is a rejection, never an opt-out. Without such a sentence, or with one that names the buyer
    opting out in words the tables miss, the notice is kept for review as malformed."""
    sentence = cause_sentence(candidate.text)
    if sentence is not None and not mentions_opt_out(normalise(sentence)):
        return Verdict(Kind.NOT_OPT_OUT, f"{UNKNOWN_REJECTION}: {sentence}", is_notice=True)
    why = "Amazon delivery notice whose reason is not recognised (unknown language or layout)"
    return Verdict(Kind.MALFORMED, why, is_notice=True)


def _opt_out(candidate: Candidate) -> Verdict:
    """An Amazon opt-out notice: check the buyer addresses, then name the buyers."""
    forged = find_forged_relay_domains(candidate.text + "\n" + "\n".join(candidate.recipients))
    if forged:
        why = f"buyer address on {forged[0]}, not an Amazon marketplace relay domain (forged)"
        return Verdict(Kind.NOT_OPT_OUT, why, is_notice=True, has_opt_out_wording=True)
    emails = find_relay_addresses(candidate.text, open_end=candidate.cut_short)
    for address in find_relay_addresses("\n".join(candidate.recipients)):
        if address not in emails:
            emails.append(address)
    orders = find_order_ids(candidate.text) or _order_elsewhere(candidate)
    named = max(len(emails), len(orders))
    if named > MAX_BUYERS:
        why = f"notice names {named} buyers or orders (more than {MAX_BUYERS}): not a real notice"
        return Verdict(Kind.NOT_OPT_OUT, why, is_notice=True, has_opt_out_wording=True)
    if not emails and not orders:
        why = "opt-out notice that names neither an order nor a buyer address"
        return Verdict(Kind.MALFORMED, why, is_notice=True, has_opt_out_wording=True)
    return Verdict(Kind.OPT_OUT, buyers=_pair(emails, orders), is_notice=True, has_opt_out_wording=True)


def _order_elsewhere(candidate: Candidate) -> list[str]:
    """The order of a notice whose text names none: from the targets of its links to Amazon
    (structure/html_order_id_only_in_view_order_link.eml), else from its subject or the
    subjects of the messages that carried it (structure/order_id_only_in_forward_subject.eml).
    Only a single order counts: several in a subject line cannot be told apart."""
    for source in (candidate.links, candidate.subjects):
        orders = find_order_ids(" ".join(source))
        if orders:
            return orders if len(orders) == 1 else []
    return []


def _pair(emails: list[str], orders: list[str]) -> tuple[Buyer, ...]:
    """One notice blocks one message: pair addresses and orders in order, the rest alone.

    A single address goes with every order: one message about two orders of the same buyer
    names both (wrappings_marketplaces_lookalikes/two_orders_one_sentence_one_buyer.eml).
    """
    if len(emails) == 1 and len(orders) > 1:
        domain = emails[0].rsplit("@", 1)[1]
        return tuple(Buyer(emails[0], order, domain) for order in orders)
    buyers = []
    for n in range(max(len(emails), len(orders))):
        email = emails[n] if n < len(emails) else None
        order = orders[n] if n < len(orders) else None
        buyers.append(Buyer(email, order, email.rsplit("@", 1)[1] if email else None))
    return tuple(buyers)
