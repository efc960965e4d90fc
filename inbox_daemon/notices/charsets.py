"""Turning body and header bytes into text when charset declarations are missing or wrong.

Notices arrive in UTF-8, ISO-8859-1, windows-1252, ISO-2022-JP, Shift_JIS, EUC-JP and UTF-16,
often with missing or wrong charset declarations. Corpus s27 declares ``x-user-defined`` over
UTF-16LE; s28 carries raw Shift_JIS with no charset at all.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

__all__ = ["decode_bytes", "lookup"]

# Declared names mapped to the codec that actually reads such mail: Japanese mailers write
# Microsoft's extensions (cp932) under "Shift_JIS", and Western mailers write windows-1252
# under "ISO-8859-1" (the WHATWG encoding standard maps them the same way).
_ALIASES = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "windows-31j": "cp932", "ms_kanji": "cp932", "csshiftjis": "cp932",
    "iso-2022-jp": "iso2022_jp_ext", "csiso2022jp": "iso2022_jp_ext",
    "euc-jp": "euc_jp", "x-euc-jp": "euc_jp",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "ascii",
    "ks_c_5601-1987": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
}
_SINGLE_BYTE_WESTERN = frozenset({"cp1252", "latin_1", "iso8859_15", "ascii"})


def lookup(declared: str | None) -> str | None:
    """The Python codec for a declared charset, or None when unknown (e.g. x-user-defined)."""
    if not declared:
        return None
    name = declared.strip().strip('"').lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
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



# ISO-2022-JP is 7-bit: its escape sequences (RFC 1468) identify it whatever the label says.
_ISO2022JP_ESCAPES = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(B")


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _guess(data: bytes) -> tuple[str, str]:
    """Decode bytes with no usable declaration: ISO-2022-JP, UTF-8, Japanese, then cp1252."""
    if b"\x1b$" in data or b"\x1b(" in data:
        text = _strict(data, "iso2022_jp_ext")
        if text is not None:
            return text, "iso2022_jp_ext"
    if data.isascii():
        return data.decode("ascii"), "ascii"
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    east_asian = _east_asian(data)
    if east_asian is not None:
        return east_asian
    best: tuple[float, str, str] | None = None
    for codec in ("cp932", "euc_jp"):
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
_EAST_ASIAN = frozenset({
    "gb18030", "gbk", "gb2312", "big5", "big5hkscs", "cp950", "euc_jp", "cp932", "shift_jis",
    "euc_jis_2004", "shift_jis_2004", "euc_kr", "cp949", "johab", "hz",
})
_SNIFF_BYTES = 64 * 1024  # charset-normalizer reads samples of the bytes; more adds nothing


_HIGH_RUN = re.compile(rb"[\x80-\xff]{2,}")
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


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
    text = _strict(data, best.encoding)
    return (text, best.encoding) if text is not None else None


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, bool]:
    """Text from bytes, and whether the declared charset had to be overruled or guessed."""
    if not data:
        return "", False
    utf16 = _utf16_codec(data)
    if utf16 is not None:
        return data.decode(utf16, errors="replace"), True
    if b"\x1b" in data and any(e in data for e in _ISO2022JP_ESCAPES):
        text = _strict(data, "iso2022_jp_ext")
        if text is not None:
            return text, lookup(declared) != "iso2022_jp_ext"
    codec = lookup(declared)
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
    text, _ = _guess(data)
    return text, True
