"""The admission decision: apply a parsed notice, or hold it in quarantine with a reason.

Pure: everything it needs is handed in (the parse result, the attribution, the DKIM
evidence, a registry snapshot, how many new opt-outs the forwarder added in the last hour, the
policy). Processing calls it inside the applying transaction so that the snapshot and the
counters are those the transaction sees (``inbox_daemon.processing.admission``).

Rules, first match holds:

1. only opt-out notices are held; other verdicts block nobody and are recorded as they are;
2. an operator's approval admits (``quarantine approve``);
3. a relay address outside ``relay_domains`` -> ``relay domain not allowed <address>``;
4. more buyers than ``max_buyers`` -> ``too many buyers ...`` (Amazon's notice names one buyer;
   a forward of a few notices a handful);
5. ``require_dkim`` and no verified Amazon signature -> ``dkim <status>``;
6. ``require_registered_forwarder`` and no seller -> what was missing
   (``attribution.unattributed``: ``forwarder <address> not authenticated (<header>): ...``,
   ``unregistered forwarder <address> ...``, ``no seller identity: ...``);
7. the forwarder already added ``rate_per_hour`` new opt-outs in the last hour -> ``rate
   limit``. The count is checked before a notice, so one notice naming several new buyers can
   pass the cap by its own size; never more.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ..notices.result import Kind, ParseResult
from .attribution import Attribution, Registry, unattributed
from .dkim import VERIFIED, DkimEvidence

__all__ = ["Policy", "Decision", "decide", "RATE_LIMIT"]

RATE_LIMIT = "rate limit"


@dataclass(frozen=True)
class Policy:
    """The ``[security]`` settings the decision reads."""

    require_registered_forwarder: bool = False
    require_dkim: bool = False
    relay_domains: tuple[str, ...] = ("marketplace.amazon.*",)
    rate_per_hour: int = 0  # 0: no cap
    max_buyers: int = 25  # buyers one message may name; more are held
    rate_exempt_sources: tuple[str, ...] = ("import",)  # back-fills of old archives


@dataclass(frozen=True, slots=True)
class Decision:
    """Apply (``hold`` is None) or hold with the reason; the seller it was attributed to."""

    seller_id: int | None
    hold: str | None = None


def decide(
    result: ParseResult,
    who: Attribution,
    evidence: DkimEvidence,
    registry: Registry,
    policy: Policy,
    *,
    recent_new: int = 0,
    source: str = "smtp",
    approved: bool = False,
) -> Decision:
    """The rules of the module docstring, in order."""
    seller = registry.seller_for(who)
    if result.kind is not Kind.OPT_OUT or approved:
        return Decision(seller)
    outside = _outside_relay_domains(result, policy.relay_domains)
    if outside:
        return Decision(seller, f"relay domain not allowed {outside}")
    if policy.max_buyers and len(result.buyers) > policy.max_buyers:
        return Decision(seller, f"too many buyers: {len(result.buyers)} in one message "
                                f"(security.max_buyers_per_notice = {policy.max_buyers})")
    if policy.require_dkim and evidence.status != VERIFIED:
        return Decision(seller, f"dkim {evidence.status}")
    if policy.require_registered_forwarder and seller is None:
        return Decision(seller, unattributed(who, registry))
    if policy.rate_per_hour and source not in policy.rate_exempt_sources:
        if recent_new >= policy.rate_per_hour:
            return Decision(seller, RATE_LIMIT)
    return Decision(seller)


def _outside_relay_domains(result: ParseResult, patterns: tuple[str, ...]) -> str | None:
    for buyer in result.buyers:
        if buyer.email:
            domain = buyer.email.rpartition("@")[2].lower()
            if not any(fnmatch.fnmatchcase(domain, p.lower()) for p in patterns):
                return buyer.email
    return None

