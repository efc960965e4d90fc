"""Builders for the trust tests: forwards, redirects and attached originals of a notice, and
DKIM signatures made with the test key in tests/data/dkim (no DNS: the key lookup is injected,
or pinned through ``[security] dkim_keys_file``)."""

from __future__ import annotations

import base64
from pathlib import Path

import dkim

KEYS = Path(__file__).resolve().parents[1] / "data" / "dkim"
SELECTOR, DOMAIN = b"test", b"amazon.com"
DNS_NAME = "test._domainkey.amazon.com"
#: Each signing domain of the tests and its key pair: Amazon, a seller's forwarder, an ARC
#: sealer in between (the forwarder's key: one less file), and an attacker with a key of its own.
DOMAIN_KEYS = {"amazon.com": "amazon-test", "acme.example": "forwarder-test", "sealer.example": "forwarder-test",
               "evil.example": "attacker-test"}


def public_record(domain: str = "amazon.com") -> bytes:
    return b"v=DKIM1; k=rsa; p=" + (KEYS / f"{DOMAIN_KEYS[domain]}.pub.b64").read_bytes().strip()


def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
    """The injected key lookup: the test keys, and nothing else exists."""
    key = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
    selector, _, domain = key.partition("._domainkey.")
    return public_record(domain) if selector == "test" and domain in DOMAIN_KEYS else None


def keys_file(path: Path) -> Path:
    """A pinned-keys file for a daemon (``[security] dkim_keys_file``): every test domain."""
    path.write_text("".join(f"test._domainkey.{d} {public_record(d).decode()}\n" for d in DOMAIN_KEYS))
    return path


def sign(raw: bytes, domain: bytes = DOMAIN, headers: tuple[bytes, ...] = (b"from", b"to", b"subject", b"date", b"message-id")) -> bytes:
    """``raw`` with a DKIM-Signature by ``domain`` on top (RFC 6376, relaxed/relaxed)."""
    private = (KEYS / f"{DOMAIN_KEYS[domain.decode()]}.key").read_bytes()
    header = dkim.sign(raw, SELECTOR, domain, private, canonicalize=(b"relaxed", b"relaxed"),
                       include_headers=list(headers))
    return header + raw


def arc_sealed(raw: bytes, results: str, sealer: bytes = b"sealer.example") -> bytes:
    """``raw`` as an intermediary passes it on (RFC 8617): its Authentication-Results, then an
    ARC set sealed by ``sealer`` whose ARC-Authentication-Results copy them."""
    with_results = f"Authentication-Results: {sealer.decode()}; {results}\r\n".encode() + raw
    private = (KEYS / f"{DOMAIN_KEYS[sealer.decode()]}.key").read_bytes()
    arc = dkim.arc_sign(with_results, SELECTOR, sealer, private, sealer,
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return b"".join(arc) + with_results


def redirected(raw: bytes, by: str) -> bytes:
    """A redirect (Exchange, Sieve): Resent-* headers on top, the bytes otherwise unchanged."""
    return f"Resent-From: {by}\r\nResent-To: optout@sellers.example\r\n".encode() + raw


def _outer(by: str, extra: str = "") -> str:
    return (f"From: Ops <{by}>\r\nTo: optout@sellers.example\r\n"
            "Subject: Fwd: Your message to a buyer could not be delivered\r\n"
            "Date: Tue, 11 Jun 2024 15:00:00 -0700\r\n"
            f"Message-ID: <fwd-{abs(hash((by, extra)))}@forwarder.example>\r\nMIME-Version: 1.0\r\n")


def forwarded_inline(raw: bytes, by: str) -> bytes:
    """A Gmail-style inline forward of the notice by ``by`` (the signature does not survive)."""
    body = raw.split(b"\r\n\r\n", 1)[1]
    quoted = (b"---------- Forwarded message ---------\r\nFrom: Amazon.com <auto-communication@amazon.com>\r\n"
              b"Date: Tue, 11 Jun 2024 14:22:05 -0700\r\nSubject: Your message to a buyer could not be delivered\r\n"
              b"To: <seller@seller.example>\r\n\r\n" + body)
    return (_outer(by, body.decode()[:40]) + "Content-Type: text/plain; charset=UTF-8\r\n\r\n").encode() + quoted


def forwarded_attached(raw: bytes, by: str) -> bytes:
    """The notice forwarded as an attachment (message/rfc822, 7bit: bytes kept as they are)."""
    return (_outer(by, "attached") + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            "--b1\r\nContent-Type: message/rfc822\r\n\r\n").encode() + raw + b"\r\n--b1--\r\n"


def wrapped(raw: bytes, by: str) -> bytes:
    """A wrapping the built-in parser does not know (a ticket system pasting the notice as
    base64 text between markers); ``tests.support.parser_variant`` learns it."""
    encoded = base64.b64encode(raw).decode()
    lines = "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    return (f"From: Helpdesk <{by}>\r\nTo: optout@sellers.example\r\nSubject: Ticket 4711\r\n"
            f"Date: Tue, 11 Jun 2024 15:00:00 -0700\r\nMessage-ID: <ticket-{abs(hash(raw))}@desk.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=US-ASCII\r\n\r\n"
            f"A customer mail was attached to ticket 4711.\r\n-----BEGIN TICKET ATTACHMENT-----\r\n{lines}\r\n"
            "-----END TICKET ATTACHMENT-----\r\n").encode()


def from_header(raw: bytes, value: str) -> bytes:
    """``raw`` with its first From header replaced by ``From: <value>``."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    index = next(i for i, line in enumerate(lines) if line.lower().startswith(b"from:"))
    lines[index] = b"From: " + value.encode()
    return b"\r\n".join(lines) + sep + body
