"""DKIM evidence: does Amazon's own signature still verify (RFC 6376)?

Amazon signs its notices (``d=amazon.com`` and its SES domain). The signature survives where
the bytes do: direct delivery, a redirect that only adds headers on top (Resent-*, Sieve,
X-Forwarded-For; RFC 6376 section 5.4 signs a chosen header list, so headers added later do
not break it), and an original attached as message/rfc822 or as an ``.eml`` file. An inline
forward rewrites the body: no signature is left, which is "absent", not "failed".

Pure but for the key lookup: ``dnsfunc(name, timeout=...) -> bytes | None`` is injected
(dkimpy's own interface), so tests sign with their own key and nothing asks DNS. A
``keys_file`` pins keys for machines without DNS: one ``<selector>._domainkey.<domain> <TXT>``
per line.
"""

from __future__ import annotations

import email
import email.policy
import fnmatch
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information

__all__ = [
    "VERIFIED",
    "FAILED",
    "ABSENT",
    "AMAZON_DKIM_DOMAINS",
    "DkimEvidence",
    "DnsFunc",
    "check_dkim",
    "cached_dns",
    "pinned_keys",
]

VERIFIED, FAILED, ABSENT = "verified", "failed", "absent"
AMAZON_DKIM_DOMAINS = ("amazon.*", "*.amazon.*", "amazonses.com")
MAX_ATTACHED = 20  # attached originals looked at per message
DNS_TIMEOUT_S = 5

DnsFunc = Callable[..., bytes | None]


@dataclass(frozen=True, slots=True)
class DkimEvidence:
    """The verdict on Amazon's signature: verified, failed or absent."""

    status: str
    domain: str | None = None  # the d= of the signature that decided
    detail: str | None = None  # where it verified ("direct", "attached") or why it failed


def check_dkim(
    raw: bytes, *, domains: tuple[str, ...] = AMAZON_DKIM_DOMAINS, dnsfunc: DnsFunc | None = None
) -> DkimEvidence:
    """Verify every Amazon signature in the message and its attached originals; one passing
    is enough. Signatures of other domains (the forwarder's own) are not Amazon's word."""
    low = raw.lower()
    if b"dkim-signature" not in low and b"base64" not in low:
        return DkimEvidence(ABSENT)  # the common case, without a MIME walk
    lookup = dnsfunc or cached_dns
    failed: DkimEvidence | None = None
    for where, message in _signed_messages(raw):
        for idx, domain in _amazon_signatures(message, domains):
            ok, why = _verify(message, idx, lookup)
            if ok:
                return DkimEvidence(VERIFIED, domain, where)
            failed = failed or DkimEvidence(FAILED, domain, f"{where}: {why}")
    return failed or DkimEvidence(ABSENT)


_DNS_CACHE: dict[bytes | str, tuple[float, bytes | None]] = {}
DNS_TTL_S, DNS_NEGATIVE_TTL_S, DNS_CACHE_MAX = 3600.0, 300.0, 1024


def cached_dns(name: bytes | str, timeout: float = DNS_TIMEOUT_S) -> bytes | None:
    """dkimpy's DNS lookup with a small cache: Amazon signs with a handful of selectors, and
    asking DNS for the same key on every notice would bound intake by DNS latency."""
    now = time.monotonic()
    hit = _DNS_CACHE.get(name)
    if hit is not None and hit[0] > now:
        return hit[1]
    value: bytes | None = dkim.dnsplug.get_txt(name, timeout=timeout)
    if len(_DNS_CACHE) >= DNS_CACHE_MAX:
        _DNS_CACHE.clear()
    _DNS_CACHE[name] = (now + (DNS_TTL_S if value else DNS_NEGATIVE_TTL_S), value)
    return value


def _verify(message: bytes, idx: int, lookup: DnsFunc) -> tuple[bool, str]:
    try:
        checker = dkim.DKIM(message, timeout=DNS_TIMEOUT_S)
        if checker.verify(idx=idx, dnsfunc=lookup):
            return True, ""
        return False, "signature does not verify"
    except dkim.DnsTimeoutError as exc:  # temporary: ``quarantine reprocess`` tries again
        return False, f"key lookup failed: {exc}"
    except dkim.DKIMException as exc:
        return False, f"{type(exc).__name__}: {exc}"[:300]


def _signed_messages(raw: bytes) -> Iterator[tuple[str, bytes]]:
    """The message itself, then each original attached to it (message/rfc822 or .eml)."""
    yield "direct", raw
    root = email.message_from_bytes(raw, policy=email.policy.compat32)
    found = 0
    for part in root.walk():
        if found >= MAX_ATTACHED:
            return
        attached = _attached_bytes(part)
        if attached:
            found += 1
            yield "attached", attached


def _attached_bytes(part: email.message.Message) -> bytes | None:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
            return inner[0].as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))
        return None
    name = (part.get_filename() or "").lower()
    if name.endswith(".eml") and not part.is_multipart():
        payload = part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else None
    return None


def _amazon_signatures(message: bytes, domains: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """(index among the DKIM-Signature headers, d=) of the signatures by an Amazon domain."""
    headers = email.message_from_bytes(message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0])
    for idx, value in enumerate(headers.get_all("dkim-signature") or []):
        tags = dict(_tag(t) for t in str(value).replace("\r", "").replace("\n", "").split(";") if "=" in t)
        domain = tags.get("d", "").lower()
        if domain and any(fnmatch.fnmatchcase(domain, p) for p in domains):
            yield idx, domain


def _tag(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name.strip().lower(), "".join(value.split())


def pinned_keys(path: str | Path) -> DnsFunc:
    """A ``dnsfunc`` answering from a file of pinned keys instead of DNS (None if absent)."""
    records: dict[str, bytes] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, txt = line.strip().partition(" ")
            records[name.rstrip(".").lower()] = txt.strip().encode()

    def lookup(name: bytes | str, timeout: float = DNS_TIMEOUT_S) -> bytes | None:
        key = name.decode() if isinstance(name, bytes) else name
        return records.get(key.rstrip(".").lower())

    return lookup
