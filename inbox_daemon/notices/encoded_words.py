"""RFC 2047 encoded words in a header value, split and decoded exactly as compat32's
``email.header.decode_header`` does, in compiled code: the stdlib's is Python, with a regex
substitution and a Python callback for each "=XX" of a Q-encoded word."""

from __future__ import annotations

import re
from binascii import a2b_base64
from email.errors import HeaderParseError
from typing import Final

__all__ = ["decode_header"]

# email.header.ecre: "=?" charset "?" q or b "?" text "?=", each part as short as it can be.
_ENCODED_WORD: Final = re.compile(r"=\?([^?]*?)\?([qQbB])\?(.*?)\?=", re.MULTILINE)
_HEX: Final = frozenset("0123456789abcdefABCDEF")

Chunk = tuple[bytes | str, str | None]  # (text, its charset), as decode_header returns them


def decode_header(header: str) -> list[Chunk]:
    """``email.header.decode_header(header)``: ``[(header, None)]`` without an encoded word, else
    (bytes, charset) runs: words of one charset joined, blanks between encoded words dropped.
    Raises HeaderParseError on a B-encoded word that is not base64, as it does."""
    lines = header.splitlines()
    # Each line: plain, then (charset, encoding, text, plain) for each encoded word.
    split = [_ENCODED_WORD.split(line) for line in lines]
    if all(len(parts) == 1 for parts in split) and _ENCODED_WORD.search(header) is None:
        return [(header, None)]  # (no word in a line, nor across lines: ".*?" stops at none)
    words: list[tuple[str, str | None, str | None]] = []  # (text, encoding, charset)
    for parts in split:
        plain = parts[0].lstrip()
        if plain:
            words.append((plain, None, None))
        for at in range(1, len(parts), 4):
            words.append((parts[at + 2], parts[at + 1].lower(), parts[at].lower()))
            if parts[at + 3]:
                words.append((parts[at + 3], None, None))
    # Blanks between two encoded words are not text (RFC 2047 section 6.2).
    dropped = [n - 1 for n in range(2, len(words))
               if words[n][1] and words[n - 2][1] and words[n - 1][0].isspace()]
    for n in reversed(dropped):
        del words[n]
    runs: list[Chunk] = []
    last: bytes | None = None
    last_charset: str | None = None
    for text, encoding, charset in words:
        word = _decoded(text, encoding)
        if last is None:
            last, last_charset = word, charset
        elif charset != last_charset:
            runs.append((last, last_charset))
            last, last_charset = word, charset
        elif last_charset is None:
            last += b" " + word
        else:
            last += word
    assert last is not None  # the search above found an encoded word
    runs.append((last, last_charset))
    return runs


def _decoded(text: str, encoding: str | None) -> bytes:
    """One word's bytes: plain text and Q as Latin-1 ("raw-unicode-escape" above U+00FF, as
    decode_header writes them), B through base64 with missing padding added."""
    if encoding == "b":
        if len(text) % 4:
            text += "==="[:4 - len(text) % 4]
        try:
            return a2b_base64(text.encode("raw-unicode-escape"))
        except ValueError:  # binascii.Error
            raise HeaderParseError("Base64 decoding error") from None
    if encoding == "q":
        text = _q_decoded(text)
    return text.encode("raw-unicode-escape")


def _q_decoded(text: str) -> str:
    """``email.quoprimime.header_decode``: "_" is a blank, "=" and two hex digits a character;
    any other "=" stays (RFC 2047 section 4.2)."""
    text = text.replace("_", " ")
    if "=" not in text:
        return text
    pieces = text.split("=")
    out = [pieces[0]]
    for piece in pieces[1:]:
        if len(piece) > 1 and piece[0] in _HEX and piece[1] in _HEX:
            out.append(chr(int(piece[:2], 16)) + piece[2:])
        else:
            out.append("=" + piece)
    return "".join(out)
