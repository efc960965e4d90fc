"""Turning body and header bytes into text when charset declarations are missing or wrong.

Notices arrive in UTF-8, ISO-8859-1, windows-1252, ISO-2022-JP, Shift_JIS, EUC-JP and UTF-16,
often with missing or wrong charset declarations. Corpus s27 declares ``x-user-defined`` over
UTF-16LE; s28 carries raw Shift_JIS with no charset at all.
"""

from __future__ import annotations

import codecs

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


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, bool]:
    """Text from bytes, and whether the declared charset had to be overruled or guessed."""
    if not data:
        return "", False
    utf16 = _utf16_codec(data)
    if utf16 is not None:
        return data.decode(utf16, errors="replace"), True
    codec = lookup(declared)
    if codec is not None:
        if codec in _SINGLE_BYTE_WESTERN and not data.isascii():
            # Declared Latin but valid UTF-8 multi-byte sequences: UTF-8 mislabelled.
            text = _strict(data, "utf-8")
            if text is not None:
                return text, True
        text = _strict(data, codec)
        if text is not None:
            return text, False
    text, _ = _guess(data)
    return text, True
