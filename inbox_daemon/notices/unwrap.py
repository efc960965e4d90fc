"""From a ``MailNode`` tree to candidate notices, whatever the wrapping.

Each candidate is one message as its author sent it: its own From/Subject/Date/Message-ID and
body text. Wrappings handled:

* as sent, or redirected unchanged (Resent-*, X-Forwarded-*, Sieve): the top message itself;
* forwarded as an attachment (message/rfc822, any depth): each attached message;
* inline forwards (Gmail, Outlook desktop/.com, Apple Mail, Thunderbird, localised labels),
  digests with several notices, forwards of forwards with notes on top, and replies that
  quote the notice ("On …, Amazon.com <…> wrote:" above "> " lines, or Outlook's header block
  under the reply): each header block or attribution starts a new candidate (``quoting``).
"""

from __future__ import annotations

import re
from typing import Final, Literal

from .addresses import first_address, sender_kind
from .mime import Body, Headers, MailNode
from .quoting import Block, split_forwards

__all__ = ["Candidate", "View", "candidates"]

# Lists that rewrite From for DMARC name the author in a header of their own. Google Groups:
# From "'Amazon.com' via Opt-out desk" <group@…> plus X-Original-Sender
# (wrappings_marketplaces_lookalikes/google_groups_dmarc_rewrite.eml). Only a rewritten From is replaced.
_VIA_LIST_FROM: Final = re.compile(r"""^\s*"?'[^']*' via """)
_LIST_AUTHOR_HEADERS: Final = ("x-original-sender",)


class Candidate:
    """One message found inside the mail, which may or may not be an Amazon notice."""

    __slots__ = ("sender", "subject", "date", "message_id", "text", "via", "recipients", "defects",
                 "own_node", "inside_relay", "cut_short", "links", "subjects")

    def __init__(self, *, sender: str | None, subject: str, date: str | None, message_id: str | None,
                 text: str, via: str, recipients: tuple[str, ...] = (), defects: tuple[str, ...] = (),
                 own_node: MailNode | None = None, inside_relay: bool = False, cut_short: bool = False,
                 links: tuple[str, ...] = (), subjects: tuple[str, ...] = ()) -> None:
        self.sender = sender  # lower-case address of its From
        self.subject = subject
        self.date = date
        self.message_id = message_id
        self.text = text  # body text (plain and HTML views of the same content joined)
        self.via = via  # "direct", "inline" or "attachment": how the outermost wrapping carried it
        self.recipients = recipients  # To/Cc of messages attached to it (a blocked original)
        self.defects = defects
        self.own_node = own_node  # set for MIME messages
        # Found inside a message a buyer sent through Amazon's relay: whatever it quotes is the
        # buyer's text (wrappings_marketplaces_lookalikes/lookalike_buyer_relay_forges_forward_block.eml).
        self.inside_relay = inside_relay
        self.cut_short = cut_short  # the raw mail was cut off: see MailNode.cut_short
        # Targets of links to Amazon's sites in its HTML view, and the subjects of the messages
        # that carried it (its own first): where a notice's order id may stand when its text has none.
        self.links = links
        self.subjects = subjects


# Which view of a multipart/alternative body to read: both joined, or one alone.
View = Literal["both", "plain", "html"]


def _views(body: Body, view: View) -> tuple[str, list[Block]]:
    """Split a body's views; when plain and HTML agree on the blocks, join them block by block.
    ``view`` keeps one view alone where the body has it (RFC 2046 5.1.4: either stands for all)."""
    plain = split_forwards(body.plain) if body.plain and (view != "html" or not body.html) else None
    markup = split_forwards(body.html) if body.html and (view != "plain" or not body.plain) else None
    if plain is None or markup is None:
        only = plain or markup
        return only if only is not None else ("", [])
    if len(plain[1]) != len(markup[1]):
        return plain if len(plain[1]) >= len(markup[1]) else markup
    blocks = [
        Block({**h.fields, **p.fields}, p.text + "\n" + h.text, p.reply)
        for p, h in zip(plain[1], markup[1])
    ]
    return plain[0] + "\n" + markup[0], blocks


def candidates(root: MailNode, view: View = "both") -> list[Candidate]:
    """Every candidate notice in the mail, outermost first, in document order."""
    found: list[Candidate] = []
    _gather(root, "direct", found, False, (), view)
    for candidate in found:
        candidate.cut_short = root.cut_short
    return found


def _gather(
    node: MailNode, via: str, found: list[Candidate], inside_relay: bool, outer: tuple[str, ...], view: View
) -> None:
    """Candidates of one message (``outer``: the subjects of the messages around it)."""
    heads: list[str] = []
    blocks: list[Block] = []
    for body in node.bodies:
        head, more = _views(body, view)
        heads.append(head)
        blocks.extend(more)
    links = tuple(link for body in node.bodies for link in body.links)
    subjects = (node.headers.get("subject") or "",) + outer
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
            links=links if not blocks else (),
            subjects=subjects,
        )
    )
    inside_relay = inside_relay or sender_kind(sender) == "relay"
    # The body's links go to its one quoted message; among several, whose they are is unknown.
    block_links = links if len(blocks) == 1 else ()
    _gather_blocks(blocks, via, node, found, inside_relay, (block_links, subjects))
    for child in node.children:
        _gather(child, "attachment", found, inside_relay, subjects, view)


def _gather_blocks(
    blocks: list[Block],
    via: str,
    node: MailNode,
    found: list[Candidate],
    inside_relay: bool,
    context: tuple[tuple[str, ...], tuple[str, ...]],
) -> None:
    """One candidate per inline header block. Blocks nest in reading order (a forward quotes
    the older message below itself), so every block after one sent from a buyer relay
    address is inside that buyer's text (wrappings_marketplaces_lookalikes/lookalike_buyer_relay_quotes_notice_gt.eml)."""
    links, outer = context
    previous: tuple[str, ...] = ()  # the block before: the message that forwarded this one
    for block in blocks:
        sender = first_address(block.fields.get("from"))
        subject = block.fields.get("subject", "")
        found.append(
            Candidate(
                sender=sender,
                subject=subject,
                date=block.fields.get("date"),
                message_id=None,  # mail clients do not quote it in a forward header block
                text=block.text,
                via=_block_via(via, block),
                defects=tuple(node.defects),
                inside_relay=inside_relay,
                links=links,
                subjects=(subject,) + previous + outer,
            )
        )
        previous = (subject,)
        inside_relay = inside_relay or sender_kind(sender) == "relay"


def _block_via(via: str, block: Block) -> str:
    """How a message in body text came: "inline" (forwarded) or "reply" (quoted in a reply),
    unless the message holding it was itself attached ("attachment")."""
    if via != "direct":
        return via
    return "reply" if block.reply else "inline"


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
