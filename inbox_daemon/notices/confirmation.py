"""Forwarding confirmations: before a mail provider forwards a seller's mail to the opt-out
address, it mails that address a code and a link to confirm the rule. Such a mail is not an
Amazon notice, but someone must act on it or no notice will ever arrive.

Known shape: Gmail's (From ``forwarding-noreply@google.com``, Subject ``(#<code>) Gmail
Forwarding Confirmation - Receive Mail from <address>`` in the account's language, the body
naming the address, the code and a ``https://mail-settings.google.com/mail/vf-...`` link).
Nothing here is proof: anyone can send such a mail, so only a link to Google's own host is
offered, and the requester is shown as the mail says it."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Confirmation", "forwarding_confirmation", "REASON_PREFIX"]

REASON_PREFIX: Final = "forwarding confirmation"
_GMAIL_SENDER: Final = b"forwarding-noreply@google.com"
_CODE: Final = re.compile(r"\(#(\d{6,12})\)")
_BODY_CODE: Final = re.compile(r"(?<!\d)(\d{6,12})(?!\d)")
_LINK: Final = re.compile(r"https://mail(?:-settings)?\.google\.com/mail/(?:u/\d+/)?vf-[A-Za-z0-9%_\-.\[\]]+")
_ADDRESS: Final = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


@dataclass(frozen=True)
class Confirmation:
    provider: str  # "gmail"
    requester: str  # the address that asked to forward here, as the mail says
    code: str
    link: str  # on the provider's own host only

    def reason(self) -> str:
        """The message's stored reason: it marks the message as a confirmation to act on."""
        return f"{REASON_PREFIX}: {self.requester} asks to forward mail here ({self.provider} code {self.code})"


def forwarding_confirmation(raw: bytes) -> Confirmation | None:
    """The confirmation a message carries, or None (most mail: a cheap check of the head first)."""
    head = raw[:16384].lower()
    if _GMAIL_SENDER not in head:
        return None
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        if _GMAIL_SENDER.decode() not in str(message.get("From", "")).lower():
            return None
        subject = str(message.get("Subject", ""))
        part = message.get_body(("plain", "html"))
        body = part.get_content() if part is not None else ""
    except Exception:  # damaged mail is not a confirmation worth showing
        return None
    if not isinstance(body, str):
        return None
    code = _CODE.search(subject) or _BODY_CODE.search(body)
    link = _LINK.search(body)
    in_subject = _ADDRESS.findall(subject)  # "... Receive Mail from <address>": the last one
    requester = in_subject[-1] if in_subject else next(iter(_ADDRESS.findall(body)), None)
    if code is None or link is None or requester is None:
        return None
    return Confirmation("gmail", requester.lower(), code.group(1), link.group(0))
