"""Encoders for the charsets Windows writes and Python cannot encode: test input only.

CP50221 is what Outlook sends labelled ISO-2022-JP; eucJP-ms (cp51932) what older Unix and Mac
clients send labelled EUC-JP; cp936 writes the euro sign as the single byte 0x80 under GBK.
"""

from __future__ import annotations


def _nec_selected() -> dict[str, bytes]:
    """Shift_JIS bytes of the NEC-selected IBM extensions (rows 89-92), by character: CP50220
    writes IBM's own rows (0xFA-0xFC) at these positions."""
    table: dict[str, bytes] = {}
    for s1 in (0xED, 0xEE):
        for s2 in range(0x40, 0xFD):
            try:
                table.setdefault(bytes((s1, s2)).decode("cp932"), bytes((s1, s2)))
            except UnicodeDecodeError:
                pass
    return table


_NEC_SELECTED = _nec_selected()


def _jis_pair(char: str) -> tuple[int, int]:
    """JIS X 0208 row and cell bytes (0x21-0x7E) of a double-byte cp932 character."""
    s1, s2 = _NEC_SELECTED.get(char) or char.encode("cp932")
    if s1 >= 0xE0:
        s1 -= 0x40
    if s2 < 0x9F:
        return (s1 - 0x81) * 2 + 0x21, s2 - 0x1F - (1 if s2 >= 0x80 else 0)
    return (s1 - 0x81) * 2 + 0x22, s2 - 0x7E


def encode_cp50221(text: str) -> bytes:
    """ISO-2022-JP as Outlook writes it: JIS X 0208 with NEC row 13 and IBM extensions, and
    half-width katakana after ESC ( I."""
    out, mode = bytearray(), "ascii"
    for char in text:
        raw = char.encode("cp932")
        if len(raw) == 1 and raw[0] < 0x80:
            switch, data = ("ascii", b"\x1b(B"), raw
        elif len(raw) == 1:
            switch, data = ("kana", b"\x1b(I"), bytes((raw[0] - 0x80,))
        else:
            switch, data = ("jis", b"\x1b$B"), bytes(_jis_pair(char))
        if mode != switch[0]:
            mode = switch[0]
            out += switch[1]
        out += data
    if mode != "ascii":
        out += b"\x1b(B"
    return bytes(out)


def encode_euc_jp_ms(text: str) -> bytes:
    """EUC-JP with the NEC and IBM extensions (cp51932)."""
    out = bytearray()
    for char in text:
        try:
            out += char.encode("euc_jp")
        except UnicodeEncodeError:
            c1, c2 = _jis_pair(char)
            out += bytes((c1 | 0x80, c2 | 0x80))
    return bytes(out)


def encode_cp936(text: str) -> bytes:
    """GBK as Windows writes it (cp936): the euro sign is the single byte 0x80."""
    return b"\x80".join(part.encode("gbk") for part in text.split("\u20ac"))
