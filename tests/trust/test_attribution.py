"""Attribution: the +token of a per-seller address, trace headers, the parser's forwarder."""

from __future__ import annotations

import pytest

from inbox_daemon.notices import parse_notice
from inbox_daemon.notices.result import Kind, ParseResult
from inbox_daemon.trust import Attribution, Registry, attribute, recipient_token, seller_address
from tests.support.notices import opt_out_notice
from tests.support.trust import forwarded_attached, forwarded_inline, redirected

NOTICE = opt_out_notice("111-2222222-3333333", None)
REGISTRY = Registry({"k3x9q2ab": 1}, {"ops@acme.example": 2})


@pytest.mark.parametrize(("address", "token"), [
    ("optout+k3x9q2ab@sellers.example", "k3x9q2ab"),
    ("<OptOut+K3X9Q2AB@Sellers.Example>", "k3x9q2ab"),
    ("optout@sellers.example", None),
    ("+k3x9q2ab@sellers.example", None),  # no base local part
    ("optout+a.b@sellers.example", None),  # not a token we hand out
    ("", None),
])
def test_recipient_token(address: str, token: str | None) -> None:
    assert recipient_token(address) == token


def test_seller_address_extends_the_base() -> None:
    assert seller_address("optout@sellers.example", "k3x9q2ab") == "optout+k3x9q2ab@sellers.example"
    assert seller_address("optout+old@sellers.example", "abcdef12") == "optout+abcdef12@sellers.example"


@pytest.mark.parametrize(("raw", "forwarder", "via"), [
    (forwarded_inline(NOTICE, "Ops@Acme.example"), "ops@acme.example", "inline"),
    (forwarded_attached(NOTICE, "ops@acme.example"), "ops@acme.example", "attachment"),
    (redirected(NOTICE, "ops@acme.example"), "ops@acme.example", "resent"),
    (b"X-Forwarded-For: ops@acme.example optout@sellers.example\r\n" + NOTICE, "ops@acme.example", "x-forwarded-for"),
    (NOTICE, None, None),
])
def test_forwarder_comes_from_the_parser(raw: bytes, forwarder: str | None, via: str | None) -> None:
    who = attribute(parse_notice(raw), ["optout@sellers.example"], raw)
    assert (who.forwarder, who.via, who.token) == (forwarder, via, None)


def test_token_from_the_envelope_else_from_delivery_traces() -> None:
    result = parse_notice(NOTICE)
    assert attribute(result, ["x@y.example", "optout+k3x9q2ab@sellers.example"]).token == "k3x9q2ab"
    traced = b"Delivered-To: optout+k3x9q2ab@sellers.example\r\n" + NOTICE
    assert attribute(result, ["relay@internal.example"], traced).token == "k3x9q2ab"


def test_registry_prefers_the_token_and_keys_the_rate_limit() -> None:
    both = Attribution("ops@acme.example", "inline", "k3x9q2ab")
    assert REGISTRY.seller_for(both) == 1
    assert REGISTRY.seller_for(Attribution("OPS@acme.example", "inline", "unknown1")) == 2
    assert REGISTRY.seller_for(Attribution(None, None, None)) is None
    assert (both.rate_key, Attribution(None, None, "k3x9q2ab").rate_key, Attribution(None, None, None).rate_key) == (
        "ops@acme.example", "+k3x9q2ab", "-")
    assert attribute(ParseResult(Kind.NOT_OPT_OUT), []).forwarder is None
