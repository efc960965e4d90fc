"""The admission decision, rule by rule (inbox_daemon.trust.admission)."""

from __future__ import annotations

import pytest

from inbox_daemon.notices.result import Buyer, Kind, ParseResult
from inbox_daemon.trust import ABSENT, FAILED, VERIFIED, Attribution, Claim, DkimEvidence, Policy, Registry, decide

REG = Registry({"tok12345": 1}, {"ops@acme.example": 2})
OPT_OUT = ParseResult(Kind.OPT_OUT, buyers=(Buyer("abcdefghij12345@marketplace.amazon.de", None, None),))
KNOWN = Attribution(None, (Claim("ops@acme.example", "from", "dkim d=acme.example"),))
UNPROVEN = Attribution(None, (Claim("ops@acme.example", "from"),))
STRANGER = Attribution(None, (Claim("mallory@evil.example", "from"),))
NOBODY = Attribution(None)
MANY = ParseResult(Kind.OPT_OUT, buyers=tuple(Buyer(None, f"111-0000000-{n:07d}", None) for n in range(26)))


@pytest.mark.parametrize(("policy", "who", "dkim", "recent", "source", "held"), [
    (Policy(), STRANGER, ABSENT, 0, "smtp", None),  # the quick start believes well-formed notices
    (Policy(require_registered_forwarder=True), STRANGER, ABSENT, 0, "smtp",
     "unregistered forwarder mallory@evil.example (from, not authenticated): no seller token in the envelope, "
     "no authenticated registered forwarder"),
    (Policy(require_registered_forwarder=True), UNPROVEN, ABSENT, 0, "smtp",
     "forwarder ops@acme.example not authenticated (from): no DKIM signature aligned with acme.example, "
     "no trusted ARC seal, not from a trusted relay"),
    (Policy(require_registered_forwarder=True), KNOWN, ABSENT, 0, "smtp", None),
    (Policy(require_registered_forwarder=True), NOBODY, ABSENT, 0, "smtp",
     "no seller identity: no seller token in the envelope, no forwarder named"),
    (Policy(require_registered_forwarder=True), Attribution("tok12345"), ABSENT, 0, "smtp", None),
    (Policy(require_registered_forwarder=True), Attribution("unknown1"), ABSENT, 0, "smtp",
     "unknown seller token +unknown1: no seller has it"),
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


def test_buyers_per_notice_cap_holds_with_the_count() -> None:
    assert decide(MANY, KNOWN, DkimEvidence(ABSENT), REG, Policy(max_buyers=26)).hold is None
    held = decide(MANY, KNOWN, DkimEvidence(ABSENT), REG, Policy(max_buyers=25)).hold
    assert held == "too many buyers: 26 in one message (security.max_buyers_per_notice = 25)"
