"""What processing asks between parse and apply: attribution and DKIM evidence per message.

``Gatekeeper.assess`` is the only impure step here (the DKIM key lookup may ask DNS), so it
runs in a worker thread and only when the message carries a signature or an attachment. The
decision itself (``admission.decide``) is asked inside the applying transaction, with the
registry and counters that transaction sees (``inbox_daemon.processing.admission``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from ..notices.result import ParseResult
from .admission import Policy
from .attribution import Attribution, attribute
from .dkim import ABSENT, FAILED, DkimEvidence, DnsFunc, check_dkim

__all__ = ["Assessment", "Gatekeeper"]


@dataclass(frozen=True, slots=True)
class Assessment:
    """What is known about one message before the admission decision."""

    who: Attribution
    dkim: DkimEvidence
    source: str
    amazon_notices: int  # Amazon notices the message held: seller messages Amazon blocked


class Gatekeeper:
    """The policy and the DKIM key lookup, built once from ``[security]`` (by processing)."""

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
