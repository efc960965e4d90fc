"""Who may add to the blocklist: attribution, DKIM evidence, the admission decision.

Data flow: processing parses a message, then ``Gatekeeper.assess`` attributes it
(``attribution``: the envelope token and the forwarding claims ``identity`` authenticates)
and checks Amazon's signature (``dkim``); inside the applying transaction,
processing reads the registry snapshot and rate counters through the store and asks
``admission.decide`` whether to apply or to hold the notice in quarantine
(``inbox_daemon.processing.admission``). Everything here is pure except the DKIM key lookup,
which is injected. Nothing here imports the store, intake or processing.
"""

from __future__ import annotations

from .admission import RATE_LIMIT, Decision, Policy, decide
from .attribution import Attribution, Registry, attribute, recipient_token, seller_address, unattributed
from .dkim import ABSENT, FAILED, VERIFIED, DkimEvidence, check_dkim, pinned_keys
from .gate import Assessment, Gatekeeper
from .identity import Claim, Identify, aligned, header_claims, is_trusted_relay

__all__ = [
    "ABSENT",
    "FAILED",
    "RATE_LIMIT",
    "VERIFIED",
    "Assessment",
    "Attribution",
    "Claim",
    "header_claims",
    "Identify",
    "Decision",
    "DkimEvidence",
    "Gatekeeper",
    "Policy",
    "Registry",
    "aligned",
    "attribute",
    "is_trusted_relay",
    "check_dkim",
    "decide",
    "pinned_keys",
    "recipient_token",
    "seller_address",
    "unattributed",
]
