"""SMTP smuggling evidence: bare-LF end-of-data variants inside a message's DATA.

RFC 5321 section 4.1.1.4 ends DATA only with CRLF "." CRLF, and aiosmtpd never ends it
otherwise, so the daemon never splits one message into two. An MTA in front that accepts
``<LF>.<LF>``, ``<CR><LF>.<LF>`` or ``<LF>.<CR><LF>`` as the end (Postfix before
``smtpd_forbid_bare_newline``, CVE-2023-51764) would have split it, and a second, forged message
could ride inside the first. Seeing one of these sequences means a client is trying, or a
relay in front lets bare LFs through: worth a log line (deploy/README.md, "SMTP smuggling").
"""

from __future__ import annotations

import re
from typing import Any

from ..log import Throttled

__all__ = ["BareLfWatch", "VARIANTS"]

# CRLF "." CRLF is the real end and never inside DATA; a bare LF on either side is a variant.
VARIANTS = re.compile(rb"(?<!\r)\n\.\r?\n|\r\n\.\n")
_TAIL = 3  # bytes of the previous chunk kept: a variant split across two reads is still seen


class BareLfWatch:
    """Scans DATA as it arrives and logs what it finds, as a Throttled warning (a client
    sending thousands must not flood the log)."""

    def __init__(self, logger: Any, interval: float | None = None) -> None:
        self._warn = Throttled(logger, "smtp_bare_lf_end_of_data", interval)
        self.seen = 0

    def flush(self) -> None:
        """Write the pending summary (at stop)."""
        self._warn.flush()

    @staticmethod
    def find(tail: bytes, chunk: bytes) -> bytes | None:
        """The first variant in ``tail + chunk``, or None."""
        found = VARIANTS.search(tail + chunk)
        return found.group(0) if found else None

    @staticmethod
    def tail(chunk: bytes, before: bytes) -> bytes:
        return (before + chunk)[-_TAIL:]

    def saw(self, variant: bytes, peer: str | None) -> None:
        """Count one message with a variant; log it (throttled)."""
        self.seen += 1
        self._warn(peer=peer, variant=variant.decode("ascii").encode("unicode_escape").decode("ascii"),
                   hint="a client or relay sends bare-LF end-of-data variants: see deploy/README.md, SMTP smuggling")
