"""Forwarding claims and their proofs (inbox_daemon.trust.identity), with the injected key lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from inbox_daemon.trust import Claim, Identify, aligned, identity, is_trusted_relay
from tests.support.notices import opt_out_notice
from tests.support.trust import arc_sealed, dnsfunc, forwarded_inline, from_header, redirected, sign

NOTICE = opt_out_notice("111-2222222-3333333", None)
FORWARD = forwarded_inline(NOTICE, "ops@acme.example")
IDENTIFY = Identify(trusted_relays=("192.0.2.0/24", "2001:db8::/32"), trusted_arc_sealers=("sealer.example",),
                    dnsfunc=dnsfunc)


def claims(raw: bytes, peer: str | None = "198.51.100.9:4000") -> list[Claim]:
    return IDENTIFY(raw, peer=peer, source="smtp")


@pytest.mark.parametrize(("raw", "expected"), [
    (FORWARD, [Claim("ops@acme.example", "from")]),  # unsigned From: a claim only
    (redirected(NOTICE, "ops@acme.example"), [Claim("ops@acme.example", "resent-from")]),
    (b"X-Forwarded-For: ops@acme.example optout@sellers.example\r\n" + NOTICE,
     [Claim("ops@acme.example", "x-forwarded-for")]),
    (from_header(FORWARD, '"<ops@acme.example>" <attacker@evil.example>'), [Claim("attacker@evil.example", "from")]),
    (from_header(FORWARD, "attacker@evil.example (<ops@acme.example>)"), [Claim("attacker@evil.example", "from")]),
    (from_header(FORWARD, "ops@acme.example <attacker@evil.example>"), []),  # defective: claims nothing
    (from_header(FORWARD, "ops@acme.example, attacker@evil.example"), []),  # two mailboxes: ambiguous
    (NOTICE, []),  # Amazon's own From is the notice's author, no forwarder
])
def test_claims_are_addr_specs_never_display_names_or_comments(raw: bytes, expected: list[Claim]) -> None:
    assert claims(raw) == expected


def test_dkim_aligned_with_the_from_domain_proves_the_forward() -> None:
    assert claims(sign(FORWARD, b"acme.example")) == [Claim("ops@acme.example", "from", "dkim d=acme.example")]


def test_signatures_that_prove_nothing() -> None:
    evil = forwarded_inline(NOTICE, "attacker@evil.example")
    display = from_header(evil, '"<ops@acme.example>" <attacker@evil.example>')
    # The attacker's own valid signature proves the attacker's address, never ops@acme.example.
    assert claims(sign(display, b"evil.example")) == [Claim("attacker@evil.example", "from", "dkim d=evil.example")]
    # A valid evil.example signature over a From of acme.example is not aligned.
    assert claims(sign(FORWARD, b"evil.example")) == [Claim("ops@acme.example", "from")]
    # acme.example's signature, then the body changed on the way: does not verify.
    assert claims(sign(FORWARD, b"acme.example").replace(b"Dear Seller", b"Dear seller")) == [
        Claim("ops@acme.example", "from")]
    # acme.example signed, but not Resent-From: the header may have been added later.
    resent = redirected(NOTICE, "ops@acme.example")
    assert claims(sign(resent, b"acme.example")) == [Claim("ops@acme.example", "resent-from")]
    covered = sign(resent, b"acme.example", (b"from", b"resent-from", b"subject"))
    assert claims(covered) == [Claim("ops@acme.example", "resent-from", "dkim d=acme.example")]


def test_arc_from_a_trusted_sealer_vouches_for_the_aligned_from() -> None:
    good = arc_sealed(FORWARD, "dkim=pass header.d=acme.example; dmarc=pass header.from=acme.example")
    assert claims(good) == [Claim("ops@acme.example", "from", "arc i=1 sealer.example")]
    lying = arc_sealed(FORWARD, "dkim=pass header.d=evil.example")
    assert claims(lying) == [Claim("ops@acme.example", "from")]
    untrusted = Identify(trusted_arc_sealers=("other.example",), dnsfunc=dnsfunc)
    assert untrusted(good, peer=None) == [Claim("ops@acme.example", "from")]
    broken = good.replace(b"i=1; a=rsa-sha256", b"i=1; a=rsa-sha256; x=1", 1)
    assert claims(broken) == [Claim("ops@acme.example", "from")]


def test_trusted_relay_vouches_for_from_and_resent_from_only() -> None:
    assert claims(FORWARD, "192.0.2.7:25") == [Claim("ops@acme.example", "from", "relay 192.0.2.7")]
    assert claims(FORWARD, "2001:db8::1:25") == [Claim("ops@acme.example", "from", "relay 2001:db8::1")]
    xff = b"X-Forwarded-For: ops@acme.example optout@sellers.example\r\n" + NOTICE
    assert claims(xff, "192.0.2.7:25") == [Claim("ops@acme.example", "x-forwarded-for")]
    assert IDENTIFY(FORWARD, peer="192.0.2.7:993", source="imap:x") == [Claim("ops@acme.example", "from")]
    assert is_trusted_relay("not-an-ip", ("192.0.2.0/24",)) is None


@pytest.mark.parametrize(("signer", "domain", "ok"), [
    ("acme.example", "acme.example", True), ("acme.example", "mail.acme.example", True),
    ("mail.acme.example", "acme.example", True), ("example", "acme.example", False),
    ("evil.example", "acme.example", False), ("cme.example", "acme.example", False),
])
def test_relaxed_alignment(signer: str, domain: str, ok: bool) -> None:
    assert aligned(signer, domain) is ok


@pytest.mark.parametrize("raw", [
    b"From: ops@acme.example\x00 <attacker@evil.example>\r\n\r\nbody",
    b"From: \xff\xfe <ops@acme.example>\r\nResent-From: \xc3\x28@acme.example\r\n\r\nbody",
    b"From: " + b"a" * 10_000_000 + b"@acme.example\r\n\r\nbody",
    b"X-Forwarded-For: \r\nDelivered-To:\r\n\r\n",
    b"no headers at all",
    b"",
])
def test_hostile_headers_claim_nothing_false_and_never_raise(raw: bytes) -> None:
    found = claims(raw)
    assert all(c.address.isascii() and c.address.isprintable() and c.proof is None for c in found)


def test_an_8bit_display_name_keeps_its_address() -> None:
    raw = from_header(FORWARD, "José Núñez <ops@acme.example>")  # raw UTF-8 (RFC 6532)
    assert "José".encode() in raw
    assert claims(sign(raw, b"acme.example")) == [Claim("ops@acme.example", "from", "dkim d=acme.example")]


def test_the_header_block_reads_as_the_default_email_policy_reads_it() -> None:
    """Every sample's headers, and some odd blocks, parsed the cheap way (``identity._header_block``)
    give the header objects, values and defects that ``email.policy.default`` gives."""
    from email import policy
    from email.parser import BytesHeaderParser

    from inbox_daemon.notices.mimesplit import header_fields
    from inbox_daemon.trust import identity

    odd = [b"From: a@b.example\r\nSubject: x\rY\r\n\r\nbody", b"From: a@b.example\nX: \x0bv\n\nbody",
           b"From a@b Mon\nFrom: a@b.example\n\nbody", b" folded: first\nFrom: a@b.example\n\n", b"\r\n\r\nbody",
           b"From: a@b.example\nno colon line\n\nbody", b"From: a@b.example", b"From: \xff <a@b.example>\n\n"]
    fast = 0
    for raw in [path.read_bytes() for path in SAMPLES] + odd:
        end = raw.find(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.find(b"\n\n")
        block = raw[: end if end >= 0 else identity.HEADER_BYTES]
        fast += header_fields(block.decode("ascii", "surrogateescape") + "\n") is not None
        ours = identity._header_block(raw)
        reference = BytesHeaderParser(policy=policy.default).parsebytes(block)
        assert [(k, type(v).__name__, str(v), [type(d) for d in getattr(v, "defects", ())]) for k, v in ours.items()] == [
            (k, type(v).__name__, str(v), [type(d) for d in getattr(v, "defects", ())]) for k, v in reference.items()
        ], raw[:200]
    assert fast > 0.9 * len(SAMPLES)  # the cheap way is the one taken


SAMPLES = sorted((Path(__file__).parents[1] / "data").rglob("*.eml"))


def _by_registry(value: str) -> str | None:
    return identity._registry_mailbox("from", value)


def test_every_sample_address_reads_as_the_header_registry_reads_it() -> None:
    seen = 0
    for path in SAMPLES:
        for name, value in identity._header_block(path.read_bytes()).raw_items():
            if name.lower() in ("from", "to", "cc", "resent-from", "reply-to", "sender"):
                plain = identity._plain_mailbox(value)
                seen += plain is not identity._UNREAD
                assert plain in (identity._UNREAD, _by_registry(value)), (path.name, value)
    assert seen > 200


_ATOM = st.text("abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=4)
_DOT_ATOM = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)
_ADDRESS = st.builds("{}@{}".format, _DOT_ATOM, _DOT_ATOM)
_NAME = st.one_of(
    st.just(""), st.lists(_ATOM, min_size=1, max_size=3).map(" ".join),
    st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"\\'), max_size=8).map('"{}"'.format),
)
_BLANKS = st.sampled_from(["", " ", "\t", "  ", "\r\n ", "\r\n\t"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.builds("{}{}{}".format, _BLANKS, _ADDRESS, _BLANKS),
    st.builds("{}{}{}<{}>{}".format, _BLANKS, _NAME, _BLANKS, _ADDRESS, _BLANKS),
))
def test_plain_mailboxes_are_read_without_the_registry_alike(value: str) -> None:
    """Every value in the plain grammar is read the cheap way, to what the registry reads."""
    plain = identity._plain_mailbox(value)
    assert plain is not identity._UNREAD or "=?" in value
    if plain is not identity._UNREAD:
        assert plain == _by_registry(value)


_PIECES = st.sampled_from([
    "ops", "acme", "example", ".", "..", "@", " ", "\t", "<", ">", '"', "\\", "(", ")", ",", ":", ";", "[", "]",
    "=?utf-8?q?x?=", "=?", "é", "\udcff", "\x00", "\x7f", "\r\n ", "\n", "-", "'", "a.b@c.example", "Name",
])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=10).map("".join))
@example('"a\\" <ops@acme.example>')  # an escaped quote: the quoted string goes on
@example('"a\x00b" <ops@acme.example>')
@example('"\\"" <ops@acme.example>')
@example("ops@acme.example (comment)")
@example('"x" <ops@acme.example>, other@acme.example')
@example("Ops <ops@acme.example.>")
def test_any_value_read_the_cheap_way_reads_as_the_registry_reads_it(value: str) -> None:
    plain = identity._plain_mailbox(value)
    assert plain is identity._UNREAD or plain == _by_registry(value)
