"""Attribution: the envelope +token, forwarding claims and what authenticates them."""

from __future__ import annotations

import pytest

from inbox_daemon.trust import Attribution, Claim, Registry, attribute, recipient_token, seller_address

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


def test_token_only_from_the_envelope() -> None:
    assert attribute(["x@y.example", "optout+k3x9q2ab@sellers.example"]).token == "k3x9q2ab"
    assert attribute(["optout@sellers.example"]).token is None


def test_only_an_authenticated_claim_or_the_token_names_a_seller() -> None:
    proven = Claim("ops@acme.example", "from", "dkim d=acme.example")
    claimed = Claim("ops@acme.example", "resent-from")
    assert REGISTRY.seller_for(Attribution("k3x9q2ab", (claimed,))) == 1
    assert REGISTRY.seller_for(Attribution(None, (claimed,))) is None
    assert REGISTRY.seller_for(Attribution(None, (claimed, proven))) == 2
    assert REGISTRY.seller_for(Attribution(None)) is None


def test_rate_key_forwarder_via_and_evidence() -> None:
    proven = Claim("ops@acme.example", "from", "dkim d=acme.example")
    claimed = Claim("x@y.example", "x-forwarded-for")
    who = Attribution("k3x9q2ab", (claimed, proven))
    assert (who.rate_key, who.forwarder, who.via) == ("ops@acme.example", "ops@acme.example", "from+dkim")
    assert who.evidence == "x-forwarded-for x@y.example unauthenticated; from ops@acme.example dkim d=acme.example"
    assert Attribution("k3x9q2ab", (claimed,)).rate_key == "+k3x9q2ab"
    assert (Attribution(None, (claimed,)).rate_key, Attribution(None).rate_key) == ("x@y.example", "-")
