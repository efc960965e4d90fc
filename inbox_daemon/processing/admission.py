"""The admission step as processing runs it: attribution and DKIM evidence before the
transaction (``Gatekeeper.assess``), then, inside the applying transaction, the decision for
each message from what the store reads there (``admitter``).

The store hands ``admitter``'s callback an ``AdmissionView`` of its open transaction and
records what the callback returns; the decision itself is ``inbox_daemon.trust.decide``. So
the registry snapshot and rate counters are those the applying transaction sees, and two
batches cannot both slip under a cap they share.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import keys
from ..config import SecurityConfig
from ..errors import ConfigError
from ..notices import Kind, ParseResult
from ..store import Admission, AdmissionView, Admit
from ..trust import Assessment, Gatekeeper, Policy, Registry, decide, pinned_keys

__all__ = ["gatekeeper", "admitter"]


def gatekeeper(security: SecurityConfig) -> Gatekeeper:
    """The policy and DKIM key lookup of ``[security]``; ConfigError naming the key when the
    pinned keys file cannot be read (at start: exit 78; at a reload: nothing changes)."""
    policy = Policy(
        require_registered_forwarder=security.require_registered_forwarder,
        require_dkim=security.require_dkim,
        relay_domains=security.relay_domains,
        rate_per_hour=security.forwarder_rate_per_hour,
        max_buyers=security.max_buyers_per_notice,
    )
    try:
        dnsfunc = pinned_keys(security.dkim_keys_file) if security.dkim_keys_file else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"security.dkim_keys_file {security.dkim_keys_file}: cannot read: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    return Gatekeeper(policy, dkim_domains=security.dkim_domains, dnsfunc=dnsfunc,
                      trusted_relays=security.trusted_relays, trusted_arc_sealers=security.trusted_arc_sealers)


def _buyer_keys(order: str | None, email: str | None) -> set[str]:
    found = {keys.order_id(order) if order else None, keys.address(email) if email else None}
    return {k for k in found if k}


def _new_buyers(result: ParseResult, known: set[str]) -> int:
    """Buyers of an admitted notice that no active opt-out names yet (they join ``known``)."""
    new = 0
    for b in result.buyers:
        named = _buyer_keys(b.order_id, b.email)
        if named and not named & known:
            new += 1
        known.update(named)
    return new


def admitter(policy: Policy, items: Sequence[tuple[int, ParseResult, Assessment]]) -> Admit:
    """The callback ``Store.apply_many`` asks, in its transaction, what to do with each item."""

    async def admit(view: AdmissionView) -> list[Admission]:
        raw_ids = [raw_id for raw_id, _, _ in items]
        registry = Registry(*await view.registry())
        approved = await view.approved(raw_ids)
        counts = dict.fromkeys((a.who.rate_key for _, _, a in items), 0)
        limited = {a.who.rate_key for _, _, a in items if a.source not in policy.rate_exempt_sources}
        known: set[str] = set()
        if policy.rate_per_hour and limited:  # no cap, or only exempt sources: nothing to count
            counts.update(await view.recent_new(limited, raw_ids))
        if policy.rate_per_hour:
            buyers = [b for _, r, _ in items for b in r.buyers]
            orders = {k for b in buyers if b.order_id and (k := keys.order_id(b.order_id))}
            emails = {k for b in buyers if b.email and (k := keys.address(b.email))}
            known = await view.active_keys(orders, emails)
        decided = []
        for raw_id, result, seen in items:
            key = seen.who.rate_key
            decision = decide(result, seen.who, seen.dkim, registry, policy, recent_new=counts[key],
                              source=seen.source, approved=raw_id in approved)
            admitted = decision.hold is None and result.kind is Kind.OPT_OUT
            new = _new_buyers(result, known) if admitted and policy.rate_per_hour else 0
            counts[key] += new
            decided.append(Admission(
                raw_id, decision.seller_id, seen.who.forwarder, seen.who.via, seen.who.token, key,
                seen.dkim.status, seen.dkim.domain, seen.dkim.detail, decision.hold, new, seen.amazon_notices,
                seen.who.evidence[:4000] or None,
            ))
        return decided

    return admit
