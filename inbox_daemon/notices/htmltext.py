"""HTML to plain text, just enough to read a notice: tags become line breaks or nothing,
entities are unescaped, and a ``mailto:`` link keeps its address even when the link text does
not show it (Outlook.com forwards are HTML only, corpus s07; issue 2 point 3).

Regular expressions rather than ``html.parser``: notices are small and regular, and this runs
for most messages on the hot path.
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

__all__ = ["html_to_text"]

# Every pattern is linear in the input: a tag cannot hold "<" ([^<>]); the mailto anchor is
# atomic and possessive (a long address is never re-split) and its label, taken in a lookahead
# (atomic in ``re``) and matched again by backreference, stops at the next anchor. (A
# possessive group, ``(?:...)*+``, would say the same but fails to match on Python 3.11.2.) So hostile markup ("<" * 2**21, thousands of unclosed anchors or comments) cannot
# make a message cost seconds (issue 2 point 7). Unclosed comments and script/style blocks
# are cut with str.find in _drop_hidden for the same reason.
_HIDDEN = re.compile(r"<(script|style|head|title)\b[^<>]*>|<!--", re.IGNORECASE)
_MAILTO = re.compile(
    r"<a\b(?>[^<>]*?href\s*=\s*[\"']?\s*mailto:)([^\"'<>\s?]++)[^<>]*+>(?=((?:[^<]|<(?!/?a\b))*))\2</a\s*>",
    re.IGNORECASE,
)
_BLOCK = re.compile(
    r"<\s*(?:br|p|div|tr|li|ul|ol|table|blockquote|hr|h[1-6]|pre|dt|dd)\b[^<>]*>"
    r"|<\s*/\s*(?:p|div|tr|li|ul|ol|table|blockquote|h[1-6]|pre)\s*>",
    re.IGNORECASE,
)
_CELL = re.compile(r"<\s*+/?\s*+t[dh]\b[^<>]*>", re.IGNORECASE)  # possessive: "<" + blanks, no re-splitting
_TAG = re.compile(r"<[^<>]*>")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")


def _mailto(found: re.Match[str]) -> str:
    # A mailto: URI may percent-encode the "@" (RFC 6068 section 2,
    # redteam2/uk_html_mailto_percent_encoded_at.eml).
    address = unquote(html.unescape(found.group(1)))
    label = found.group(2)
    if address.lower() in html.unescape(_TAG.sub("", label)).lower():
        return label
    # Escaped brackets: a literal "<addr>" would be taken for a tag and stripped below.
    return f"{label} &lt;{address}&gt;"


def _drop_hidden(markup: str) -> str:
    """Without comments, scripts, styles, head and title; an unclosed one runs to the end."""
    kept: list[str] = []
    pos = 0
    lower = markup.lower()
    while found := _HIDDEN.search(markup, pos):
        kept.append(markup[pos : found.start()])
        closer = "-->" if found.group(1) is None else f"</{found.group(1).lower()}"
        end = lower.find(closer, found.end())
        if end < 0:
            return "".join(kept)
        pos = markup.find(">", end) + 1 or len(markup)
    kept.append(markup[pos:])
    return "".join(kept)


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body: one line per block, cells separated by spaces."""
    text = _drop_hidden(markup)
    text = _MAILTO.sub(_mailto, text)
    text = text.replace("\r", "").replace("\n", " ")
    text = _BLOCK.sub("\n", text)
    text = _CELL.sub(" ", text)
    text = html.unescape(_TAG.sub("", text))
    text = _SPACES.sub(" ", text)
    return _BLANKS.sub("\n\n", "\n".join(line.strip() for line in text.split("\n")))
