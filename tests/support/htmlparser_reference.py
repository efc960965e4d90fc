"""The HTML reader on the stdlib ``html.parser`` tokenizer, as the package read HTML before it
had a tokenizer of its own: ``html.parser``'s tokens handed to the package's own reader. The
reference tests/notices/test_htmltext.py holds the tokenizer to."""

from __future__ import annotations

from html.parser import HTMLParser

from inbox_daemon.notices.htmltext import HtmlText, _Reader


def _close_constructs(markup: str) -> str:
    """The markup with every comment, marked section and tag closed: ``html.parser`` on CPython
    3.11 rescans the rest of the document once per character when a construct never ends. An
    unclosed comment or marked section runs to the end of the document, a "<" after the last
    ">" is escaped."""
    for opener, closer in (("<!--", "-->"), ("<![", "]]>")):
        last_close = markup.rfind(closer)
        unclosed = markup.find(opener, last_close + len(closer) if last_close >= 0 else 0)
        if unclosed >= 0:
            markup = markup[:unclosed]
    last = markup.rfind(">")
    if markup.find("<", last + 1) >= 0:
        markup = markup[: last + 1] + markup[last + 1 :].replace("<", "&lt;")
    return markup


class _Tokens(HTMLParser):
    def __init__(self, reader: _Reader) -> None:
        super().__init__(convert_charrefs=True)
        self.reader = reader

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.reader.start(tag, next((v for k, v in attrs if k == "href" and v), None))

    def handle_endtag(self, tag: str) -> None:
        self.reader.end(tag)

    def handle_data(self, data: str) -> None:
        self.reader.text(data)  # character references already read (convert_charrefs)


def read_html(markup: str) -> HtmlText:
    reader = _Reader()
    tokens = _Tokens(reader)
    tokens.feed(_close_constructs(markup))
    tokens.close()
    return reader.page()
