"""HTML to plain text, just enough to read a notice: a one-pass tokenizer of its own.

Blocks become line breaks, cells spaces, entities are unescaped (``html.unescape``, the HTML5
table), scripts, styles, the head and comments vanish; text inside <blockquote> is prefixed with
">" per level, as plain-text replies quote (RFC 3676 section 4.5), so ``quoting`` reads both
views alike. Links keep what the text may not show: a ``mailto:`` target's address when the
label hides it (Outlook.com forwards are HTML only, corpus s07), and the targets of links to
Amazon's own sites, where a notice may carry its order id only in a "View order" URL
(tests/data/notices/structure/html_order_id_only_in_view_order_link.eml).

Markup is split as a browser splits it (the WHATWG HTML tokenizer, in the states a mail's text
needs): a comment ends at "-->", any other "<!" or "<?" construct at the next ">" (so Outlook's
``<![if !supportLists]>`` hides nothing), a tag at the ">" outside its quoted values, script and
style at their end tag. A comment or a script that never ends runs to the end of the document;
a "<" after the last ">" is text. Each
character is read once, so hostile markup costs its length. It replaced ``html.parser``, which
is pure Python, took a tenth of a parse, and rescanned the rest of the document per character
of an unclosed construct (tests/support/htmlparser_reference.py keeps it as the reference).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
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


# A start tag after its "<": the name, then attributes (a name; "=" and a value, quoted or
# not), up to the ">" outside quotes or the end of the document (WHATWG 13.2.5.6-13.2.5.40).
# Possessive throughout: each character is taken one way only.
_ATTRIBUTE: Final = r"""([^\s/>][^\s/>=]*+)(?:\s*+=\s*+("[^"]*+"|'[^']*+'|[^\s>]*+))?"""  # name, value
# Groups 1 and 2: the tag's name and its run of attributes (their own groups follow, unused).
_START_TAG: Final = re.compile(rf"([a-zA-Z][^\s/>]*+)((?:[\s/]*+{_ATTRIBUTE})*+)[\s/]*+>?")
_ATTRIBUTES: Final = re.compile(_ATTRIBUTE)
_END_TAG: Final = re.compile(r"([a-zA-Z][^\s/>]*+)[^>]*+>?")
# Script and style hold text that is not markup up to their end tag (WHATWG 13.2.5.3, "raw text").
_RAW_TEXT_END: Final = {tag: re.compile(rf"</{tag}[\s/>]", re.IGNORECASE) for tag in ("script", "style")}


def _past(markup: str, closer: str, at: int) -> int:
    """The index after the first ``closer`` from ``at``, or the end of the document."""
    found = markup.find(closer, at)
    return len(markup) if found < 0 else found + len(closer)


class _Reader:
    """Collects text pieces; hidden elements are skipped, anchors remembered until closed."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.links: list[str] = []
        self.hidden: str | None = None
        self.anchor: tuple[str, int] | None = None  # href, index of its first text piece
        self.quoted = 0  # <blockquote> levels open: written as ">" the way plain text quotes

    def read(self, markup: str) -> None:
        """Tokenize ``markup`` once (see the module doc), handing each token on."""
        at, size = 0, len(markup)
        # Past the last ">" nothing but a comment can end: a "<" there is text, as the end of
        # a mail cut short ("contact <buyer@…") is worth reading.
        last_close = markup.rfind(">")
        while at < size:
            lt = markup.find("<", at)
            if lt < 0 or (lt > last_close and not markup.startswith("<!--", lt)):
                unclosed_comment = markup.find("<!--", at)
                self.data(markup[at:] if unclosed_comment < 0 else markup[at:unclosed_comment])
                return
            if lt > at:
                self.data(markup[at:lt])
            after = markup[lt + 1]
            if after.isascii() and after.isalpha():
                at = self._start_tag(markup, lt + 1)
            elif after == "/":
                at = self._end_tag(markup, lt + 2)
            elif markup.startswith("!--", lt + 1):
                if markup.startswith((">", "->"), lt + 4):  # "<!-->", "<!--->": empty comments
                    at = markup.index(">", lt + 4) + 1
                else:
                    at = _past(markup, "-->", lt + 4)
            elif after in "!?":
                at = _past(markup, ">", lt + 2)  # a declaration or a bogus comment
            else:
                self.data("<")
                at = lt + 1

    def _start_tag(self, markup: str, at: int) -> int:
        tag_match = _START_TAG.match(markup, at)
        assert tag_match is not None  # a name of one letter at least always matches
        tag = tag_match.group(1).lower()
        end = tag_match.end()
        if not markup.startswith(">", end - 1):
            return end  # the document ends inside a quoted value: dropped, as a browser does
        href: str | None = None
        if tag == "a":
            for name, value in _ATTRIBUTES.findall(tag_match.group(2)):
                if name.lower() == "href" and len(value) > 0:
                    if value[0] in "\"'":
                        value = value[1:-1]
                    if value:
                        href = unescape(value)
                        break
        self.start(tag, href)
        if tag_match.group(0).endswith("/>"):
            self.end(tag)
        elif tag in _RAW_TEXT_END:
            closing = _RAW_TEXT_END[tag].search(markup, end)
            if closing is None:
                return len(markup)  # never closed: the rest is its text
            self.end(tag)
            return _past(markup, ">", closing.end() - 1)
        return end

    def _end_tag(self, markup: str, at: int) -> int:
        if markup.startswith(">", at):  # "</>": nothing
            return at + 1
        tag_match = _END_TAG.match(markup, at)
        if tag_match is None:  # "</" and no letter: a bogus comment
            return _past(markup, ">", at)
        self.end(tag_match.group(1).lower())
        return tag_match.end()

    def _newline(self) -> None:
        self.pieces.append("\n" + "> " * self.quoted if self.quoted else "\n")

    def start(self, tag: str, href: str | None) -> None:
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
            if href is not None:
                self.anchor = (href, len(self.pieces))

    def end(self, tag: str) -> None:
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

    def data(self, markup: str) -> None:
        """Text between tags, its character references still to be read."""
        if self.hidden is None:
            self.text(unescape(markup) if "&" in markup else markup)

    def text(self, text: str) -> None:
        if self.hidden is None:
            self.pieces.append(text.replace("\r", " ").replace("\n", " "))

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

    def page(self) -> HtmlText:
        """What was read: one line per block, cells separated by spaces, and the links."""
        self._close_anchor()
        text = _SPACES.sub(" ", "".join(self.pieces))
        text = _BLANKS.sub("\n\n", "\n".join(line.strip() for line in text.split("\n")))
        return HtmlText(text, tuple(dict.fromkeys(self.links)))


def read_html(markup: str) -> HtmlText:
    """Readable text of an HTML body (one line per block, cells separated by spaces) and the
    Amazon link targets in it."""
    reader = _Reader()
    reader.read(markup)
    return reader.page()


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body; see ``read_html``."""
    return read_html(markup).text
