"""What the parser returns: one shape for every notice format, wrapping and language."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Kind", "Buyer", "ParseResult"]


class Kind(str, enum.Enum):
    """The verdict on one message."""

    OPT_OUT = "opt_out"  # Amazon says the buyer opted out of unsolicited seller messages
    NOT_OPT_OUT = "not_opt_out"  # anything else, including Amazon's other rejections
    MALFORMED = "malformed"  # too damaged to verify: add nothing, keep with the reason


@dataclass(frozen=True, slots=True)
class Buyer:
    """One buyer named by an opt-out notice. At least one of email and order_id is set."""

    email: str | None  # anonymised relay address, lower-case, no display name or brackets
    order_id: str | None  # NNN-NNNNNNN-NNNNNNN
    marketplace: str | None  # domain of the relay address, e.g. marketplace.amazon.co.uk


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The parser's answer for one raw message."""

    kind: Kind
    buyers: tuple[Buyer, ...] = ()
    reason: str | None = None  # a short human sentence; always set unless kind is OPT_OUT
    message_id: str | None = None  # the Amazon notice's own Message-ID, without brackets
    date: str | None = None  # the Amazon notice's own Date header, as written
    forwarder: str | None = None  # who passed the notice on (lower-case address), if anyone
    forwarded_via: str | None = None  # how: "inline", "attachment", "resent", "x-forwarded-for", ...
    notices: int = field(default=0)  # how many Amazon notices the message held
