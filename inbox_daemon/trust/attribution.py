"""Attribution: which seller a message speaks for, from what an outsider cannot forge.

Two kinds of proof, strongest first:

* the ``+token`` of a per-seller recipient address ``<local>+<token>@<domain>`` (RFC 5233
  subaddressing) among the SMTP envelope recipients. A notice Amazon sends directly
  (Notification Preferences -> Buyer Opt-Out) carries no forwarding header; the secret token
  alone says whose it is. A token in a Delivered-To / X-Original-To header is a claim only:
  anyone can write such a header;
* a registered forwarder whose claim ``identity.Identify`` authenticated (DKIM aligned with
  its domain, a trusted ARC sealer, a trusted relay).

Every other claim (an unsigned From, Resent-From, X-Forwarded-For, delivery traces) is kept as
evidence beside the decision. The envelope sender is not used: after a redirect it is Amazon's
bounce address (SES) or an SRS rewrite, and it says nothing about the seller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .identity import Claim

__all__ = ["Attribution", "Registry", "attribute", "recipient_token", "seller_address", "unattributed", "TOKEN_RE"]

TOKEN_RE = re.compile(r"^[a-z0-9]{6,32}$")


@dataclass(frozen=True, slots=True)
class Attribution:
    """The envelope token and the forwarding claims of one message, each with its proof."""

    token: str | None  # the +token of a per-seller envelope recipient, if any
    claims: tuple[Claim, ...] = ()

    @property
    def proven(self) -> Claim | None:
        """The strongest authenticated claim."""
        return next((c for c in self.claims if c.proof), None)

    @property
    def forwarder(self) -> str | None:
        """The authenticated forwarder, else the first claimed one (recorded as evidence)."""
        chosen = self.proven or (self.claims[0] if self.claims else None)
        return chosen.address if chosen else None

    @property
    def via(self) -> str | None:
        """How the forwarder was named, and what proved it: ``from+dkim``, ``resent-from``."""
        chosen = self.proven or (self.claims[0] if self.claims else None)
        if chosen is None:
            return "token" if self.token else None
        return f"{chosen.header}+{chosen.proof.split()[0]}" if chosen.proof else chosen.header

    @property
    def evidence(self) -> str:
        """Every claim with its proof or ``unauthenticated``: what is recorded beside the decision."""
        return "; ".join(f"{c.header} {c.address} {c.proof or 'unauthenticated'}" for c in self.claims)

    @property
    def rate_key(self) -> str:
        """What the per-forwarder cap counts against: the forwarder, else the token."""
        proven = self.proven
        if proven:
            return proven.address
        if self.token:
            return f"+{self.token}"
        return self.claims[0].address if self.claims else "-"


@dataclass(frozen=True)
class Registry:
    """A snapshot of the sellers and their forwarders, as the admission step sees them."""

    by_token: Mapping[str, int]  # token -> seller id
    by_forwarder: Mapping[str, int]  # forwarder address -> seller id

    def seller_for(self, who: Attribution) -> int | None:
        """The seller the envelope token names, else the one that registered an
        authenticated forwarder. An unauthenticated claim never names a seller."""
        if who.token and who.token in self.by_token:
            return self.by_token[who.token]
        for claim in who.claims:
            if claim.proof and claim.address in self.by_forwarder:
                return self.by_forwarder[claim.address]
        return None


def unattributed(who: Attribution, registry: Registry) -> str:
    """Why no seller: the quarantine reason, naming what was missing."""
    for claim in who.claims:
        if claim.proof is None and claim.address in registry.by_forwarder:
            return f"forwarder {claim.address} not authenticated ({claim.header}): {claim.missing()}"
    proven = who.proven
    if proven:
        return f"unregistered forwarder {proven.address} ({proven.proof})"
    if who.claims:
        first = who.claims[0]
        return (f"unregistered forwarder {first.address} ({first.header}, not authenticated): "
                "no seller token in the envelope, no authenticated registered forwarder")
    if who.token:
        return f"unknown seller token +{who.token}: no seller has it"
    return "no seller identity: no seller token in the envelope, no forwarder named"


def recipient_token(address: str | None) -> str | None:
    """``optout+k3x9q2@sellers.example`` -> ``k3x9q2`` (RFC 5233 ``+detail``); else None."""
    if not address:
        return None
    local, at, _ = address.strip().strip("<>").rpartition("@")
    base, plus, detail = local.partition("+")
    detail = detail.lower()
    return detail if at and plus and base and TOKEN_RE.match(detail) else None


def seller_address(base: str, token: str) -> str:
    """The per-seller recipient address: ``<local>+<token>@<domain>`` from ``local@domain``."""
    local, _, domain = base.rpartition("@")
    return f"{local.partition('+')[0]}+{token}@{domain}"


def attribute(envelope_to: Sequence[str], claims: Sequence[Claim] = ()) -> Attribution:
    """Attribution of one message: the first token among the envelope recipients, the claims."""
    token = next((t for t in map(recipient_token, envelope_to) if t), None)
    return Attribution(token=token, claims=tuple(claims))
