"""From a ``MailNode`` tree to candidate notices, whatever the wrapping.

Each candidate is one message as its author sent it: its own From/Subject/Date/Message-ID and
body text. Wrappings handled (issue 2, point 2):

* as sent, or redirected unchanged (Resent-*, X-Forwarded-*, Sieve): the top message itself;
* forwarded as an attachment (message/rfc822, any depth): each attached message;
* inline forwards (Gmail, Outlook desktop/.com, Apple Mail, Thunderbird, localised labels),
  digests with several notices, forwards of forwards with notes on top: each header block a
  mail client writes ("From: … / Subject: … / Date: …") starts a new candidate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .addresses import first_address
from .languages import label_kind
from .mime import Body, MailNode

__all__ = ["Candidate", "candidates", "split_forwards"]

_QUOTE_PREFIX = re.compile(r"^(?:[ \t]*>)+[ \t]?")


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
    _gather(root, "direct", found)
    return found


def _gather(node: MailNode, via: str, found: list[Candidate]) -> None:
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
    found.append(
        Candidate(
            sender=first_address(headers.get("from")),
            subject=headers.get("subject") or "",
            date=headers.get("date"),
            message_id=_strip_brackets(headers.get("message-id")),
            text="\n".join(heads),
            via=via,
            recipients=recipients,
            defects=tuple(node.defects),
            own_node=node,
        )
    )
    inline_via = "inline" if via == "direct" else via
    for block in blocks:
        found.append(
            Candidate(
                sender=first_address(block.fields.get("from")),
                subject=block.fields.get("subject", ""),
                date=block.fields.get("date"),
                message_id=None,  # mail clients do not quote it in a forward header block
                text=block.text,
                via=inline_via,
                defects=tuple(node.defects),
            )
        )
    for child in node.children:
        _gather(child, "attachment", found)


def _recipients(node: MailNode) -> list[str]:
    """To/Cc of an attached message: where a blocked original was addressed (corpus s03)."""
    values = node.headers.get_all("to") + node.headers.get_all("cc")
    return [v for v in values if v]


def _strip_brackets(value: str | None) -> str | None:
    if not value:
        return None
    return value.strip().strip("<>").strip() or None
