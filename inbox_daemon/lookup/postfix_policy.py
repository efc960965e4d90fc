"""Postfix's policy delegation protocol (SMTPD_POLICY_README), sans-IO.

Postfix's smtpd sends a block of ``name=value`` lines ended by an empty line and waits for
``action=...`` and an empty line; it reuses the connection for many blocks. ``PolicyDecoder``
frames blocks (bounded in line size, attribute count and block size), ``decide`` turns one into
the reply. At RCPT time a blocked ``recipient`` is refused; everything else is ``DUNNO`` (no
opinion: the rest of smtpd_recipient_restrictions decides). The servers are in mta_server.py.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from inbox_daemon import keys
from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.lookup.protocol import Counters

__all__ = [
    "ACTIONS",
    "MAX_ATTRIBUTES",
    "MAX_BLOCK",
    "MAX_LINE",
    "Malformed",
    "PolicyDecoder",
    "PolicySettings",
    "PolicySession",
    "decide",
    "lookup",
    "opted_out_action",
]

MAX_LINE: Final = 4096  # one name=value line; Postfix's longest (ccert_subject, sasl) fit well
MAX_ATTRIBUTES: Final = 128  # Postfix 3.7 sends about 40
MAX_BLOCK: Final = 64 * 1024
DUNNO: Final = b"action=DUNNO\n\n"
# The reply Postfix shows the client is "450 4.7.1 ..." only if nothing else rejects
# (SMTPD_POLICY_README: DEFER_IF_PERMIT); a broken request never turns into a permanent refusal.
DEFER_MALFORMED: Final = b"action=DEFER_IF_PERMIT 4.3.5 opt-out policy service: malformed request\n\n"
ACTIONS: Final = ("REJECT", "DEFER", "HOLD", "DISCARD")
_REASON = "buyer opted out of unsolicited seller messages"


@dataclass(frozen=True, slots=True)
class Malformed:
    """A block that could not be read; the reason goes to the log, not to the SMTP client."""

    reason: str


@dataclass(frozen=True)
class PolicySettings:
    """What to answer for a blocked recipient, and whose mail is never checked."""

    action: str = "REJECT"  # one of ACTIONS
    exempt_senders: frozenset[str] = field(default_factory=frozenset)  # "a@b.example" or "@b.example"

    def exempt(self, sender: str) -> bool:
        sender = sender.strip().strip("<>").lower()
        if not sender:
            return False
        return sender in self.exempt_senders or "@" + sender.rpartition("@")[2] in self.exempt_senders


class PolicyDecoder:
    """Splits a byte stream into attribute blocks: dicts, or Malformed for a block it rejects.

    A too-long line is skipped to its LF and spoils its block, so the stream stays in step and
    the next block is read as usual; memory stays within MAX_LINE + MAX_BLOCK whatever arrives.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._skipping = False  # inside a line longer than MAX_LINE
        self._attrs: dict[str, str] = {}
        self._size = 0
        self._problem: str | None = None

    @property
    def pending(self) -> bool:
        """True while a block has begun and not ended (its request deadline runs)."""
        return bool(self._pending or self._attrs or self._size or self._skipping or self._problem is not None)

    def feed(self, data: bytes) -> list[dict[str, str] | Malformed]:
        blocks: list[dict[str, str] | Malformed] = []
        data = self._pending + data
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            line, start = data[start:end], end + 1
            if self._skipping:
                self._skipping = False
                continue
            if not line:
                blocks.append(self._end_block())
            else:
                self._line(line)
        self._pending = data[start:]
        if len(self._pending) > MAX_LINE:
            self._pending = b""
            self._skipping = True
            self._spoil(f"attribute line over {MAX_LINE} bytes")
        return blocks

    def _line(self, line: bytes) -> None:
        self._size += len(line) + 1
        if self._problem is not None:
            return
        if len(line) > MAX_LINE:
            return self._spoil(f"attribute line over {MAX_LINE} bytes")
        if len(self._attrs) >= MAX_ATTRIBUTES or self._size > MAX_BLOCK:
            return self._spoil(f"more than {MAX_ATTRIBUTES} attributes or {MAX_BLOCK} bytes")
        name, eq, value = line.partition(b"=")
        if not eq or not name or b"\0" in line:
            return self._spoil(f"not name=value: {line[:80]!r}")
        try:
            self._attrs[name.decode("ascii")] = value.decode("utf-8")
        except UnicodeDecodeError:
            self._spoil(f"not UTF-8: {line[:80]!r}")

    def _spoil(self, reason: str) -> None:
        if self._problem is None:
            self._problem = reason
        self._attrs = {}

    def _end_block(self) -> dict[str, str] | Malformed:
        block: dict[str, str] | Malformed = self._attrs if self._problem is None else Malformed(self._problem)
        if not self._attrs and self._problem is None:
            block = Malformed("empty attribute block")
        self._attrs, self._size, self._problem = {}, 0, None
        return block


def lookup(index: BlocklistIndex, key: str, counters: Counters | None = None) -> int:
    """``first_seen << 32 | count`` for a relay address or order id, 0 when not blocked."""
    parsed = keys.parse(key)
    if parsed is None:
        return 0  # not an address or order id: nothing of ours (access(5) also asks for bare domains)
    packed = index.lookup_key(index.key(parsed))
    if counters is not None:
        counters.lookups += 1
        counters.hits += bool(packed)
    return packed


def opted_out_action(action: str, key: str, packed: int) -> str:
    """The access(5)/policy action for a blocked key, e.g. ``REJECT 5.7.1 <key>: buyer ...``."""
    first_seen = packed >> 32
    since = f" (since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(first_seen))})" if first_seen else ""
    text = f"<{key}>: {_REASON}{since}"
    if action == "REJECT":
        return f"REJECT 5.7.1 {text}"
    if action == "DEFER":
        return f"DEFER 4.7.1 {text}"
    return f"{action} {text}"  # HOLD and DISCARD: the text goes to Postfix's log


def decide(attrs: Mapping[str, str], index: BlocklistIndex, settings: PolicySettings,
           counters: Counters | None = None) -> bytes | Malformed:
    """The reply for one well-formed block, or Malformed when it is not a policy request."""
    if attrs.get("request") != "smtpd_access_policy":
        return Malformed(f"request={attrs.get('request', '')[:80]!r}, not smtpd_access_policy")
    recipient = attrs.get("recipient", "")
    if attrs.get("protocol_state", "").upper() != "RCPT" or not recipient:
        return DUNNO
    if settings.exempt(attrs.get("sender", "")):
        return DUNNO
    packed = lookup(index, recipient, counters)
    if not packed:
        return DUNNO
    return f"action={opted_out_action(settings.action, recipient, packed)}\n\n".encode("utf-8", "replace")


class PolicySession:
    """One Postfix connection: bytes in, reply bytes out, malformed blocks reported."""

    def __init__(self, index: BlocklistIndex, settings: PolicySettings, counters: Counters) -> None:
        self._decoder = PolicyDecoder()
        self._index, self._settings, self._counters = index, settings, counters
        self.problems: list[str] = []  # malformed blocks since the last look; the server logs them
        self.closing = False  # the policy protocol never needs to close a connection itself

    @property
    def pending(self) -> bool:
        return self._decoder.pending

    def feed(self, data: bytes) -> bytes:
        replies = []
        for block in self._decoder.feed(data):
            reply = block if isinstance(block, Malformed) else decide(block, self._index, self._settings, self._counters)
            if isinstance(reply, Malformed):
                self.problems.append(reply.reason)
                reply = DEFER_MALFORMED
            replies.append(reply)
        return b"".join(replies)
