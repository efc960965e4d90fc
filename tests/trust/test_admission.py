"""The admission decision, rule by rule (inbox_daemon.trust.admission)."""

from __future__ import annotations

import pytest

from inbox_daemon.notices.result import Buyer, Kind, ParseResult
from inbox_daemon.trust import ABSENT, FAILED, VERIFIED, Attribution, DkimEvidence, Policy, Registry, decide

REG = Registry({"tok12345": 1}, {"ops@acme.example": 2})
OPT_OUT = ParseResult(Kind.OPT_OUT, buyers=(Buyer("abcdefghij12345@marketplace.amazon.de", None, None),))
KNOWN = Attribution("ops@acme.example", "inline", None)
STRANGER = Attribution("mallory@evil.example", "inline", None)
NOBODY = Attribution(None, None, None)


@pytest.mark.parametrize(("policy", "who", "dkim", "recent", "source", "held"), [
    (Policy(), STRANGER, ABSENT, 0, "smtp", None),  # the quick start believes well-formed notices
    (Policy(require_registered_forwarder=True), STRANGER, ABSENT, 0, "smtp", "unregistered forwarder mallory@evil.example"),
    (Policy(require_registered_forwarder=True), NOBODY, ABSENT, 0, "smtp",
     "unregistered forwarder (none: no forwarder, no seller token)"),
    (Policy(require_registered_forwarder=True), Attribution(None, None, "tok12345"), ABSENT, 0, "smtp", None),
    (Policy(require_dkim=True), KNOWN, ABSENT, 0, "smtp", "dkim absent"),
    (Policy(require_dkim=True), KNOWN, FAILED, 0, "smtp", "dkim failed"),
    (Policy(require_dkim=True), KNOWN, VERIFIED, 0, "smtp", None),
    (Policy(rate_per_hour=3), KNOWN, ABSENT, 2, "smtp", None),
    (Policy(rate_per_hour=3), KNOWN, ABSENT, 3, "smtp", "rate limit"),
    (Policy(rate_per_hour=3), KNOWN, ABSENT, 3, "import", None),  # back-fills are exempt
    (Policy(relay_domains=("marketplace.amazon.com",)), KNOWN, ABSENT, 0, "smtp",
     "relay domain not allowed abcdefghij12345@marketplace.amazon.de"),
])
def test_rules(policy: Policy, who: Attribution, dkim: str, recent: int, source: str, held: str | None) -> None:
    decision = decide(OPT_OUT, who, DkimEvidence(dkim), REG, policy, recent_new=recent, source=source)
    assert decision.hold == held


def test_only_opt_outs_are_held_and_approval_admits() -> None:
    strict = Policy(require_registered_forwarder=True, require_dkim=True)
    look_alike = ParseResult(Kind.NOT_OPT_OUT, reason="content policy")
    assert decide(look_alike, STRANGER, DkimEvidence(ABSENT), REG, strict).hold is None
    assert decide(OPT_OUT, STRANGER, DkimEvidence(ABSENT), REG, strict, approved=True).hold is None
    assert decide(OPT_OUT, KNOWN, DkimEvidence(ABSENT), REG, Policy()).seller_id == 2
