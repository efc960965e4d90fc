"""A fast split of well-formed mail into the same ``email.message.Message`` tree compat32 builds.

The stdlib's FeedParser reads a message line by line through generators (~45 us for a 4 KB
notice, more than the rest of a parse together, measured by bench/parse.py). Mail that is well
formed (header lines ``name: value`` with folds, one blank line, multipart bodies cut by their
boundary lines, the closing boundary present) is split here with a few regular expressions into
``Message`` objects holding exactly what FeedParser would hold: the raw header values as
``policy.compat32.header_source_parse`` gives them, and the payload text (RFC 2046 section 5.1.1:
the line break before a boundary line belongs to the boundary). Everything FeedParser reports
a defect for, or reads in a way of its own (a "From " line, a header line that is not one, a
missing boundary, message/delivery-status, multipart/digest, lone CRs, RFC 2231 boundaries), is
left to FeedParser: ``split`` returns None and the caller parses the mail the stdlib way.
tests/notices/test_mimesplit.py holds every sample's tree against FeedParser's.
"""

from __future__ import annotations

import re
from binascii import a2b_qp
from email.header import Header
from email.message import Message
from operator import itemgetter
from typing import Any, Final, TypeAlias
from itertools import pairwise
from email.policy import compat32

__all__ = ["MISSING", "Part", "boundary_of", "decoded_payload", "header_fields", "param", "split"]

# A part as compat32 holds it. Its fields read back as ``str``, or as ``email.header.Header``
# when a value holds bytes that are not ASCII (``Compat32.header_fetch_parse``), whatever
# typeshed's default ``Message`` says.
Part: TypeAlias = "Message[str | Header, str]"

MAX_SPLIT_PARTS: Final = 1000  # beyond this, FeedParser (and the walk's own bounds) take over
MAX_SPLIT_DEPTH: Final = 40
# The blank line that ends a header block (RFC 5322 section 2.1), LF or CRLF, whichever comes first.
_BLANK_LINE: Final = re.compile(r"\n\r?\n")
# Characters FeedParser breaks lines at (it splits with str.splitlines) besides CR and LF.
_ODD_BREAKS: Final = "\x0b\x0c\x1c\x1d\x1e"
# The identity transfer encodings (RFC 2045 section 6.2): the only ones a multipart may have, and
# the ones compat32 decodes by handing the text back as bytes.
_IDENTITY_ENCODINGS: Final = frozenset({"", "7bit", "8bit", "binary"})


class _Message(Message):
    """compat32's Message whose ``get`` finds a field through a dict: ``Message.get`` lower-cases
    every field name on every call, about 150 times per notice. The dict is rebuilt when the
    field list is replaced or changes length (every other ``Message`` method that changes
    fields does one or the other) or a field is replaced in place (``replace_header``)."""

    _indexed: list[tuple[str, str]] | None = None  # the field list indexed (None: index it again)
    _length = 0  # its length when indexed
    _index: dict[str, tuple[str, str]]  # lower-case name -> its first field
    _fetched: dict[str, Any]  # name as asked -> what ``get`` returned (None for no field)

    def __init__(self, headers: list[tuple[str, str]], payload: object) -> None:
        """``Message(policy=compat32)`` with its fields and payload set, as ``Message.__init__``
        and ``set_payload`` (without a charset) set them: compiled, not run as Python per part."""
        self.policy = compat32
        self._headers = headers
        self._unixfrom = None
        self._payload = payload
        self._charset = None
        self.preamble = self.epilogue = None
        self.defects = []
        self._default_type = "text/plain"

    def is_multipart(self) -> bool:
        return isinstance(self._payload, list)  # as ``Message.is_multipart``

    def get_content_maintype(self) -> str:
        return self.get_content_type().split("/")[0]  # as ``Message.get_content_maintype``

    def _current(self) -> dict[str, Any]:
        """What ``get`` fetched, emptied (and the index made again) when the fields changed since."""
        fields: list[tuple[str, str]] = self._headers
        if self._indexed is not fields or self._length != len(fields):
            # The first field of each name: inserted last, reading the fields backwards.
            self._index = dict(zip(map(str.lower, map(itemgetter(0), reversed(fields))), reversed(fields)))
            self._fetched = {}
            self._indexed, self._length = fields, len(fields)
        return self._fetched

    def get(self, name: str, failobj: Any = None) -> Any:
        fetched = self._current()
        if name in fetched:
            value = fetched[name]
        else:
            found = self._index.get(name.lower())
            if found is None:
                value = None
            elif isinstance(found[1], str) and found[1].isascii():
                value = found[1]  # as ``Compat32.header_fetch_parse`` returns a value without bytes
            else:
                # compat32 returns an ``email.header.Header`` for a value holding undecodable
                # bytes, though typeshed says ``str``: read through ``Any`` so compiled code
                # takes either.
                policy: Any = self.policy
                value = policy.header_fetch_parse(*found)
            fetched[name] = value
        return failobj if value is None else value

    def get_content_type(self) -> str:
        """``Message.get_content_type``, worked out once while the fields stay as they are
        (asked for about five times per part)."""
        fetched = self._current()
        known = fetched.get(_CONTENT_TYPE)
        if known is not None:
            return str(known)
        value = self.get("content-type")
        if value is None:  # the default type, which a caller may set
            return super().get_content_type()
        # As ``Message.get_content_type``: the value up to ";", stripped, lower case, and
        # text/plain when it is not one "type/subtype" (RFC 2045 section 5.2).
        found = str(value).partition(";")[0].strip().lower()
        if found.count("/") != 1:
            found = "text/plain"
        fetched[_CONTENT_TYPE] = found
        return found

    def params(self) -> dict[str, str] | None:
        """``_plain_params``, read once while the fields stay as they are (asked for the
        charset, format and delsp of every text part)."""
        fetched = self._current()
        if _PARAMS not in fetched:
            fetched[_PARAMS] = _plain_params(self)
        params: dict[str, str] | None = fetched[_PARAMS]
        return params

    def replace_header(self, name: str, value: Any) -> None:
        self._indexed = None
        super().replace_header(name, value)


# The key ``_Message`` keeps its content type under, beside the fields it fetched: no field
# name holds a NUL.
_CONTENT_TYPE: Final = "\0content-type"
_PARAMS: Final = "\0params"  # and its Content-Type's parameters (``_plain_params``)


class _Irregular(Exception):
    """The mail is not one this splitter reads exactly as FeedParser does."""


def split(text: str) -> Part | None:
    """The compat32 message tree of ``text`` (bytes decoded as ASCII with surrogateescape, as
    ``email.message_from_bytes`` does), or None when FeedParser must read it."""
    if _odd_line_breaks(text):
        return None
    try:
        return _message(text, 0, [0])
    except _Irregular:
        return None


def header_fields(block: str) -> list[tuple[str, str]] | None:
    """The fields of a header block (decoded as ``split`` takes text, its last line's break
    included, no blank line) as FeedParser holds them, or None when FeedParser must read it."""
    if _odd_line_breaks(block):
        return None
    try:
        return _headers(block)
    except _Irregular:
        return None


def _odd_line_breaks(text: str) -> bool:
    """Whether FeedParser would break lines where this module does not: a CR outside a CRLF,
    or a character str.splitlines breaks at (``_ODD_BREAKS``)."""
    return ("\r" in text and text.count("\r") != text.count("\r\n")) or any(c in text for c in _ODD_BREAKS)


def _message(text: str, depth: int, count: list[int]) -> Part:
    count[0] += 1
    if depth > MAX_SPLIT_DEPTH or count[0] > MAX_SPLIT_PARTS:
        raise _Irregular
    head, body = _cut(text)
    msg = _Message(_headers(head) if head else [], body)
    ctype = msg.get_content_type()
    if ctype.startswith("multipart/"):
        msg._payload = _parts(msg, ctype, body, depth, count)
    elif ctype.startswith("message/"):
        if ctype == "message/delivery-status":
            raise _Irregular  # FeedParser reads its header blocks as parts of their own
        msg._payload = [_message(body, depth + 1, count)]
    return msg


def _cut(text: str) -> tuple[str, str]:
    """Header block and body, at the first empty line (RFC 5322 section 2.1)."""
    if text.startswith(("\n", "\r\n")):
        return "", text[text.index("\n") + 1:]
    # One search for both line ends: a CRLF mail holds no LF blank line, and looking for one
    # first read the whole text, once per part of a nested forward.
    blank = _BLANK_LINE.search(text)
    if blank is None:
        raise _Irregular  # no header/body separator: FeedParser's defects apply
    at = blank.start() + 1
    return text[:at], text[blank.end():]


def _headers(block: str) -> list[tuple[str, str]]:
    """(name, value) as ``compat32.header_source_parse``: the value after the colon without
    leading blanks, folds kept with their line breaks, the final line break removed. Read line
    by line (str.split runs at memchr speed; a regex walked each character of the long
    Received, DKIM and ARC fields). Well formed when every line is a field's first line (a name
    of printable ASCII but ":", RFC 5322 section 2.2) or a fold (a line starting with a blank,
    not the first), and the block ends with a line break."""
    fields: list[tuple[str, str]] = []
    lines = block.split("\n")
    if lines[-1]:
        raise _Irregular  # no line break after the last line
    name, value, crlf = "", "", False  # the field being read, and whether its last line had a CR
    for line in lines[:-1]:
        ends_cr = line.endswith("\r")
        if ends_cr:
            line = line[:-1]
        if line[:1] in (" ", "\t"):
            if not name:
                raise _Irregular  # the first line folded
            value += ("\r\n" if crlf else "\n") + line
        else:
            if name:
                fields.append((name, value))
            name, colon, rest = line.partition(":")
            if not (colon and name and name.isascii() and name.isprintable() and " " not in name):
                raise _Irregular  # a "From " line, a line that is no header field
            value = rest.lstrip(" \t")
        crlf = ends_cr
    if name:
        fields.append((name, value))
    return fields


def _drop_last_break(part: Part) -> None:
    """The line break before a boundary line belongs to the boundary (RFC 2046 section 5.1.1).
    FeedParser takes it from the last message it began in the part: the innermost of nested
    message/* parts, and from a multipart's epilogue (which is not kept here)."""
    while isinstance(part._payload, list) and part.get_content_maintype() == "message":  # type: ignore[attr-defined]
        part = part._payload[0]  # type: ignore[attr-defined]
    payload = part._payload  # type: ignore[attr-defined]
    if isinstance(payload, str):
        part._payload = payload[:-2] if payload.endswith("\r\n") else payload.removesuffix("\n")  # type: ignore[attr-defined]


# A quoted parameter value holding ";" or an escape, or an RFC 2231 parameter: compat32's own
# parameter parser reads those.
_HARD_PARAMS: Final = re.compile(r'"[^"]*;|\\|\*')


def param(part: Part, name: str, default: str) -> str | tuple[str, str, str]:
    """``part.get_param(name, default)`` without its cost on plain Content-Type values
    (``_plain_params``), whose parameters a split part reads once."""
    params = part.params() if isinstance(part, _Message) else _plain_params(part)
    if params is None:
        return part.get_param(name, default)  # type: ignore[return-value]
    return params.get(name.lower(), default)


def _plain_params(part: Part) -> dict[str, str] | None:
    """The parameters of a plain Content-Type value by lower-case name, the first of each name
    (split at ";", name before "=", value stripped and unquoted as ``email.utils.unquote``
    does; "" for a name without "="), or None when compat32's own parser must read them."""
    value = part.get("content-type")
    if not isinstance(value, str) or _HARD_PARAMS.search(value):
        return None
    params: dict[str, str] = {}
    for piece in value.split(";")[1:]:
        key, sep, found = piece.partition("=")
        found = found.strip()
        if len(found) > 1 and found[0] + found[-1] in ('""', "<>"):
            found = found[1:-1]
        params.setdefault(key.strip().lower(), found if sep else "")
    return params


def boundary_of(part: Part) -> str | None:
    """``part.get_boundary()`` (see ``param``): compat32 unquotes the value a second time
    (``collapse_rfc2231_value``) and strips trailing blanks."""
    found = param(part, "boundary", MISSING)
    if found is MISSING:
        return None
    if not isinstance(found, str):
        return part.get_boundary()
    if len(found) > 1 and found[0] + found[-1] in ('""', "<>"):
        found = found[1:-1]
    return found.rstrip()


def decoded_payload(part: Part) -> object:
    """``part.get_payload(decode=True)`` without its cost on a part that is not base64 or
    uuencoded: the text as bytes (the surrogates of undecodable bytes made bytes again), and
    quoted-printable decoded as ``quopri.decodestring`` does."""
    payload = part._payload  # type: ignore[attr-defined]
    if isinstance(payload, str):
        cte = str(part.get("content-transfer-encoding", "")).lower()
        if cte in _IDENTITY_ENCODINGS or cte == "quoted-printable":
            try:
                data = payload.encode("ascii", "surrogateescape")
            except UnicodeEncodeError:  # text that was never bytes: compat32's own way
                return part.get_payload(decode=True)
            return a2b_qp(data) if cte == "quoted-printable" else data
    return part.get_payload(decode=True)


MISSING: Final = "\0missing"  # a default no header value can be (str identity tells it apart)


def _boundary_lines(body: str, boundary: str) -> list[tuple[int, int, bool]]:
    """(start, end, closing) of each of FeedParser's boundary lines in ``body``: at a line start,
    "--" boundary, "--" when it closes, blanks, the line end (RFC 2046 section 5.1.1). Found by
    substring search: a regex per boundary is compiled once per part (each mail has its own)."""
    marker, size = "--" + boundary, len(body)
    lines: list[tuple[int, int, bool]] = []
    at = body.find(marker)
    while at >= 0:
        end = at + len(marker)
        closing = body.startswith("--", end)
        end += 2 * closing
        while end < size and body[end] in " \t":
            end += 1
        if body.startswith("\n", end) or body.startswith("\r\n", end):
            end = body.index("\n", end) + 1
        elif end < size:  # no line end after the boundary: a line of text
            at = body.find(marker, at + 1)
            continue
        if at == 0 or body[at - 1] == "\n":
            lines.append((at, end, closing))
        at = body.find(marker, end)
    return lines


def _parts(msg: Part, ctype: str, body: str, depth: int, count: list[int]) -> list[Part]:
    """The parts of a multipart body (RFC 2046 section 5.1.1), preamble and epilogue dropped."""
    cte = str(msg.get("content-transfer-encoding", "")).strip().lower()
    boundary = boundary_of(msg)
    raw_type = str(msg.get("content-type", ""))
    if ctype == "multipart/digest" or cte not in _IDENTITY_ENCODINGS or not boundary or "*" in raw_type:
        raise _Irregular
    found = _boundary_lines(body, boundary)
    if not found or not found[-1][2]:
        raise _Irregular  # no start or no closing boundary: FeedParser's defects apply
    parts: list[Part] = []
    for (_, start, closing), (end, _, _) in pairwise(found):
        if closing:
            raise _Irregular  # a part after the closing boundary
        chunk = body[start:end]
        part = _message(chunk, depth + 1, count)
        _drop_last_break(part)
        parts.append(part)
    if not parts:
        raise _Irregular
    return parts
