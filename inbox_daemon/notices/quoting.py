"""Body text split into the messages it holds: forward header blocks, reply quotes, citations.

A mail client passes an older message on inside the body in two ways:

* a forward header block: label lines ("From: … / Subject: … / Date: …", in the client's
  language) above the older message, which follows at the same quote depth (Gmail, Outlook,
  Thunderbird) or one deeper (Proton Mail, wrappings_marketplaces_lookalikes/protonmail_fwd_bare_sender.eml);
* a reply attribution: one line ("On <date>, <sender> wrote:", "Am … schrieb …:", "Le … a
  écrit :") above the older message quoted one level deeper with ">" (RFC 3676 section 4.5)
  or, in HTML, inside a <blockquote> (``htmltext`` writes those levels as ">" too).

Each becomes a block with its own text. Quoted lines that no block claims (a "> " citation
without attribution, deeper than the text around it) belong to nobody: a message's own text
is what its author wrote at its own depth, so a notice quoted in a reply never counts as the
replying message's reason (tests/data/notices/false_opt_outs/). One pass over the lines.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Final

from .languages import is_attribution, label_kind

__all__ = ["Block", "split_forwards"]

_QUOTE_PREFIX: Final = re.compile(r"^(?:[ \t]*>)+[ \t]?")
# An attribution wrapped onto a second line by the client (Gmail wraps at 78 characters):
# "On Mon, May 6, 2024 at 10:00 AM Amazon.com <auto-communication@amazon.com>" / "wrote:".
_WRAPPED_TAIL: Final = 40


class Block:
    """A message found in body text: its header fields and the text it holds."""

    __slots__ = ("fields", "text", "reply")

    def __init__(self, fields: dict[str, str], text: str, reply: bool = False) -> None:
        self.fields = fields
        self.text = text
        self.reply = reply  # announced by a reply attribution rather than a forward header block


class _Segment:
    """The lines of one message in the body (the body's own, or a block's) as they are read."""

    __slots__ = ("depth", "own", "lines")

    def __init__(self, depth: int, own: int | None) -> None:
        self.depth = depth  # quote depth of its header line
        self.own = own  # quote depth of its own text; None until its first non-blank line
        self.lines: list[str] = []


def _unquote(lines: list[str]) -> tuple[list[str], list[int]]:
    """Lines without their ">" prefixes, and each line's quote depth."""
    text: list[str] = []
    depths: list[int] = []
    for line in lines:
        found = _QUOTE_PREFIX.match(line) if line[:1] in " \t>" else None
        if found is None:
            text.append(line)
            depths.append(0)
        else:
            text.append(line[found.end():])
            depths.append(found.group(0).count(">"))
    return text, depths


def split_forwards(text: str) -> tuple[str, list[Block]]:
    """Split body text at forward header blocks and reply attributions: (the text before the
    first, which is the message's own, and the blocks in reading order)."""
    quoted = ">" in text
    if quoted:
        lines, depths = _unquote(text.split("\n"))
    else:  # no quote marks: every line as it is, at depth 0
        lines = text.split("\n")
        depths = [0] * len(lines)
    # Lines ending in a colon, where an attribution ends (one line or two): the others are not
    # asked (a C-level pass instead of a check per line).
    colon = [line.rstrip().endswith((":", "\uff1a")) for line in lines] + [False]
    # Lines where a header block or an attribution may start; the others are only placed, and
    # without quote marks a run of them goes to one message at once (``_place_run``).
    starts = [n for n, line in enumerate(lines) if colon[n] or colon[n + 1] or ":" in line or "\uff1a" in line]
    starts.append(len(lines))
    head = _Segment(0, 0)
    stack = [head]
    found: list[tuple[Block, _Segment]] = []
    plain_until = 0  # lines before this are known not to start a header block
    i = 0
    while i < len(lines):
        upto = i if quoted else starts[bisect_left(starts, i)]
        if upto > i:
            _place_run(stack[-1], lines[i:upto])
            i = upto
            continue
        line, depth = lines[i], depths[i]
        started = None
        if i >= plain_until and (":" in line or "\uff1a" in line):
            run_end, fields = _label_run(lines, i)
            if "from" in fields and ("subject" in fields or "date" in fields):
                started, i = Block(fields, ""), run_end
            else:
                plain_until = run_end  # a suffix of a run holds no more labels than the run
        if started is None and (colon[i] or colon[i + 1]):
            taken = _attribution(lines, i)
            if taken:
                attribution = " ".join(lines[i:i + taken])
                started, i = Block({"from": attribution, "date": attribution}, "", reply=True), i + taken
        if started is not None:
            while len(stack) > 1 and _level(stack[-1]) >= depth:
                stack.pop()
            found.append((started, _Segment(depth, None)))
            stack.append(found[-1][1])
            continue
        _place(stack, line, depth)
        i += 1
    for block, segment in found:
        block.text = "\n".join(segment.lines)
    return "\n".join(head.lines), [block for block, _ in found]


def _level(segment: _Segment) -> int:
    return segment.own if segment.own is not None else segment.depth


def _place_run(top: _Segment, run: list[str]) -> None:
    """``_place`` for lines of text without quote marks: each goes to the innermost message
    (every message there stands at depth 0), blank lines as empty ones."""
    placed = [line if line.strip() else "" for line in run]
    if top.own is None and any(placed):
        top.own = 0
    top.lines.extend(placed)


def _place(stack: list[_Segment], line: str, depth: int) -> None:
    """Give a text line to the innermost message it belongs to, or to nobody (a citation)."""
    if not line.strip():
        stack[-1].lines.append("")
        return
    while len(stack) > 1 and depth < _level(stack[-1]):
        stack.pop()
    top = stack[-1]
    if top.own is None:
        top.own = depth
    if depth == top.own:
        top.lines.append(line)


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


def _attribution(lines: list[str], i: int) -> int:
    """How many lines (1 or 2) at ``i`` form a reply attribution, or 0."""
    line = lines[i].rstrip()
    if line.endswith((":", "\uff1a")):
        return 1 if is_attribution(line) else 0
    if i + 1 < len(lines) and line:
        tail = lines[i + 1].strip()
        if tail.endswith((":", "\uff1a")) and len(tail) <= _WRAPPED_TAIL and is_attribution(line + " " + tail):
            return 2
    return 0
