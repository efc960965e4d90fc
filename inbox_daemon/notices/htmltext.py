"""HTML to plain text, just enough to read a notice, through the stdlib ``html.parser`` tokenizer.

Blocks become line breaks, cells spaces, entities are unescaped, scripts, styles, the head and
comments vanish; text inside <blockquote> is prefixed with ">" per level, as plain-text replies
quote (RFC 3676 section 4.5), so ``quoting`` reads both views alike. Links keep what the text may not show: a ``mailto:`` target's address when the
label hides it (Outlook.com forwards are HTML only, corpus s07), and the targets of links to
Amazon's own sites, where a notice may carry its order id only in a "View order" URL
(tests/data/notices/structure/html_order_id_only_in_view_order_link.eml).

Linear: ``html.parser`` on CPython 3.11 rescans the rest of the document once per character
when a construct never ends (512 KB of "<!--" took 82 s, of "</" 23 s, of "<?" 17 s), and only
then. ``_close_constructs`` makes every construct end before the tokenizer sees it: an unclosed
comment or marked section runs to the end of the document (as in a browser) and is cut, and a
"<" after the last ">" is escaped. What remains is consumed construct by construct.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qsl, unquote, urlsplit
from typing import Final

from .addresses import is_amazon_host

__all__ = ["HtmlText", "amazon_link", "html_to_text", "read_html"]

_BLOCK: Final = frozenset(
    "br p div tr li ul ol table blockquote hr h1 h2 h3 h4 h5 h6 pre dt dd section article "
    "header footer center".split()
)
_CELL: Final = frozenset({"td", "th"})
_HIDDEN: Final = frozenset({"script", "style", "head", "title", "template"})
_SPACES: Final = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS: Final = re.compile(r"\n\s*\n\s*\n+")
MAX_LINKS: Final = 64  # Amazon link targets kept per part: a notice has a handful


@dataclass(frozen=True, slots=True)
class HtmlText:
    """The readable text of an HTML part and the targets of its links to Amazon's sites."""

    text: str
    links: tuple[str, ...] = ()


def amazon_link(href: str) -> str | None:
    """The Amazon URL a link leads to, unquoted, or None: direct, or wrapped by a rewriting
    gateway that carries it in a ``url=`` parameter (Outlook Safe Links)."""
    href = href.strip()
    for _ in range(2):
        try:
            parts = urlsplit(href)
        except ValueError:
            return None
        if parts.scheme.lower() not in ("http", "https"):
            return None
        if is_amazon_host(parts.hostname or ""):
            return unquote(href)
        wrapped = [v for k, v in parse_qsl(parts.query) if k.lower() in ("url", "u", "target")]
        if not wrapped:
            return None
        href = wrapped[0]
    return None


def _close_constructs(markup: str) -> str:
    """The markup with every comment, marked section and tag closed (see the module doc)."""
    for opener, closer in (("<!--", "-->"), ("<![", "]]>")):
        last_close = markup.rfind(closer)
        unclosed = markup.find(opener, last_close + len(closer) if last_close >= 0 else 0)
        if unclosed >= 0:
            markup = markup[:unclosed]
    last = markup.rfind(">")
    if markup.find("<", last + 1) >= 0:
        markup = markup[: last + 1] + markup[last + 1 :].replace("<", "&lt;")
    return markup


class _Reader(HTMLParser):
    """Collects text pieces; hidden elements are skipped, anchors remembered until closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.links: list[str] = []
        self.hidden: str | None = None
        self.anchor: tuple[str, int] | None = None  # href, index of its first text piece
        self.quoted = 0  # <blockquote> levels open: written as ">" the way plain text quotes

    def _newline(self) -> None:
        self.pieces.append("\n" + "> " * self.quoted if self.quoted else "\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.hidden is not None:
            if tag == "body" and self.hidden == "head":  # a head left open ends at the body
                self.hidden = None
            return
        if tag in _HIDDEN:
            self.hidden = tag
        elif tag in _BLOCK:
            self.quoted += tag == "blockquote"
            self._newline()
        elif tag in _CELL:
            self.pieces.append(" ")
        elif tag == "a":
            self._close_anchor()
            href = next((v for k, v in attrs if k == "href" and v), None)
            if href is not None:
                self.anchor = (href, len(self.pieces))

    def handle_endtag(self, tag: str) -> None:
        if self.hidden is not None:
            if tag == self.hidden:
                self.hidden = None
            return
        if tag == "a":
            self._close_anchor()
        elif tag in _BLOCK and tag not in ("br", "hr"):
            self.quoted -= tag == "blockquote" and self.quoted > 0
            self._newline()
        elif tag in _CELL:
            self.pieces.append(" ")

    def handle_data(self, data: str) -> None:
        if self.hidden is None:
            self.pieces.append(data.replace("\r", " ").replace("\n", " "))

    def _close_anchor(self) -> None:
        if self.anchor is None:
            return
        href, start = self.anchor
        self.anchor = None
        if href[:7].lower() == "mailto:":
            # A mailto: URI may percent-encode the "@" (RFC 6068 section 2,
            # tests/data/notices/replies_mime_oddities_bulk_mail/uk_html_mailto_percent_encoded_at.eml).
            address = unquote(href[7:].split("?", 1)[0]).strip()
            label = "".join(self.pieces[start:])
            if address and address.lower() not in label.lower():
                self.pieces.append(f" <{address}>")
        elif len(self.links) < MAX_LINKS:
            target = amazon_link(href)
            if target is not None:
                self.links.append(target)

    def close(self) -> None:
        super().close()
        self._close_anchor()


def read_html(markup: str) -> HtmlText:
    """Readable text of an HTML body (one line per block, cells separated by spaces) and the
    Amazon link targets in it."""
    reader = _Reader()
    reader.feed(_close_constructs(markup))
    reader.close()
    text = _SPACES.sub(" ", "".join(reader.pieces))
    text = _BLANKS.sub("\n\n", "\n".join(line.strip() for line in text.split("\n")))
    return HtmlText(text, tuple(dict.fromkeys(reader.links)))


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body; see ``read_html``."""
    return read_html(markup).text
