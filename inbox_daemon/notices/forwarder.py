"""The forwarding identity: who passed a notice on to us, and how.

Trust keys on it (who may add to the blocklist). Sources, most specific first:

* inline or attachment forward: the outer From (the person who pressed "Forward");
* Resent-From (RFC 5322 section 3.6.6; Exchange redirect rules, corpus s12);
* X-Forwarded-For (Gmail filters: "<original recipient> <new recipient>", corpus s11);
* X-Sieve-Redirected-From (Sieve redirect, RFC 5228 section 4.2 implementations);
* Delivered-To / X-Original-To: the oldest Delivered-To when several, else the notice's own To
  when the mail was delivered to another address (server-side redirect, corpus s13).
"""

from __future__ import annotations

from typing import Final

from .addresses import first_address
from .mime import Headers

__all__ = ["identify"]

_REDIRECT_HEADERS: Final = (
    ("resent-from", "resent"),
    ("x-forwarded-for", "x-forwarded-for"),
    ("x-sieve-redirected-from", "sieve"),
)


def identify(headers: Headers, via: str) -> tuple[str | None, str | None]:
    """(forwarder address, how) for a mail whose notice arrived ``via`` direct/inline/attachment."""
    if via in ("inline", "reply", "attachment"):
        return first_address(headers.get("from")), via
    for name, how in _REDIRECT_HEADERS:
        address = first_address(headers.get(name))
        if address:
            return address, how
    return _delivered(headers)


def _delivered(headers: Headers) -> tuple[str | None, str | None]:
    """A redirect that left only delivery traces: Delivered-To / X-Original-To versus To."""
    delivered = [a for a in map(first_address, headers.get_all("delivered-to")) if a]
    if len(delivered) >= 2 and delivered[-1] != delivered[0]:
        return delivered[-1], "delivered-to"
    original = first_address(headers.get("x-original-to"))
    final = delivered[0] if delivered else None
    if original and final and original != final:
        return original, "x-original-to"
    addressed = first_address(headers.get("to"))
    if final and addressed and addressed != final:
        return addressed, "redirect"
    return None, None
