"""Who may add to the blocklist (issue 5): attribution, DKIM evidence, the admission decision.

Data flow: the pipeline parses a message, then ``Gatekeeper.assess`` attributes it
(``attribution``) and checks Amazon's signature (``dkim``); the store, inside the applying
transaction, loads the registry snapshot and rate counters and asks ``admission.decide``
whether to apply or to hold the notice in quarantine (``inbox_daemon.store.trust``).
Everything here is pure except the DKIM key lookup, which is injected.
"""

from __future__ import annotations

from .admission import RATE_LIMIT, Decision, Policy, decide
from .attribution import Attribution, Registry, attribute, recipient_token, seller_address
from .dkim import ABSENT, FAILED, VERIFIED, DkimEvidence, check_dkim, pinned_keys
from .gate import Assessment, Gatekeeper

__all__ = [
    "ABSENT",
    "FAILED",
    "RATE_LIMIT",
    "VERIFIED",
    "Assessment",
    "Attribution",
    "Decision",
    "DkimEvidence",
    "Gatekeeper",
    "Policy",
    "Registry",
    "attribute",
    "check_dkim",
    "decide",
    "pinned_keys",
    "recipient_token",
    "seller_address",
]
