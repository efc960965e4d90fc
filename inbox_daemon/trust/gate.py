"""What processing asks between parse and apply: attribution and DKIM evidence per message.

``Gatekeeper.assess`` is the only impure step here (the DKIM key lookups may ask DNS), so it
runs in a worker thread when the message carries a signature, an ARC seal or an attachment. The
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
from .identity import Claim, Identify, header_claims

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
        trusted_relays: tuple[str, ...] = (),
        trusted_arc_sealers: tuple[str, ...] = (),
    ) -> None:
        self.policy = policy or Policy()
        self._domains = dkim_domains
        self._dnsfunc = dnsfunc
        self._identify = Identify(trusted_relays=trusted_relays, trusted_arc_sealers=trusted_arc_sealers, dnsfunc=dnsfunc)
        self._relays = trusted_relays

    def check(self, raw: bytes) -> DkimEvidence:
        """``check_dkim`` with this gate's domains and key lookup; never raises."""
        try:
            if self._domains is None:
                return check_dkim(raw, dnsfunc=self._dnsfunc)
            return check_dkim(raw, domains=self._domains, dnsfunc=self._dnsfunc)
        except Exception as exc:  # a damaged message must not stop the batch: record why
            return DkimEvidence(FAILED, detail=f"checker error: {type(exc).__name__}: {exc}"[:300])

    def claims(self, raw: bytes, peer: str | None, source: str) -> list[Claim]:
        """The forwarding claims with their proofs; never raises (a damaged message claims nothing)."""
        try:
            return self._identify(raw, peer=peer, source=source)
        except Exception:
            return []

    def _examine(self, raw: bytes, peer: str | None, source: str) -> tuple[list[Claim], DkimEvidence]:
        return self.claims(raw, peer, source), self.check(raw)

    async def assess(
        self, raw: bytes, result: ParseResult, envelope_to: Sequence[str], source: str, peer: str | None = None,
        *, read: list[Claim] | None = None,
    ) -> Assessment:
        """``read``: the message's ``header_claims`` when the caller has them already (processing
        reads them in its parser worker); they stand only where nothing can authenticate a claim."""
        low = raw[:65536].lower()
        if b"dkim-signature" in low or b"arc-seal" in low or b"base64" in raw.lower():
            claims, evidence = await asyncio.to_thread(self._examine, raw, peer, source)
        elif self._relays and source == "smtp":
            claims, evidence = self.claims(raw, peer, source), DkimEvidence(ABSENT)
        else:  # nothing can authenticate a claim: the headers are read, nothing is verified
            claims, evidence = read if read is not None else header_claims([raw])[0], DkimEvidence(ABSENT)
        who = attribute(envelope_to if source == "smtp" else (), claims)
        return Assessment(who, evidence, source, result.notices)
