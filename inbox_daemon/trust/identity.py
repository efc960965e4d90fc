"""Which forwarder a message speaks for, from what an outsider cannot forge.

A header names a forwarder (a *claim*); a claim is *authenticated* only by:

* ``dkim``: a DKIM signature that verifies (RFC 6376) with a ``d=`` aligned with the claimed
  address's domain (relaxed alignment as DMARC defines it, RFC 7489 section 3.1.1) and that
  covers the claiming header (``h=``: From always, RFC 6376 section 5.4; Resent-From only when
  listed);
* ``arc``: an ARC chain that validates (RFC 8617 section 5.2), sealed by a configured trusted
  sealer whose ARC-Authentication-Results say ``dkim=pass`` for an aligned ``header.d`` or
  ``dmarc=pass`` for the From domain (From claims only: that is what those results are about);
* ``relay``: the SMTP client is a configured trusted relay (it authenticated its senders and
  vouches for the From and Resent-From it hands on).

Resent-From without a covering signature, X-Forwarded-For, X-Sieve-Redirected-From,
Delivered-To, X-Original-To and an unsigned From stay claims: recorded as evidence, never
the decision. Addresses are the RFC 5322 addr-spec as ``email.headerregistry`` parses it;
display names and comments never count, and a header with parse defects claims nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast
from email.headerregistry import AddressHeader, BaseHeader
from email.message import Message
from email.parser import BytesHeaderParser
from email import errors, policy

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information

from ..notices.addresses import ATEXT, DOT_ATOM, is_amazon_host
from ..notices.mimesplit import header_fields
from .dkim import DNS_TIMEOUT_S, DnsFunc, cached_dns

__all__ = ["Claim", "Identify", "claims_of", "header_claims", "aligned", "is_trusted_relay", "EVIDENCE_ONLY"]

HEADER_BYTES = 64 * 1024  # the top header block is read from at most this much of the message
#: Headers that name a forwarder but that nobody can authenticate: evidence only.
EVIDENCE_ONLY = ("x-forwarded-for", "x-sieve-redirected-from", "delivered-to", "x-original-to")
_SIGNABLE = ("from", "resent-from")
_RESULT_RE = re.compile(r"\b(dkim|dmarc)\s*=\s*pass\b([^;]*)", re.I)
_PROP_RE = re.compile(r"\bheader\.(d|from)\s*=\s*([^\s;]+)", re.I)
_TAG_SPLIT = re.compile(r"\s*;\s*")


@dataclass(frozen=True, slots=True)
class Claim:
    """A header naming an address as the forwarder, and what authenticated it (if anything)."""

    address: str  # the addr-spec, lower-case
    header: str  # from | resent-from | x-forwarded-for | x-sieve-redirected-from | delivered-to | x-original-to
    proof: str | None = None  # "dkim d=acme.example", "arc i=2 sealer.example", "relay 192.0.2.7"; None: a claim only

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def missing(self) -> str:
        """What would have authenticated this claim (for the quarantine reason)."""
        if self.header in EVIDENCE_ONLY:
            return f"{self.header} is evidence, not proof; no seller token in the envelope"
        covering = "" if self.header == "from" else " covering Resent-From"
        arc = ", no trusted ARC seal" if self.header == "from" else ""
        return f"no DKIM signature aligned with {self.domain}{covering}{arc}, not from a trusted relay"


def _header_block(raw: bytes) -> Message:
    crlf = raw.find(b"\r\n\r\n", 0, HEADER_BYTES)
    end = crlf + 2 if crlf >= 0 else raw.find(b"\n\n", 0, HEADER_BYTES) + 1
    return _headers(raw[:end] if end > 0 else raw[:HEADER_BYTES])


def _headers(block: bytes) -> Message:
    """A header block as ``email.policy.default`` reads it. Split as compat32 splits it, then
    given the default policy: both store each header's source value alike
    (``header_source_parse``), and header objects are made when fetched, under the message's
    policy. A regular block is split by ``mimesplit`` (FeedParser cost a third of this module's
    time per message); others by compat32's parser, whose closing check for multipart does not
    parse Content-Type through the header registry, as the default policy's does."""
    fields = header_fields(block.decode("ascii", "surrogateescape"))
    if fields is None:
        message = BytesHeaderParser(policy=policy.compat32).parsebytes(block)
    else:
        message = Message(policy=policy.compat32)
        message._headers = fields  # type: ignore[attr-defined]  # what FeedParser sets
    message.policy = policy.default
    return message


# A mailbox ``_mailbox`` reads without the header registry: ASCII, no encoded word ("=?"), one
# mailbox as ``a@b.example``, ``Plain Words <a@b.example>``, ``"Quoted name" <a@b.example>`` or
# ``<a@b.example>``, every part a dot-atom (RFC 5322 sections 3.2.3, 3.4). The registry reads
# each such value to that addr-spec with no defect; tests/trust/test_identity.py holds the two
# to each other. Anything else (comments, several addresses, dots in a display name: an
# obsolete phrase, a defect) is the registry's to read: its parse cost half a message's trust
# and parse work together.
_PLAIN_MAILBOX = re.compile(
    rf"[ \t]*+(?:(?P<bare>{DOT_ATOM}@{DOT_ATOM})"
    rf'|(?:{ATEXT}++(?:[ \t]++{ATEXT}++)*+|"[\x20\x21\x23-\x5b\x5d-\x7e\t]*+")?+[ \t]*+<(?P<angle>{DOT_ATOM}@{DOT_ATOM})>)'
    r"[ \t]*+"
)
_UNREAD = "\0unread"  # ``_plain_mailbox``: not a plain mailbox, for the registry to read


def _plain_mailbox(value: str) -> str | None:
    """The addr-spec of a plain mailbox (``_PLAIN_MAILBOX``) as ``_mailbox`` gives it, or
    ``_UNREAD``. ``value`` is the header's source value."""
    value = value.replace("\r", "").replace("\n", "")  # unfolded, as policy.default fetches it
    found = _PLAIN_MAILBOX.fullmatch(value) if "=?" not in value else None
    if found is None:
        return _UNREAD
    spec = (found.group("bare") or found.group("angle")).lower()
    return spec if "." in spec.rpartition("@")[2] else None


def _mailbox(headers: Message, name: str, only: bool = True) -> str | None:
    """The one addr-spec of an address header (the first of several instances when not
    ``only``); None when absent, ambiguous or defective."""
    values = [value for key, value in headers.raw_items() if key.lower() == name]
    if not values or (only and len(values) > 1):
        return None
    return _addr_spec(name, values[0])


def _addr_spec(name: str, value: str) -> str | None:
    """The one addr-spec of address header ``name`` whose source value is ``value``: a plain
    mailbox read the cheap way, any other through ``email.headerregistry``."""
    plain = _plain_mailbox(value)
    return _registry_mailbox(name, value) if plain is _UNREAD else plain


def _registry_mailbox(name: str, value: str) -> str | None:
    """``_addr_spec`` through ``email.headerregistry``, as ``email.policy.default`` fetches
    the header (``Message.get_all``)."""
    header = cast(AddressHeader, policy.default.header_fetch_parse(name, value))
    try:
        addresses, defects = header.addresses, cast(BaseHeader, header).defects
    except (AttributeError, IndexError, ValueError):  # the header parser gave up on it
        return None
    # 8-bit text in a display name (RFC 6532) is no reason to doubt the address; any other
    # defect is: "ops@acme.example <attacker@evil.example>" parses, defective, as the first.
    if any(not isinstance(d, errors.UndecodableBytesDefect) for d in defects) or len(addresses) != 1:
        return None
    spec = str(addresses[0].addr_spec).lower()
    local, at, domain = spec.rpartition("@")
    return spec if at and local and "." in domain and spec.isascii() and spec.isprintable() else None


def _loose(headers: Message, name: str) -> str | None:
    """The first addr-spec in an evidence header (Gmail's ``X-Forwarded-For: a@b c@d`` is no
    address list, so its first word is read alone, as the value of a To header)."""
    values = headers.get_all(name) or []
    if not values:
        return None
    first = str(values[0 if name != "delivered-to" else -1]).strip().split()
    if not first:
        return None
    return _addr_spec("to", first[0].encode("ascii", "replace").decode("ascii"))


def claims_of(raw: bytes) -> tuple[Message, list[Claim]]:
    """Every header of the top message that names a forwarder, in order of strength."""
    headers = _header_block(raw)
    found: list[Claim] = []
    sender = _mailbox(headers, "from")
    if sender and not is_amazon_host(sender.rpartition("@")[2]):  # Amazon's own From is the notice's author
        found.append(Claim(sender, "from"))
    resent = _mailbox(headers, "resent-from", only=False)
    if resent:
        found.append(Claim(resent, "resent-from"))
    for name in EVIDENCE_ONLY:
        address = _loose(headers, name)
        if address and not any(c.address == address for c in found) and not _is_ours(address, headers):
            found.append(Claim(address, name))
    return headers, found


def header_claims(raws: Sequence[bytes]) -> list[list[Claim]]:
    """``claims_of`` of each message, none for one whose headers defeat the parser. Pure and
    picklable, so processing can run it in its parser worker beside the parse rather than on
    the event loop (reading address headers is most of a plain message's trust cost)."""
    found: list[list[Claim]] = []
    for raw in raws:
        try:
            found.append(claims_of(raw)[1])
        except Exception:  # a damaged message claims nothing
            found.append([])
    return found


def _is_ours(address: str, headers: Message) -> bool:
    """Delivery traces naming the address the mail was sent to are no forwarding claim."""
    to = _mailbox(headers, "to")
    return to == address


def aligned(signer: str, domain: str) -> bool:
    """Relaxed identifier alignment (RFC 7489 section 3.1.1) without a public suffix list: the
    same domain, or one a subdomain of the other, never a bare top-level label."""
    signer, domain = signer.lower().rstrip("."), domain.lower().rstrip(".")
    if "." not in signer or "." not in domain:
        return False
    return signer == domain or domain.endswith("." + signer) or signer.endswith("." + domain)


def is_trusted_relay(peer: str | None, relays: Sequence[str]) -> str | None:
    """The peer's IP address if it lies in one of the configured addresses or CIDR blocks."""
    if not peer or not relays:
        return None
    try:  # intake writes "<address>:<port>" (IPv6 without brackets)
        address = ipaddress.ip_address(peer.rpartition(":")[0].strip("[]"))
    except ValueError:
        return None
    for relay in relays:
        if address in ipaddress.ip_network(relay, strict=False):
            return str(address)
    return None


def _signatures(headers: Message) -> Iterator[tuple[int, str, set[str]]]:
    """(index, d=, signed header names) of each DKIM-Signature of the top message."""
    for idx, value in enumerate(headers.get_all("dkim-signature") or []):
        tags = {}
        for part in _TAG_SPLIT.split(re.sub(r"\s+", "", str(value))):
            name, eq, tag = part.partition("=")
            if eq:
                tags[name.lower()] = tag
        signed = {h.strip().lower() for h in tags.get("h", "").split(":") if h.strip()}
        if tags.get("d"):
            yield idx, tags["d"].lower(), signed


class Identify:
    """Authenticates the claims of one message: DKIM, trusted ARC sealers, trusted relays."""

    def __init__(
        self, *, trusted_relays: Sequence[str] = (), trusted_arc_sealers: Sequence[str] = (), dnsfunc: DnsFunc | None = None
    ) -> None:
        self._relays = tuple(trusted_relays)
        self._sealers = frozenset(s.lower().rstrip(".") for s in trusted_arc_sealers)
        self._dns = dnsfunc or cached_dns

    def __call__(self, raw: bytes, *, peer: str | None = None, source: str = "smtp") -> list[Claim]:
        """The claims, each with its proof where one holds."""
        headers, found = claims_of(raw)
        relay = is_trusted_relay(peer, self._relays) if source == "smtp" else None
        return [self._prove(raw, headers, claim, relay) for claim in found]

    def _prove(self, raw: bytes, headers: Message, claim: Claim, relay: str | None) -> Claim:
        if claim.header not in _SIGNABLE:
            return claim
        if relay:
            return Claim(claim.address, claim.header, f"relay {relay}")
        if claim.header == "resent-from" and len(headers.get_all("resent-from") or []) != 1:
            return claim  # several resends: which one a signature covers is not certain
        for idx, signer, signed in _signatures(headers):
            if claim.header in signed and aligned(signer, claim.domain) and self._verifies(raw, idx):
                return Claim(claim.address, claim.header, f"dkim d={signer}")
        if claim.header == "from" and self._sealers and headers.get("arc-seal") is not None:
            sealed = self._arc(raw, headers, claim.domain)
            if sealed:
                return Claim(claim.address, claim.header, sealed)
        return claim

    def _verifies(self, raw: bytes, idx: int) -> bool:
        try:
            return bool(dkim.DKIM(raw, timeout=DNS_TIMEOUT_S).verify(idx=idx, dnsfunc=self._dns))
        except Exception:  # dkimpy raises on damaged signatures and failed lookups: not verified
            return False

    def _arc(self, raw: bytes, headers: Message, domain: str) -> str | None:
        """"arc i=N <sealer>" when the chain validates and a trusted sealer vouches for the domain."""
        try:
            cv, results, _ = dkim.arc_verify(raw, dnsfunc=self._dns, timeout=DNS_TIMEOUT_S)
        except Exception:
            return None
        if cv != b"pass":
            return None
        results_by_instance = {}
        for value in headers.get_all("arc-authentication-results") or []:
            number = re.match(r"\s*i\s*=\s*(\d+)", str(value))
            if number:
                results_by_instance[int(number.group(1))] = str(value)
        for result in results:
            sealer = _text(result.get("as-domain")).lower()
            if sealer not in self._sealers:
                continue
            instance = int(result.get("instance", 0))
            if _vouches(results_by_instance.get(instance, ""), domain):
                return f"arc i={instance} {sealer}"
        return None


def _text(value: object) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")


def _vouches(results: str, domain: str) -> bool:
    """ARC-Authentication-Results saying dkim=pass (aligned header.d) or dmarc=pass (header.from)."""
    for method, props in _RESULT_RE.findall(results):
        for name, value in _PROP_RE.findall(props):
            value = value.strip('"').lower()
            if (method.lower(), name.lower()) == ("dkim", "d") and aligned(value, domain):
                return True
            if (method.lower(), name.lower()) == ("dmarc", "from") and value == domain:
                return True
    return False
