"""The one validator for the keys of the blocklist: relay addresses and Amazon order ids,
and the notice counts read back with them.

Every path that writes a key (applying a notice, a learnt address, an imported CSV, a
registered forwarder) and every path that reads keys into the index goes through here, so
that nothing is stored that the index cannot hold. A leaf module: it imports nothing of the
package.
"""

from __future__ import annotations

import re

__all__ = ["address", "order_id", "notice_count", "MAX_ADDRESS"]

MAX_ADDRESS = 320  # RFC 3696 errata: 64 octets of local part, @, 255 of domain
_ORDER_ID = re.compile(r"[0-9]{3}-[0-9]{7}-[0-9]{7}")  # Amazon's order id: 3-7-7 digits
_NOT_IN_ADDRESS = frozenset('<>"()[],;:\\')


def address(value: str) -> str | None:
    """The stored form of an address (lower-case, no angle brackets) or None when it is not
    one ``local@domain``: one ``@``, both sides present, no spaces, controls or specials."""
    text = value.strip().strip("<>").strip().lower()
    local, at, domain = text.partition("@")
    if not (at and local and domain) or "@" in domain or len(text) > MAX_ADDRESS:
        return None
    if any(c <= " " or c == "\x7f" or c in _NOT_IN_ADDRESS for c in text):
        return None
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return None
    return text


def order_id(value: str) -> str | None:
    """The order id without surrounding spaces, or None when it is not ``NNN-NNNNNNN-NNNNNNN``."""
    text = value.strip()
    return text if _ORDER_ID.fullmatch(text) else None


def notice_count(value: object) -> int | None:
    """How many notices named a blocked key, or None when the value cannot be one: a count of
    an active opt-out is a whole number from 1 up (``applying`` starts it at 1 and only adds).
    A zero, negative or non-integer count read back is a row written by hand or by a bug."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value
