"""What the pipeline asks between parse and apply: attribution and DKIM evidence per message.

``Gatekeeper.assess`` is the only impure step of the trust work (the DKIM key lookup may ask
DNS), so it runs in a worker thread and only when the message carries a signature or an
attachment. The decision itself is made by the store inside the applying transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import SecurityConfig
from ..notices.result import ParseResult
from .admission import Policy
from .attribution import Attribution, attribute
from .dkim import ABSENT, FAILED, DkimEvidence, DnsFunc, check_dkim, pinned_keys

__all__ = ["Assessment", "Gatekeeper"]


@dataclass(frozen=True, slots=True)
class Assessment:
    """What is known about one message before the admission decision."""

    who: Attribution
    dkim: DkimEvidence
    source: str
    amazon_notices: int  # Amazon notices the message held: seller messages Amazon blocked


class Gatekeeper:
    """The policy and the DKIM key lookup, built once from ``[security]``."""

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        dkim_domains: tuple[str, ...] | None = None,
        dnsfunc: DnsFunc | None = None,
    ) -> None:
        self.policy = policy or Policy()
        self._domains = dkim_domains
        self._dnsfunc = dnsfunc

    @classmethod
    def from_config(cls, security: SecurityConfig) -> Gatekeeper:
        policy = Policy(
            require_registered_forwarder=security.require_registered_forwarder,
            require_dkim=security.require_dkim,
            relay_domains=security.relay_domains,
            rate_per_hour=security.forwarder_rate_per_hour,
        )
        dnsfunc = pinned_keys(security.dkim_keys_file) if security.dkim_keys_file else None
        return cls(policy, dkim_domains=security.dkim_domains, dnsfunc=dnsfunc)

    def check(self, raw: bytes) -> DkimEvidence:
        """``check_dkim`` with this gate's domains and key lookup; never raises."""
        try:
            if self._domains is None:
                return check_dkim(raw, dnsfunc=self._dnsfunc)
            return check_dkim(raw, domains=self._domains, dnsfunc=self._dnsfunc)
        except Exception as exc:  # a damaged message must not stop the batch: record why
            return DkimEvidence(FAILED, detail=f"checker error: {type(exc).__name__}: {exc}"[:300])

    async def assess(
        self, raw: bytes, result: ParseResult, envelope_to: Sequence[str], source: str
    ) -> Assessment:
        who = attribute(result, envelope_to, raw)
        low = raw.lower()
        if b"dkim-signature" in low or b"base64" in low:
            evidence = await asyncio.to_thread(self.check, raw)
        else:
            evidence = DkimEvidence(ABSENT)
        return Assessment(who, evidence, source, result.notices)
