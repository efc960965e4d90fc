"""Distinct, realistic opt-out notices made up on the spot (own cases, not the shared corpus)."""

from __future__ import annotations

import random
import string

_ALNUM = string.ascii_lowercase + string.digits


def order_id(rng: random.Random) -> str:
    return f"{rng.randint(100, 999)}-{rng.randint(0, 9999999):07d}-{rng.randint(0, 9999999):07d}"


def relay_address(rng: random.Random, tld: str = "com") -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(15)) + f"@marketplace.amazon.{tld}"


def notice_message_id(order: str, seq: int = 0) -> str:
    """The Message-ID of ``opt_out_notice`` (without brackets): it quotes the order id, as a
    Message-ID may quote buyer data (inbox_daemon/keys.py keeps and logs only its digest)."""
    return f"notice-{order}-{seq}@email.amazonses.com"


def opt_out_notice(order: str, buyer: str | None, tld: str = "com", seq: int = 0) -> bytes:
    """An Amazon opt-out notice as sent directly (the layout of the US notice since 2019)."""
    to = f" to {buyer}" if buyer else ""
    return (
        f"From: \"Amazon.{tld}\" <auto-communication@amazon.{tld}>\r\n"
        f"To: seller{seq}@seller.example\r\n"
        f"Subject: Your message to a buyer could not be delivered\r\n"
        f"Date: Tue, 11 Jun 2024 14:22:05 -0700\r\n"
        f"Message-ID: <{notice_message_id(order, seq)}>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=UTF-8\r\n"
        f"Content-Transfer-Encoding: 7bit\r\n"
        f"\r\n"
        f"Dear Seller,\r\n\r\n"
        f"We were unable to deliver the message you sent{to} for order {order} because the buyer "
        f"has chosen to opt out of receiving unsolicited messages from sellers.\r\n\r\n"
        f"If your message is critical to completing the order, add [Important], with the brackets, "
        f"anywhere in the subject line and send it again.\r\n\r\n"
        f"Sincerely,\r\nAmazon Seller Support\r\n"
    ).encode()


def content_policy_notice(order: str, buyer: str) -> bytes:
    """Same sender and subject, but a content-policy rejection: must block nobody."""
    return (
        "From: \"Amazon.com\" <auto-communication@amazon.com>\r\n"
        "To: seller@seller.example\r\n"
        "Subject: Your message to a buyer could not be delivered\r\n"
        "Date: Tue, 11 Jun 2024 14:22:05 -0700\r\n"
        f"Message-ID: <policy-{order}@email.amazonses.com>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
        f"Dear Seller,\r\n\r\nWe were unable to deliver the message you sent to {buyer} for order {order} "
        "because it contains an external link, which is not permitted by our communication guidelines.\r\n"
    ).encode()
