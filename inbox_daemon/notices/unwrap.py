"""From a ``MailNode`` tree to candidate notices, whatever the wrapping.

Each candidate is one message as its author sent it: its own From/Subject/Date/Message-ID and
body text. Wrappings handled:

* as sent, or redirected unchanged (Resent-*, X-Forwarded-*, Sieve): the top message itself;
* forwarded as an attachment (message/rfc822, any depth): each attached message;
* inline forwards (Gmail, Outlook desktop/.com, Apple Mail, Thunderbird, localised labels),
  digests with several notices, forwards of forwards with notes on top: each header block a
  mail client writes ("From: … / Subject: … / Date: …") starts a new candidate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .addresses import first_address, sender_kind
from .languages import label_kind
from .mime import Body, Headers, MailNode

__all__ = ["Candidate", "candidates", "split_forwards"]

_QUOTE_PREFIX = re.compile(r"^(?:[ \t]*>)+[ \t]?")
# Lists that rewrite From for DMARC name the author in a header of their own. Google Groups:
# From "'Amazon.com' via Opt-out desk" <group@…> plus X-Original-Sender
# (wrappings_marketplaces_lookalikes/google_groups_dmarc_rewrite.eml). Only a rewritten From is replaced.
_VIA_LIST_FROM = re.compile(r"""^\s*"?'[^']*' via """)
_LIST_AUTHOR_HEADERS = ("x-original-sender",)


@dataclass(slots=True)
class Candidate:
    """One message found inside the mail, which may or may not be an Amazon notice."""

    sender: str | None  # lower-case address of its From
    subject: str
    date: str | None
    message_id: str | None
    text: str  # body text (plain and HTML views of the same content joined)
    via: str  # "direct", "inline" or "attachment": how the outermost wrapping carried it
    recipients: tuple[str, ...] = ()  # To/Cc of messages attached to it (a blocked original)
    defects: tuple[str, ...] = ()
    own_node: MailNode | None = field(default=None, repr=False)  # set for MIME messages
    # Found inside a message a buyer sent through Amazon's relay: whatever it quotes is the
    # buyer's text (wrappings_marketplaces_lookalikes/lookalike_buyer_relay_forges_forward_block.eml).
    inside_relay: bool = False
    cut_short: bool = False  # the raw mail was cut off: see MailNode.cut_short


@dataclass(slots=True)
class _Block:
    """A forward header block found in body text, and the text that follows it."""

    fields: dict[str, str]
    text: str


def split_forwards(text: str) -> tuple[str, list[_Block]]:
    """Split body text at forward header blocks: (text before the first, blocks in order).

    A block is a run of label lines (blank lines allowed between) holding a From label and a
    Subject or Date label — Amazon's own "Message details" has Subject/Sent but no From.
    """
    lines = [_QUOTE_PREFIX.sub("", line) for line in text.split("\n")]
    starts: list[tuple[int, int, dict[str, str]]] = []
    i = 0
    while i < len(lines):
        run_end, fields = _label_run(lines, i)
        if "from" in fields and ("subject" in fields or "date" in fields):
            starts.append((i, run_end, fields))
            i = run_end
        else:
            i = max(run_end, i + 1)
    head_end = starts[0][0] if starts else len(lines)
    blocks = []
    for n, (_, run_end, fields) in enumerate(starts):
        stop = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        blocks.append(_Block(fields, "\n".join(lines[run_end:stop])))
    return "\n".join(lines[:head_end]), blocks


def _label_run(lines: list[str], start: int) -> tuple[int, dict[str, str]]:
    """The end of the run of header-label lines starting at ``start``, and its fields."""
    fields: dict[str, str] = {}
    i = start
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            if not fields:
                return i + 1, fields
            i += 1
            continue
        labelled = label_kind(line) if (":" in line or "\uff1a" in line) else None
        if labelled is None:
            break
        fields.setdefault(labelled[0], labelled[1])
        i += 1
    return i, fields


def _views(body: Body) -> tuple[str, list[_Block]]:
    """Split a body's views; when plain and HTML agree on the blocks, join them block by block."""
    plain = split_forwards(body.plain) if body.plain else None
    markup = split_forwards(body.html) if body.html else None
    if plain is None or markup is None:
        only = plain or markup
        return only if only is not None else ("", [])
    if len(plain[1]) != len(markup[1]):
        return plain if len(plain[1]) >= len(markup[1]) else markup
    blocks = [
        _Block({**h.fields, **p.fields}, p.text + "\n" + h.text) for p, h in zip(plain[1], markup[1])
    ]
    return plain[0] + "\n" + markup[0], blocks


def candidates(root: MailNode) -> list[Candidate]:
    """Every candidate notice in the mail, outermost first, in document order."""
    found: list[Candidate] = []
    _gather(root, "direct", found, False)
    for candidate in found:
        candidate.cut_short = root.cut_short
    return found


def _gather(node: MailNode, via: str, found: list[Candidate], inside_relay: bool) -> None:
    heads: list[str] = []
    blocks: list[_Block] = []
    for body in node.bodies:
        head, more = _views(body)
        heads.append(head)
        blocks.extend(more)
    recipients = tuple(
        addr for child in node.children for addr in _recipients(child)
    )
    headers = node.headers
    sender = _author(headers)
    found.append(
        Candidate(
            sender=sender,
            subject=headers.get("subject") or "",
            date=headers.get("date"),
            message_id=_strip_brackets(headers.get("message-id")),
            text="\n".join(heads),
            via=via,
            recipients=recipients,
            defects=tuple(node.defects),
            own_node=node,
            inside_relay=inside_relay,
        )
    )
    inside_relay = inside_relay or sender_kind(sender) == "relay"
    _gather_blocks(blocks, "inline" if via == "direct" else via, node, found, inside_relay)
    for child in node.children:
        _gather(child, "attachment", found, inside_relay)


def _gather_blocks(
    blocks: list[_Block], via: str, node: MailNode, found: list[Candidate], inside_relay: bool
) -> None:
    """One candidate per inline header block. Blocks nest in reading order (a forward quotes
    the older message below itself), so every block after one sent from a buyer relay
    address is inside that buyer's text (wrappings_marketplaces_lookalikes/lookalike_buyer_relay_quotes_notice_gt.eml)."""
    for block in blocks:
        sender = first_address(block.fields.get("from"))
        found.append(
            Candidate(
                sender=sender,
                subject=block.fields.get("subject", ""),
                date=block.fields.get("date"),
                message_id=None,  # mail clients do not quote it in a forward header block
                text=block.text,
                via=via,
                defects=tuple(node.defects),
                inside_relay=inside_relay,
            )
        )
        inside_relay = inside_relay or sender_kind(sender) == "relay"


def _author(headers: Headers) -> str | None:
    """The lower-case address of a message's author: its From, unless a list rewrote it."""
    written = headers.get("from")
    if written and _VIA_LIST_FROM.match(written):
        for name in _LIST_AUTHOR_HEADERS:
            original = first_address(headers.get(name))
            if original:
                return original
    return first_address(written)


def _recipients(node: MailNode) -> list[str]:
    """To/Cc of an attached message: where a blocked original was addressed (corpus s03)."""
    values = node.headers.get_all("to") + node.headers.get_all("cc")
    return [v for v in values if v]


def _strip_brackets(value: str | None) -> str | None:
    if not value:
        return None
    return value.strip().strip("<>").strip() or None
