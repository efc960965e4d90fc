"""Attribution: which seller a message speaks for, from the parser's forwarding identity and
the envelope.

Two kinds of proof, strongest first:

* the ``+token`` of a per-seller recipient address ``<local>+<token>@<domain>`` (RFC 5233
  subaddressing): an envelope recipient, else a Delivered-To / X-Original-To header that an MTA
  wrote when it delivered to that address before relaying to us. A notice Amazon sends
  directly (Notification Preferences -> Buyer Opt-Out) carries no forwarding header; the token
  alone says whose it is;
* the forwarder the parser identified (``ParseResult.forwarder``): the outer From of an inline
  or attached forward, Resent-From, X-Forwarded-For, Delivered-To / X-Original-To
  (``inbox_daemon.notices.forwarder`` has the order and the corpus samples).

The envelope sender is not used: after a redirect it is Amazon's bounce address (SES) or an
SRS rewrite, and it says nothing about the seller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from ..notices.addresses import first_address
from ..notices.result import ParseResult

__all__ = ["Attribution", "Registry", "attribute", "recipient_token", "seller_address", "TOKEN_RE"]

TOKEN_RE = re.compile(r"^[a-z0-9]{6,32}$")
_TRACE_HEADERS = ("delivered-to", "x-original-to")
_HEADER_BYTES = 64 * 1024  # the header block is read from at most this much of the message
_TRACE_WITH_PLUS = re.compile(rb"(?im)^(?:delivered-to|x-original-to):[^\r\n]*\+")


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who passed the message on, as far as the message and envelope tell."""

    forwarder: str | None  # lower-case address, from the parser
    via: str | None  # how: the parser's forwarded_via
    token: str | None  # the +token of a per-seller address, if any

    @property
    def rate_key(self) -> str:
        """What the per-forwarder cap counts against: the forwarder, else the token."""
        if self.forwarder:
            return self.forwarder
        return f"+{self.token}" if self.token else "-"


@dataclass(frozen=True)
class Registry:
    """A snapshot of the sellers and their forwarders, as the admission step sees them."""

    by_token: Mapping[str, int]  # token -> seller id
    by_forwarder: Mapping[str, int]  # forwarder address -> seller id

    def seller_for(self, who: Attribution) -> int | None:
        """The seller the token names, else the one that registered the forwarder."""
        if who.token and who.token in self.by_token:
            return self.by_token[who.token]
        if who.forwarder:
            return self.by_forwarder.get(who.forwarder.lower())
        return None


def recipient_token(address: str | None) -> str | None:
    """``optout+k3x9q2@sellers.example`` -> ``k3x9q2`` (RFC 5233 ``+detail``); else None."""
    if not address:
        return None
    local, at, _ = address.strip().strip("<>").rpartition("@")
    base, plus, detail = local.partition("+")
    detail = detail.lower()
    return detail if at and plus and base and TOKEN_RE.match(detail) else None


def seller_address(base: str, token: str) -> str:
    """The per-seller recipient address: ``<local>+<token>@<domain>`` from ``local@domain``."""
    local, _, domain = base.rpartition("@")
    return f"{local.partition('+')[0]}+{token}@{domain}"


def attribute(result: ParseResult, envelope_to: Sequence[str], raw: bytes = b"") -> Attribution:
    """Attribution of one message: pure, from the parse result, envelope and top headers."""
    token = next((t for t in map(recipient_token, envelope_to) if t), None)
    if token is None and _TRACE_WITH_PLUS.search(raw[:_HEADER_BYTES]):  # header parse only then
        token = _trace_token(raw)
    forwarder = result.forwarder.lower() if result.forwarder else None
    return Attribution(forwarder=forwarder, via=result.forwarded_via, token=token)


def _trace_token(raw: bytes) -> str | None:
    """A token in the delivery trace headers of the top message (the oldest first)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:_HEADER_BYTES])
    for name in _TRACE_HEADERS:
        for value in reversed(headers.get_all(name) or []):
            token = recipient_token(first_address(str(value)))
            if token:
                return token
    return None
