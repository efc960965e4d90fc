"""Amazon's domains, buyer relay addresses and order ids: recognising and normalising them.

Relay addresses are 15 lower-case letters and digits at ``marketplace.amazon.<tld>`` (corpus s01-s16);
notices sometimes show them upper-cased inside a display name (corpus s06) or with a ``+tag``.
The +tag is stripped, as ``inbox_daemon.keys`` (the one rule for every path) says: it is a
routing variant of the same anonymised buyer, and the blocklist keys on the buyer.
"""

from __future__ import annotations

import re
from typing import Final

from .. import keys
from ..keys import ATEXT, DOT_ATOM  # for trust, which reads addresses through this module

__all__ = [
    "ATEXT",
    "DOT_ATOM",
    "MARKETPLACE_TLDS",
    "AMAZON_SENDER_DOMAINS",
    "RELAY_DOMAINS",
    "find_relay_addresses",
    "find_forged_relay_domains",
    "find_order_ids",
    "normalise_relay_address",
    "sender_address",
    "sender_kind",
    "first_address",
    "is_amazon_host",
]

# Marketplaces whose domain may send notices and host relay addresses. Amazon.com.au and the
# younger marketplaces (.sg, .ae, .sa, .eg, .com.be, .ie, .co.za) follow the same scheme.
MARKETPLACE_TLDS: tuple[str, ...] = (
    "com", "co.uk", "de", "fr", "it", "es", "ca", "com.mx", "co.jp", "in", "com.au", "nl",
    "se", "pl", "com.tr", "com.br", "sg", "ae", "sa", "com.be", "eg", "ie", "co.za", "cn",
)
AMAZON_SENDER_DOMAINS: Final = frozenset(f"amazon.{tld}" for tld in MARKETPLACE_TLDS)
RELAY_DOMAINS: Final = frozenset(f"marketplace.amazon.{tld}" for tld in MARKETPLACE_TLDS)

# Matching runs on lower-cased text (the output is lower-case anyway) and starts from the literal
# "@marketplace.amazon." so the regex engine can skip ahead; the 15-character local part is then
# checked on the few characters before the "@". Right edge: the domain must end there — not
# continue into ".relay-notify.example" (the forged s23) or a longer label.
_RELAY_DOMAIN_RE: Final = re.compile(r"@(marketplace\.amazon\.[a-z]{2,3}(?:\.[a-z]{2})?)(?![\w-]|\.[a-z0-9])")
# Left edge: not inside a longer local part; an optional +tag between the id and the "@".
_RELAY_LOCAL_RE: Final = re.compile(r"(?<![\w.%+=-])([a-z0-9]{15})(?:\+[a-z0-9._=-]{0,64})?$")
_ANY_MARKETPLACE_RE: Final = re.compile(r"@(marketplace\.amazon\.[a-z0-9.-]*[a-z0-9])")
# keys.ORDER_ID_PATTERN (3-7-7 ASCII digits, or a digital order's D + 2-7-7); not part of a longer
# run of digits or dashes: a cut id is no id
# (wrappings_marketplaces_lookalikes/damaged_order_id_3_7_6_only.eml), and a longer tracking or
# phone number may hold the pattern. A digital order's "D" must not end a word ("ID01-...").
# The left edge is looked at from the id's end (an id is 19 characters): edge checks in front
# ran at every position of the text, a tenth of the parse of tests/data/notices/fwd_gmail_4k.eml.
_ORDER_RE: Final = re.compile(
    rf"{keys.ORDER_ID_PATTERN}(?<![0-9-].{{19}})(?<![A-Za-z][Dd].{{18}})(?![0-9-]|-[0-9])", re.DOTALL
)
# Amazon writes order ids in ASCII, but Japanese text uses full-width digits and hyphens
# (replies_mime_oddities_bulk_mail/jp_utf8_fullwidth_digits_order_id.eml) and editors turn hyphens into dashes
# (replies_mime_oddities_bulk_mail/outlookcom_html_order_id_en_dashes.eml). Digits and dashes are folded one to one
# before matching, so the stored id is always ASCII; Arabic-Indic digits likewise.
_ORDER_FOLD: Final = str.maketrans(
    {**{chr(base + n): str(n) for base in (0xFF10, 0x0660, 0x06F0) for n in range(10)},
     **{dash: "-" for dash in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"}}
)
# Any character the fold changes: str.translate looks every character up one by one, a regex
# finds in one C-level scan whether there is anything to fold at all.
_FOLDED: Final = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_ORDER_FOLD)) + "]")
_ANGLE_ADDR_RE: Final = re.compile(r"<\s*(?:mailto:)?([^<>@\s\"]+@[^<>@\s\"]+?)\s*>")
# A bare address must stand alone: "a@marketplace@amazon.com" is not "marketplace@amazon.com".
_BARE_ADDR_RE: Final = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~@-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+(?![\w@-])")


def normalise_relay_address(address: str) -> str | None:
    """The canonical form (``keys.address``) of a relay address, or None if not one."""
    found = find_relay_addresses(address)
    return found[0] if len(found) == 1 else None


def find_relay_addresses(text: str, *, open_end: bool = False) -> list[str]:
    """Relay addresses in the text, canonical, in order of first appearance, each once.

    ``open_end``: the text was cut off, so an address running into its very end is dropped —
    relay domains nest (".com" is a whole prefix of ".com.au"), so a cut one can look complete
    (wrappings_marketplaces_lookalikes/damaged_truncated_after_dot_com_of_com_au.eml).
    """
    low = text.lower()
    seen: dict[str, None] = {}
    for found in _RELAY_DOMAIN_RE.finditer(low):
        domain = found.group(1)
        if open_end and found.end() == len(low):
            continue
        local = _RELAY_LOCAL_RE.search(low, max(0, found.start() - 80), found.start())
        if local is not None and domain in RELAY_DOMAINS:
            seen.setdefault(f"{local.group(1)}@{domain}", None)
    return list(seen)


def find_forged_relay_domains(text: str) -> list[str]:
    """Domains that pose as ``marketplace.amazon.*`` but are not one (corpus s23)."""
    domains = {m.group(1) for m in _ANY_MARKETPLACE_RE.finditer(text.lower())}
    return sorted(d for d in domains if d not in RELAY_DOMAINS)


def find_order_ids(text: str) -> list[str]:
    """Order ids (``keys.order_id``'s canonical form) in order of first appearance, each once."""
    if not text.isascii() and _FOLDED.search(text) is not None:
        text = text.translate(_ORDER_FOLD)
    found = (keys.order_id(match) for match in _ORDER_RE.findall(text))
    return list(dict.fromkeys(order for order in found if order is not None))


def first_address(value: str | None) -> str | None:
    """The first mail address in a header value ("Name <a@b>", "<a@b>", "a@b c@d"), lower-case."""
    if not value:
        return None
    found = _ANGLE_ADDR_RE.search(value)
    if found is not None:
        return found.group(1).lower()
    bare = _BARE_ADDR_RE.search(value)
    return bare.group(0).lower() if bare is not None else None


def sender_address(value: str | None) -> str | None:
    """The sender address of a From value; alias of ``first_address`` for readability."""
    return first_address(value)


def sender_kind(address: str | None) -> str:
    """"amazon" (an Amazon marketplace domain), "relay" (a buyer relay), "none" or "other"."""
    if not address or "@" not in address:
        return "none"
    domain = address.rsplit("@", 1)[1].rstrip(".")
    if domain in AMAZON_SENDER_DOMAINS:
        return "amazon"
    if domain in RELAY_DOMAINS:
        return "relay"
    return "other"


def is_amazon_host(host: str) -> bool:
    """Whether a host name is an Amazon marketplace domain or one of its subdomains
    (``amazon.de``, ``sellercentral.amazon.de``, ``www.amazon.co.jp``)."""
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in AMAZON_SENDER_DOMAINS)
