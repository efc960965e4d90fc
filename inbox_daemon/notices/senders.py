"""Which Amazon addresses send the "message could not be delivered" notices, with the evidence.

A domain alone proves little: Amazon writes to sellers from many addresses (order
notifications, forums, news, claims, Vine), and that mail may quote a notice's wording next to
an order id. Only the addresses below send delivery notices; mail from any other Amazon
address is ``not_opt_out`` with a reason naming the address, whatever its text says. A notice
from an address missing here would be missed, not mistaken: adding a row needs a real copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .addresses import sender_kind

__all__ = ["NOTICE_SENDERS", "OTHER_AMAZON_SENDERS", "NoticeSender", "is_notice_sender", "what_it_sends"]


@dataclass(frozen=True, slots=True)
class NoticeSender:
    """A local part that sends delivery notices on every marketplace domain, and why we say so."""

    local_part: str
    evidence: str


NOTICE_SENDERS: tuple[NoticeSender, ...] = (
    NoticeSender(
        "auto-communication",
        "every notice in the shared corpus (s01-s16: .com, .co.uk, .ca, .com.au, .in, .it, .fr,"
        " .es, .de, .co.jp, 2017-2024), direct and forwarded, and every genuine notice among the"
        " samples in tests/data/notices",
    ),
)

# Amazon addresses seen sending other mail to sellers: what each sends, for the reason.
OTHER_AMAZON_SENDERS: dict[str, str] = {
    "seller-notification": "order notifications (corpus s21, \"Sold, ship now\")",
    "news": "seller news and marketing"
    " (replies_mime_oddities_bulk_mail/lookalike_news_marketing_quotes_example_notice.eml)",
    "seller-forums-digest": "Seller Forums digests"
    " (replies_mime_oddities_bulk_mail/lookalike_seller_forum_digest_quotes_notice.eml)",
    "atoz-guarantee-no-reply": "A-to-z Guarantee claims"
    " (wrappings_marketplaces_lookalikes/lookalike_atoz_claim.eml)",
    "vine-noreply": "Amazon Vine mail"
    " (replies_mime_oddities_bulk_mail/lookalike_vine_customer_opted_out_of_vine_emails.eml)",
    "seller-performance": "account health and policy warnings"
    " (false_opt_outs/account_health_warning_quotes_notice.eml)",
    "sellercentral-forums": "forum notifications (false_opt_outs/forum_reply_notification_quotes_notice.eml)",
    "seller-support": "Seller Support case updates (false_opt_outs/case_update_quotes_notice.eml)",
}

_LOCAL_PARTS: Final = frozenset(s.local_part for s in NOTICE_SENDERS)


def is_notice_sender(address: str | None) -> bool:
    """Whether ``address`` is one Amazon sends delivery notices from (``auto-communication@amazon.de``)."""
    if sender_kind(address) != "amazon" or address is None:
        return False
    return address.rsplit("@", 1)[0] in _LOCAL_PARTS


def what_it_sends(address: str) -> str:
    """What an Amazon address other than a notice sender sends, as far as we know."""
    return OTHER_AMAZON_SENDERS.get(address.rsplit("@", 1)[0], "mail other than delivery notices")
