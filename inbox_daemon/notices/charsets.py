"""Turning body and header bytes into text when charset declarations are missing or wrong.

Notices arrive in UTF-8, ISO-8859-1, windows-1252, ISO-2022-JP, Shift_JIS, EUC-JP and UTF-16,
often with missing or wrong charset declarations. Corpus s27 declares ``x-user-defined`` over
UTF-16LE; s28 carries raw Shift_JIS with no charset at all.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

import charset_normalizer
from typing import Final

from .encoding_labels import CODEC_OF_ENCODING, ENCODING_OF_LABEL, REPLACEMENT_CODECS
from .jis import decode_euc_jp_ms, decode_iso2022_jp_ms

__all__ = ["decode_bytes", "lookup"]

_GBK_ERRORS: Final = "inbox-daemon-gbk-euro"


def _gbk_euro(exc: UnicodeError) -> tuple[str, int]:
    """Error handler for gb18030: a lone 0x80 is the euro sign in GBK (cp936; the WHATWG GBK
    decoder reads it so), though not in GB18030 itself."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return ("\u20ac" if exc.object[exc.start] == 0x80 else "\ufffd"), exc.start + 1


codecs.register_error(_GBK_ERRORS, _gbk_euro)


def _decode_gbk(data: bytes) -> str:
    return data.decode("gb18030", errors=_GBK_ERRORS)


# Decoders that are functions of this package, not Python codecs (``jis``), by the name
# ``encoding_labels.CODEC_OF_ENCODING`` gives them.
_OWN_DECODERS: Final = {"iso-2022-jp-ms": decode_iso2022_jp_ms, "euc-jp-ms": decode_euc_jp_ms, "gbk-ms": _decode_gbk}
_SINGLE_BYTE_WESTERN: Final = frozenset({"cp1252", "latin_1", "iso8859_15", "ascii"})


@lru_cache(maxsize=512)
def lookup(declared: str | None) -> str | None:
    """The decoder for a declared charset, as mail clients resolve it (the WHATWG label table,
    ``encoding_labels``; Python's codec names for labels outside it), or None when unknown or
    useless (x-user-defined). Kept per label: mail carries a few dozen labels, each part asks."""
    if not declared:
        return None
    label = declared.strip().strip('"').strip().lower()
    encoding = ENCODING_OF_LABEL.get(label)
    if encoding is not None:
        codec = CODEC_OF_ENCODING[encoding]
        if encoding == "replacement":
            codec = REPLACEMENT_CODECS.get(label)
        return codec if codec is None or codec in _OWN_DECODERS else codecs.lookup(codec).name
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def _utf16_codec(data: bytes) -> str | None:
    """UTF-16 by its BOM or by its NUL bytes: ASCII text in UTF-16 is half NULs."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"
    sample = data[:4096]
    if len(sample) < 8 or sample.count(0) * 4 < len(sample):
        return None
    odd_nuls = sample[1::2].count(0)
    even_nuls = sample[0::2].count(0)
    return "utf-16-le" if odd_nuls > even_nuls else "utf-16-be"


def _kana_share(text: str) -> float:
    """Share of kana among non-ASCII characters: high for Japanese, ~0 for mis-read Latin."""
    wide = [c for c in text if ord(c) > 0x7F]
    if not wide:
        return 0.0
    return sum(1 for c in wide if "\u3040" <= c <= "\u30ff") / len(wide)



# ISO-2022-JP is 7-bit: its escape sequences (RFC 1468; ESC ( I of CP50221) identify it
# whatever the label says.
_ISO2022JP_ESCAPES: Final = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(B", b"\x1b(I")
_ISO2022JP: Final = "iso-2022-jp-ms"


def _strict(data: bytes, codec: str) -> str | None:
    """The text when every byte decodes, else None."""
    own = _OWN_DECODERS.get(codec)
    if own is not None:
        text = own(data)
        return None if "\ufffd" in text else text
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _lenient(data: bytes, codec: str) -> str | None:
    """The text with the bytes that cannot be decoded as U+FFFD, when they are few: a wrong
    label fails on most of its non-ASCII bytes, a damaged part on a handful (a mail client shows
    the rest, and so does this)."""
    own = _OWN_DECODERS.get(codec)
    text = own(data) if own is not None else data.decode(codec, errors="replace")
    lost = text.count("\ufffd")
    high = len(data) - len(data.translate(None, _HIGH_BYTES))
    return text if lost <= max(2, high // 20) else None


_HIGH_BYTES: Final = bytes(range(0x80, 0x100))


def _guess(data: bytes) -> tuple[str, str]:
    """Decode bytes with no usable declaration: ISO-2022-JP, UTF-8, Japanese, then cp1252."""
    if b"\x1b$" in data or b"\x1b(" in data:
        text = _strict(data, _ISO2022JP)
        if text is not None:
            return text, _ISO2022JP
    if data.isascii():
        return data.decode("ascii"), "ascii"
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    # Only double-byte-looking bytes are sniffed: charset-normalizer's East Asian answers are
    # the only ones used, and Western text (accents alone between letters) never gives one.
    east_asian = _east_asian(data) if _mostly_byte_runs(data) else None
    if east_asian is not None:
        return east_asian
    best: tuple[float, str, str] | None = None
    for codec in ("cp932", "euc-jp-ms"):
        text = _strict(data, codec)
        if text is not None:
            share = _kana_share(text)
            if share >= 0.2 and (best is None or share > best[0]):
                best = (share, text, codec)
    if best is not None:
        return best[1], best[2]
    return data.decode("cp1252", errors="replace"), "cp1252"


# Codecs charset-normalizer's answer is taken for. Measured on the non-ASCII texts of every
# sample re-encoded without a declaration (tests/notices/test_charsets.py): it recovers GB18030
# and EUC-JP text the kana heuristic below misses, but reads Western single-byte text worse
# than the cp1252 fallback, so its other answers are not used.
_EAST_ASIAN: Final = frozenset({
    "gb18030", "gbk", "gb2312", "big5", "big5hkscs", "cp950", "euc_jp", "cp932", "shift_jis",
    "euc_jis_2004", "shift_jis_2004", "euc_kr", "cp949", "johab", "hz",
})
# A sniffed East Asian codec is read as the Windows superset a mail client would use (WHATWG).
_SUPERSET: Final = {"euc_jp": "euc-jp-ms", "shift_jis": "cp932", "gb2312": "gbk-ms", "gbk": "gbk-ms", "gb18030": "gbk-ms",
             "big5": "big5hkscs", "cp950": "big5hkscs", "euc_kr": "cp949"}
_SNIFF_BYTES: Final = 64 * 1024  # charset-normalizer reads samples of the bytes; more adds nothing


_HIGH_RUN: Final = re.compile(rb"[\x80-\xff]{2,}")
_HIGH_BYTE: Final = re.compile(rb"[\x80-\xff]")


def _mostly_byte_runs(data: bytes) -> bool:
    """Whether the 8-bit bytes come in runs, as East Asian double-byte text does; Western
    single-byte text has its accents alone between ASCII letters ("K\xe4ufer")."""
    sample = data[:_SNIFF_BYTES]
    high = len(_HIGH_BYTE.findall(sample))
    return high >= 8 and sum(map(len, _HIGH_RUN.findall(sample))) >= 0.8 * high


def _east_asian(data: bytes) -> tuple[str, str] | None:
    """(text, codec) when charset-normalizer finds an East Asian codec that reads the bytes."""
    best = charset_normalizer.from_bytes(data[:_SNIFF_BYTES]).best()
    if best is None or best.encoding not in _EAST_ASIAN:
        return None
    codec = _SUPERSET.get(best.encoding, best.encoding)
    text = _strict(data, codec)
    return (text, codec) if text is not None else None


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, bool]:
    """Text from bytes, and whether the declared charset had to be overruled or guessed."""
    if not data:
        return "", False
    utf16 = _utf16_codec(data)
    if utf16 is not None:
        return data.decode(utf16, errors="replace"), True
    codec = lookup(declared)
    if b"\x1b" in data and any(e in data for e in _ISO2022JP_ESCAPES):
        text = _lenient(data, _ISO2022JP)
        if text is not None:
            return text, codec != _ISO2022JP
    if codec is not None:
        if codec in _SINGLE_BYTE_WESTERN and not data.isascii():
            # Declared Latin but valid UTF-8 multi-byte sequences: UTF-8 mislabelled.
            text = _strict(data, "utf-8")
            if text is not None:
                return text, True
            if _mostly_byte_runs(data):
                found = _east_asian(data)
                if found is not None:
                    return found[0], True
        text = _strict(data, codec)
        if text is not None:
            return text, False
        text = _lenient(data, codec)
        if text is not None:
            return text, False
    text, _ = _guess(data)
    return text, True
