"""DKIM evidence with the test key and an injected key lookup (no DNS on these machines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox_daemon.trust import ABSENT, FAILED, VERIFIED, Gatekeeper, Policy, check_dkim, pinned_keys
from tests.support.notices import opt_out_notice
from tests.support.trust import dnsfunc, forwarded_attached, forwarded_inline, keys_file, redirected, sign

NOTICE = opt_out_notice("111-2222222-3333333", None)
SIGNED = sign(NOTICE)


def test_direct_redirected_and_attached_signatures_verify() -> None:
    for raw, where in ((SIGNED, "direct"), (redirected(SIGNED, "ops@acme.example"), "direct"),
                       (forwarded_attached(SIGNED, "ops@acme.example"), "attached")):
        evidence = check_dkim(raw, dnsfunc=dnsfunc)
        assert (evidence.status, evidence.domain, evidence.detail) == (VERIFIED, "amazon.com", where)


def test_a_changed_body_fails_and_says_why() -> None:
    evidence = check_dkim(SIGNED.replace(b"Dear Seller", b"Dear seller"), dnsfunc=dnsfunc)
    assert evidence.status == FAILED and "body hash" in (evidence.detail or "")


def test_no_key_published_fails() -> None:
    assert check_dkim(SIGNED, dnsfunc=lambda name, timeout=5: None).status == FAILED


def test_absent_inline_forwards_unsigned_mail_and_other_domains() -> None:
    assert check_dkim(NOTICE, dnsfunc=dnsfunc).status == ABSENT
    assert check_dkim(forwarded_inline(SIGNED, "ops@acme.example"), dnsfunc=dnsfunc).status == ABSENT
    # The forwarder's own signature is not Amazon's word: never looked up, absent.
    assert check_dkim(sign(NOTICE, b"acme.example"), dnsfunc=dnsfunc).status == ABSENT


def test_pinned_keys_file_and_the_gatekeeper(tmp_path: Path, run: object) -> None:
    lookup = pinned_keys(keys_file(tmp_path / "keys"))
    assert check_dkim(SIGNED, dnsfunc=lookup).status == VERIFIED
    gate = Gatekeeper(Policy(), dnsfunc=lookup)
    assert gate.check(b"\xff\x00 not mail at all DKIM-Signature:").status in (ABSENT, FAILED)  # never raises


def test_default_key_lookup_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    from inbox_daemon.trust import dkim as dkim_module

    asked: list[object] = []

    def fake_get_txt(name: object, timeout: float = 5) -> bytes | None:
        asked.append(name)
        return b"v=DKIM1; p=abc" if name == b"s1._domainkey.amazon.com." else None

    monkeypatch.setattr(dkim_module.dkim.dnsplug, "get_txt", fake_get_txt)
    monkeypatch.setattr(dkim_module, "_DNS_CACHE", {})
    for _ in range(3):
        assert dkim_module.cached_dns(b"s1._domainkey.amazon.com.") == b"v=DKIM1; p=abc"
        assert dkim_module.cached_dns(b"missing._domainkey.amazon.com.") is None
    assert asked == [b"s1._domainkey.amazon.com.", b"missing._domainkey.amazon.com."]
