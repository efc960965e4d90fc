"""Tolerant, bounded walk of a raw message into text bodies and attached messages.

``email`` with ``compat32`` does the MIME split (``policy.default`` measured ~10x the cost on
the forwarded notice of bench/parse.py); this module decodes parts itself (``charsets``), turns
HTML into text (``htmltext``) and bounds the work per message: bytes read, parts visited,
forwarding levels and multipart nesting inside one message. A hostile mail (10,000 parts, 200
levels, 50 MB) costs at most those bounds and is reported, never raised.
"""

from __future__ import annotations

import binascii
import email
import quopri
import re
from collections.abc import Iterable, Iterator, Sequence
from email import errors
from email.message import Message
from email.policy import compat32
from typing import Final, cast
from urllib.parse import unquote

from .charsets import decode_bytes
from .encoded_words import decode_header
from .htmltext import amazon_link, read_html
from .mimesplit import MISSING as _MISSING
from .mimesplit import Part, decoded_payload
from .mimesplit import param as _param
from .mimesplit import split

__all__ = ["MAX_BYTES", "MAX_PARTS", "MAX_LEVELS", "MAX_NESTING", "Headers", "Body", "MailNode",
           "has_alternatives", "read_message", "read_unread_html"]

MAX_BYTES: Final = 8 * 1024 * 1024  # a notice is ~4 KB; forwards with screenshots stay well below
MAX_PARTS: Final = 500  # MIME parts visited per message, all levels together
# Forwarding levels: messages attached inside messages. Each forward-as-attachment adds one,
# however many multipart containers the client wraps around it (a helpdesk escalation nests a
# notice 20 forwards deep, tests/data/notices/structure/helpdesk_escalation_20_attachment_forwards.eml).
MAX_LEVELS: Final = 32
# Multipart containers nested inside one message: mixed > related > alternative is 3 in real
# mail; the bound keeps the walk's recursion shallow (MAX_LEVELS * MAX_NESTING frames at most).
MAX_NESTING: Final = 12
MAX_TEXT: Final = 256 * 1024  # characters of text kept per part: notices put the reason up front

# RFC 2045 section 6.7 rule 3: trailing blanks on a quoted-printable line were added in transport
# and must go before decoding, or "=  " stops being a soft break
# (replies_mime_oddities_bulk_mail/qp_softbreak_after_amazon_dot_trailing_blanks.eml).
# Only at the start of a run, and possessive: a long run of blanks mid-line is scanned once,
# not once per blank (200,000 spaces in a QP line hung the parser).
_QP_TRAILING_BLANKS: Final = re.compile(r"(?<![ \t])[ \t]++(?=\r?$)", re.MULTILINE)
# Where such a blank can stand: before a line end, or at the very end. Looked for first, in C-level
# substring scans: the regex above tries its lookbehind at every position of the text.
_BLANK_AT_LINE_END: Final = (" \n", "\t\n", " \r\n", "\t\r\n")
_BLANK_AT_END: Final = (" ", "\t", " \r", "\t\r")


def _has_trailing_blanks(text: str) -> bool:
    """Whether ``_QP_TRAILING_BLANKS`` can match in ``text``."""
    return text.endswith(_BLANK_AT_END) or any(blank in text for blank in _BLANK_AT_LINE_END)

# Defects that keep the text readable: a missing closing boundary (corpus s15) is harmless.
_HARMLESS: Final = (errors.CloseBoundaryNotFoundDefect, errors.MissingHeaderBodySeparatorDefect)


class Headers:
    """Decoded header values of one message (RFC 2047 words and raw 8-bit bytes both read).
    Each name is decoded once: the parse asks for From and Subject several times."""

    __slots__ = ("_by_name", "_decoded")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        by_name: dict[str, list[str]] = {}  # raw values by lower-case name, in order
        for key, value in items:
            key = key.lower()
            if key in by_name:
                by_name[key].append(value)
            else:
                by_name[key] = [value]
        self._by_name = by_name
        self._decoded: dict[str, list[str]] = {}

    @classmethod
    def of(cls, msg: Part) -> Headers:
        # The raw values compat32 keeps are the source text (``header_source_parse``): str.
        return cls(cast("Iterator[tuple[str, str]]", msg.raw_items()))

    def get(self, name: str) -> str | None:
        """The first value of a header, decoded and unfolded, or None."""
        values = self._decoded.get(name)  # asked before, by this very name (callers use lower case)
        if values is None:
            values = self._values(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return list(self._values(name))

    def _values(self, name: str) -> list[str]:
        values = self._decoded.get(name)
        if values is None:
            raw = self._by_name.get(name.lower())
            values = self._decoded[name] = [_decode_header(v) for v in raw] if raw else []
        return values


# A header value is read up to this many characters: RFC 2047 decoding as the stdlib does it
# (``encoded_words``) is quadratic in the number of encoded words (200,000 words took 29 s in
# the stdlib's; 2,000, the most this bound lets in, take about 2 ms), and no From, Subject or
# Date we read needs more (RFC 5322 2.1.1 lines are 998 characters; a few folds of them).
MAX_HEADER_CHARS: Final = 16 * 1024


def _decode_header(value: str) -> str:
    """Unfold and decode: RFC 2047 encoded words, and raw 8-bit bytes by charset sniffing."""
    value = value[:MAX_HEADER_CHARS].replace("\r", "").replace("\n", "")
    if "=?" not in value and value.isascii():
        return value.strip()
    try:
        chunks = decode_header(value)
    except (errors.HeaderParseError, ValueError, LookupError):
        chunks = [(value, None)]
    parts: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            chunk = chunk.encode("ascii", "surrogateescape")
        if charset == "unknown-8bit":
            charset = None
        parts.append(decode_bytes(chunk, charset)[0])
    return "".join(parts).strip()


class Body:
    """One text body: the plain and/or HTML (as text) views of the same content."""

    __slots__ = ("plain", "html", "links", "unread")

    def __init__(self, plain: str | None = None, html: str | None = None, links: tuple[str, ...] = (),
                 unread: tuple[str, ...] = ()) -> None:
        self.plain = plain
        self.html = html
        self.links = links  # targets of links to Amazon's sites in the HTML view
        # HTML alternatives left unread because the plain view seemed to say it all
        # (``_alternative``); ``read_unread_html`` reads them when the plain view yields no notice.
        self.unread = unread


class MailNode:
    """One message: its headers, text bodies in order, attached messages, and what went wrong."""

    __slots__ = ("headers", "bodies", "children", "defects", "notes", "cut_short", "bounded")

    def __init__(self, headers: Headers) -> None:
        self.headers = headers
        self.bodies: list[Body] = []
        self.children: list[MailNode] = []
        self.defects: list[str] = []  # damage that may hide the text
        self.notes: list[str] = []  # harmless oddities, for diagnostics
        # The raw bytes stop mid-line: SMTP delivers whole lines, so the file was cut (corpus s25,
        # wrappings_marketplaces_lookalikes/damaged_truncated_after_dot_com_of_com_au.eml). Set on the root only.
        self.cut_short = False
        # Why the walk stopped early (part or depth bound), so the parser can say a notice may lie
        # beyond it (replies_mime_oddities_bulk_mail/nested_17_attachment_forwards.eml). Set on the root only.
        self.bounded: str | None = None


class _Budget:
    __slots__ = ("parts", "exhausted")

    def __init__(self) -> None:
        self.parts = 0
        self.exhausted: str | None = None


# A Content-Type or Content-Disposition field (with its folds) in any part, anywhere.
_PARAM_FIELD: Final = re.compile(rb"^content-(?:type|disposition)[ \t]*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*",
                          re.IGNORECASE | re.MULTILINE)


def _bound_param_fields(raw: bytes) -> bytes:
    """Cut parameter-bearing fields to MAX_HEADER_CHARS before ``email`` sees them: its
    parameter splitting is quadratic in the number of ";" (200,000 took 1 s inside the parser
    itself, via get_boundary), and no real field comes near the bound."""
    if raw.count(b";") < 1000:  # few parameters anywhere: nothing quadratic to fear (fast path)
        return raw
    if not any(len(m) > MAX_HEADER_CHARS for m in _PARAM_FIELD.findall(raw)):
        return raw
    return _PARAM_FIELD.sub(lambda m: m.group(0)[:MAX_HEADER_CHARS], raw)


def read_message(raw: bytes) -> MailNode:
    """Parse raw bytes into a ``MailNode`` tree within the bounds above."""
    truncated = len(raw) > MAX_BYTES
    msg = _parse_bytes(_bound_param_fields(raw[:MAX_BYTES]))
    budget = _Budget()
    node = _walk(msg, 0, budget)
    node.bounded = budget.exhausted
    node.cut_short = truncated or raw[-1:] not in (b"\n", b"\r")
    if truncated:
        node.notes.append(f"message larger than {MAX_BYTES} bytes; only the start was read")
    return node


def _parse_bytes(data: bytes) -> Part:
    """compat32's message tree: ``mimesplit`` for well-formed mail, FeedParser for the rest
    (``email.message_from_bytes`` decodes the bytes the same way first)."""
    text = data.decode("ascii", "surrogateescape")
    return split(text) or email.message_from_string(text, policy=compat32)


def _walk(msg: Part, level: int, budget: _Budget) -> MailNode:
    """The node of one message at forwarding ``level`` (0: the mail as received)."""
    node = MailNode(Headers.of(msg))
    if level > MAX_LEVELS:
        _exhaust(budget, node, f"more than {MAX_LEVELS} forwarding levels; rest skipped")
        return node
    _collect(msg, node, level, 0, budget)
    return node


def _exhaust(budget: _Budget, node: MailNode, why: str) -> None:
    if not budget.exhausted:
        budget.exhausted = why
        node.notes.append(why)


def _collect(part: Part, node: MailNode, level: int, nesting: int, budget: _Budget) -> None:
    """Add the part's text to ``node`` and its attached messages as children, within bounds."""
    budget.parts += 1
    if budget.parts > MAX_PARTS:
        _exhaust(budget, node, f"more than {MAX_PARTS} MIME parts; rest skipped")
        return
    if nesting > MAX_NESTING:
        _exhaust(budget, node, f"multipart nested more than {MAX_NESTING} deep; rest skipped")
        return
    if part.defects:
        _note_defects(part, node)
    _tidy_transfer_encoding(part)
    ctype = part.get_content_type()
    maintype = ctype.split("/", 1)[0]
    # Only containers are asked for their payload: compat32's get_payload() on an 8-bit leaf
    # decodes with the charset parameter and raises TypeError when that is RFC 2231 encoded
    # (charset*=…, replies_mime_oddities_bulk_mail/pl_rfc2231_encoded_charset_param_latin2.eml).
    payload = part.get_payload() if part.is_multipart() else None
    subparts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    if ctype in ("message/rfc822", "message/global") and subparts:
        node.children.append(_walk(_attached_message(part, subparts[0], node), level + 1, budget))
    elif maintype == "multipart":
        if not subparts:
            node.defects.append("multipart body whose parts cannot be found (boundary mismatch)")
        elif ctype == "multipart/alternative":
            node.bodies.append(_alternative(subparts, node, level, nesting, budget))
        else:
            for sub in subparts:
                _collect(sub, node, level, nesting + 1, budget)
    elif ctype == "text/html":
        page = read_html(_text(part, node))
        node.bodies.append(Body(html=page.text, links=page.links))
    elif ctype == "text/plain":
        node.bodies.append(Body(plain=_plain(part, _text(part, node))))
    elif maintype == "application" and _is_eml_attachment(part):
        data = part.get_payload(decode=True)
        if isinstance(data, bytes) and data:
            inner = _parse_bytes(data[:MAX_BYTES])
            node.children.append(_walk(inner, level + 1, budget))


def _tidy_transfer_encoding(part: Part) -> None:
    """Strip stray whitespace from Content-Transfer-Encoding: ``email`` compares the value as
    written, so "Base64 " would leave the body undecoded
    (wrappings_marketplaces_lookalikes/jp_subject_split_multibyte_cte_trailing_space.eml); and from the ends of
    quoted-printable lines (``_QP_TRAILING_BLANKS``)."""
    value = part.get("content-transfer-encoding")
    if not isinstance(value, str):
        return
    if value != value.strip():
        part.replace_header("content-transfer-encoding", value.strip())
    if value.strip().lower() != "quoted-printable" or part.is_multipart():
        return
    # Raw 8-bit is left as it came (and ``get_payload()`` would decode it, see _collect).
    payload = part._payload  # type: ignore[attr-defined]
    if isinstance(payload, str) and payload.isascii() and _has_trailing_blanks(payload):
        part.set_payload(_QP_TRAILING_BLANKS.sub("", payload))


def _attached_message(part: Part, inner: Part, node: MailNode) -> Part:
    """The message inside a message/rfc822 part, decoded first when the part was itself base64 or
    quoted-printable (RFC 2046 section 5.2.1 forbids it; some clients do it anyway,
    wrappings_marketplaces_lookalikes/attachment_nested_outer_rfc822_base64.eml). ``email`` then parsed the encoded text
    as a header-less message; decode that text and parse again."""
    cte = str(part.get("content-transfer-encoding", "")).lower()
    if cte not in ("base64", "quoted-printable") or inner.keys():
        return inner
    encoded = inner.get_payload()
    if not isinstance(encoded, str):
        return inner
    data = encoded.encode("ascii", "replace")
    try:
        data = binascii.a2b_base64(data) if cte == "base64" else quopri.decodestring(data)
    except (binascii.Error, ValueError):
        node.defects.append(f"attached message's {cte} encoding damaged")
        return inner
    return _parse_bytes(data[:MAX_BYTES])


def _alternative(
    payload: list[Part], node: MailNode, level: int, nesting: int, budget: _Budget
) -> Body:
    """The plain and HTML views among the alternatives (RFC 2046 section 5.1.4). The views
    show the same content, so an HTML part is only read (tokenized: the costliest step of a
    parse) when it can add something: the plain view is missing or a stub, or a link target
    the plain view does not show."""
    scratch = MailNode(node.headers)
    deferred: list[str] = []
    for sub in payload:
        if sub.get_content_type() == "text/html" and not sub.is_multipart():
            budget.parts += 1
            deferred.append(_text(sub, scratch))
        else:
            _collect(sub, scratch, level, nesting + 1, budget)
    plain = "\n".join(b.plain for b in scratch.bodies if b.plain) or None
    unread: list[str] = []
    for source in deferred:
        if _html_adds_to(plain, source):
            page = read_html(source)
            scratch.bodies.append(Body(html=page.text, links=page.links))
        else:
            unread.append(source)
    node.children.extend(scratch.children)
    node.defects.extend(scratch.defects)
    node.notes.extend(scratch.notes)
    markup = "\n".join(b.html for b in scratch.bodies if b.html) or None
    links = tuple(link for b in scratch.bodies for link in b.links)
    return Body(plain=plain, html=markup, links=links, unread=tuple(unread))


def read_unread_html(node: MailNode) -> bool:
    """Read the HTML alternatives ``_alternative`` skipped, in the whole tree; whether any was.
    A view the plain text seemed to cover may still be the only one whose forward header
    block can be read (Yahoo Mail runs the fields together on one line in its text part:
    charsets_alternatives_rejections/yahoo_fwd_runon_header_fields_en.eml)."""
    found = False
    for body in node.bodies:
        for source in body.unread:
            page = read_html(source)
            body.html = "\n".join(t for t in (body.html, page.text) if t) or None
            body.links += page.links
            found = True
        body.unread = ()
    for child in node.children:
        found = read_unread_html(child) or found
    return found


def has_alternatives(node: MailNode) -> bool:
    """Whether any body in the tree has two views (multipart/alternative), read or not."""
    if any(b.plain is not None and (b.html is not None or b.unread) for b in node.bodies):
        return True
    return any(has_alternatives(child) for child in node.children)


# Link targets in markup; possessive, so a run of blanks after "href" is scanned once.
_HREF: Final = re.compile(r"""href\s*+=\s*+["']?+\s*+((?:mailto|https?):[^"'\s<>]++)""", re.IGNORECASE)
# A plain view shorter than this, or than an eighth of the markup, may be a stub ("view this
# message in HTML"), not the same content.
_STUB_PLAIN: Final = 200


def _html_adds_to(plain: str | None, markup: str) -> bool:
    """Whether the HTML view may say what the plain view does not (see ``_alternative``)."""
    if plain is None or len(plain.strip()) < _STUB_PLAIN or len(plain) * 8 < len(markup):
        return True
    shown = plain.lower()
    for target in _HREF.findall(markup):
        if target[:7].lower() == "mailto:":
            address = unquote(target[7:].split("?", 1)[0]).lower()
            if address not in shown:
                return True
        elif amazon_link(target) is not None:
            return True
    return False


def _is_eml_attachment(part: Part) -> bool:
    """A forwarded .eml sent as application/octet-stream (some webmail clients do that)."""
    filename = part.get_filename()
    return isinstance(filename, str) and filename.lower().endswith(".eml")


def _text(part: Part, node: MailNode) -> str:
    """Decoded text of a text/* part, cut to MAX_TEXT."""
    before = len(part.defects)
    data = decoded_payload(part)
    if not isinstance(data, bytes):
        data = b""
    if len(part.defects) > before:
        # Base64 that could not be decoded whole (corpus s25): the text may be cut short.
        node.defects.append("transfer encoding damaged (" + _defect_names(part.defects[before:]) + ")")
    declared = _charset(part)
    text, guessed = decode_bytes(data, declared)
    if guessed:
        node.notes.append(f"charset {declared!r} overruled by sniffing")
    return text[:MAX_TEXT]


def _charset(part: Part) -> str | None:
    """``part.get_content_charset()`` (see ``mimesplit.param``)."""
    found = _param(part, "charset", _MISSING)
    if not isinstance(found, str):
        return part.get_content_charset()
    return found.lower() if found is not _MISSING and found.isascii() else None


def _plain(part: Part, text: str) -> str:
    """A text/plain body with RFC 3676 soft breaks joined and line ends made "\n"."""
    if str(_param(part, "format", "")).lower() == "flowed":
        text = _unflow(text, str(_param(part, "delsp", "no")).lower() == "yes")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _unflow(text: str, delsp: bool) -> str:
    """Join RFC 3676 soft breaks (a line ending in a space continues on the next line)."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if out and out[-1].endswith(" ") and out[-1] != "-- ":
            prev = out.pop()
            line = (prev[:-1] if delsp else prev) + line
        out.append(line)
    return "\n".join(out)


def _note_defects(part: Part, node: MailNode) -> None:
    harmful = [d for d in part.defects if not isinstance(d, _HARMLESS)]
    harmless = [d for d in part.defects if isinstance(d, _HARMLESS)]
    if harmful:
        node.defects.append("MIME structure damaged (" + _defect_names(harmful) + ")")
    if harmless:
        node.notes.append("harmless MIME defect (" + _defect_names(harmless) + ")")


def _defect_names(defects: Sequence[errors.MessageDefect]) -> str:
    return ", ".join(sorted({type(d).__name__ for d in defects}))
