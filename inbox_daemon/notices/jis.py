"""Japanese mail as Windows writes it: ISO-2022-JP and EUC-JP with Microsoft's extensions.

Outlook and other Windows clients label mail ISO-2022-JP but encode with code page 50220/50221:
JIS X 0208 plus NEC row 13 (circled numbers ①②, ㈱, roman numerals Ⅰ) and the NEC-selected
IBM extensions (rows 89-92), and half-width katakana after ESC ( I. Python's iso2022_jp codecs
refuse all of these, so one such character in a seller's note lost the whole part
(tests/data/notices/charsets_alternatives_rejections/jp_outlook_fwd_iso2022jp_circled_numbers.eml). The WHATWG decoders
read them, and so do these: a JIS X 0208 pair is read by Python's euc_jp, and a pair it does not
know is moved to its Shift_JIS position and read by cp932, which holds the same extensions at
the same rows (JIS row r, cell c -> Shift_JIS by RFC 1468's arithmetic). Bytes that no table
holds become U+FFFD, one each: nothing else of the part is lost.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final

__all__ = ["decode_euc_jp_ms", "decode_iso2022_jp_ms"]

_ERRORS: Final = "inbox-daemon-jis-via-cp932"


@lru_cache(maxsize=2048)
def _pair_via_cp932(c1: int, c2: int) -> str:
    """The character at JIS X 0208 row ``c1 - 0x20``, cell ``c2 - 0x20``, as Windows reads it."""
    s1 = (c1 + 1) // 2 + (0x70 if c1 <= 0x5E else 0xB0)
    if c1 % 2:
        s2 = c2 + (0x1F if c2 <= 0x5F else 0x20)
    else:
        s2 = c2 + 0x7E
    try:
        return bytes((s1, s2)).decode("cp932")
    except UnicodeDecodeError:  # a cell no table holds (row 15, say): one character lost
        return "\ufffd"


def _read_extension(exc: UnicodeError) -> tuple[str, int]:
    """Error handler for euc_jp: an EUC pair it does not map is read through cp932."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    data, at = exc.object, exc.start
    if at + 1 < len(data) and 0xA1 <= data[at] <= 0xFE and 0xA1 <= data[at + 1] <= 0xFE:
        return _pair_via_cp932(data[at] & 0x7F, data[at + 1] & 0x7F), at + 2
    return "\ufffd", at + 1


codecs.register_error(_ERRORS, _read_extension)


def decode_euc_jp_ms(data: bytes) -> str:
    """EUC-JP with NEC and IBM extensions (cp51932, eucJP-ms), never raising."""
    return data.decode("euc_jp", errors=_ERRORS)


# 7-bit bytes of a double-byte set moved to 8 bits (their EUC form); others (CR, LF) stay.
_HIGH: Final = bytes(b | 0x80 if 0x21 <= b <= 0x7E else b for b in range(256))
# JIS X 0201 Roman: ASCII but for the yen sign and the overline (WHATWG ISO-2022-JP decoder).
_ROMAN: Final = {0x5C: "\u00a5", 0x7E: "\u203e"}
_PAIR: Final = re.compile(rb"[\xa1-\xfe]{2}")


def _ascii(segment: bytes) -> str:
    # 8-bit bytes have no place in ISO-2022-JP; Windows clients leave half-width kana or a
    # Shift_JIS run there, which cp932 reads (and is ASCII for the 7-bit bytes).
    return segment.decode("cp932", errors="replace")


def _roman(segment: bytes) -> str:
    return _ascii(segment).translate(_ROMAN)


def _katakana(segment: bytes) -> str:
    # ESC ( I (CP50221) and SO (CP50222): 0x21-0x5F are half-width katakana, cp932's 0xA1-0xDF.
    return segment.translate(_HIGH).decode("cp932", errors="replace")


def _jis0208(segment: bytes) -> str:
    return decode_euc_jp_ms(segment.translate(_HIGH))


def _plane2(codec: str) -> Callable[[bytes], str]:
    def read(segment: bytes) -> str:  # a second 94x94 plane is its EUC form after SS3 (0x8F)
        high = _PAIR.sub(lambda m: b"\x8f" + m.group(0), segment.translate(_HIGH))
        return high.decode(codec, errors="replace")
    return read


def _euc(codec: str) -> Callable[[bytes], str]:
    def read(segment: bytes) -> str:
        return segment.translate(_HIGH).decode(codec, errors="replace")
    return read


# RFC 1468 (ISO-2022-JP), RFC 1554 (-2: JIS X 0212, GB 2312, KS C 5601), JIS X 0213 (-2004),
# and CP50221's ESC ( I. SO/SI switch to and from katakana (CP50222).
_SETS: dict[bytes, Callable[[bytes], str]] = {
    b"\x1b(B": _ascii, b"\x1b(J": _roman, b"\x1b(H": _roman, b"\x1b(I": _katakana,
    b"\x1b$@": _jis0208, b"\x1b$B": _jis0208, b"\x1b$(B": _jis0208,
    b"\x1b$(D": _plane2("euc_jp"), b"\x1b$A": _euc("gb18030"), b"\x1b$(C": _euc("cp949"),
    b"\x1b$(O": _euc("euc_jis_2004"), b"\x1b$(Q": _euc("euc_jis_2004"),
    b"\x1b$(P": _plane2("euc_jis_2004"), b"\x0e": _katakana,
}
_SWITCH: Final = re.compile(b"(" + b"|".join(re.escape(k) for k in sorted(_SETS, key=len, reverse=True))
                     + rb"|\x0f)")


def decode_iso2022_jp_ms(data: bytes) -> str:
    """ISO-2022-JP as CP50220/CP50221 write it (and -1, -2, -2004), never raising."""
    parts = _SWITCH.split(data)
    out = [_ascii(parts[0])]
    shifted_from: Callable[[bytes], str] = _ascii
    read: Callable[[bytes], str] = _ascii
    for n in range(1, len(parts), 2):
        switch, segment = parts[n], parts[n + 1]
        if switch == b"\x0f":  # SI: back to the set before SO
            read = shifted_from
        elif switch == b"\x0e":
            shifted_from, read = read, _katakana
        else:
            read = _SETS[switch]
        if segment:
            out.append(read(segment))
    return "".join(out)
