"""Decoding with missing or wrong charset declarations."""

from __future__ import annotations

import pytest

from inbox_daemon.notices.charsets import decode_bytes, lookup

JA = "購入者が出品者からの未承諾広告メールを受信しないように設定しているため"
DE = "weil der Käufer den Erhalt unerwünschter Nachrichten deaktiviert hat – „so“"


@pytest.mark.parametrize("codec", ["cp932", "euc_jp", "iso2022_jp", "utf-8", "utf-16"])
def test_japanese_without_declaration(codec: str) -> None:
    text, guessed = decode_bytes(JA.encode(codec), None)
    assert text == JA and guessed


def test_declared_charset_is_used_when_it_fits() -> None:
    assert decode_bytes(JA.encode("cp932"), "Shift_JIS") == (JA, False)
    assert decode_bytes(DE.encode("cp1252"), "windows-1252") == (DE, False)


def test_latin1_label_reads_windows_1252_bytes() -> None:
    assert decode_bytes(DE.encode("cp1252"), "iso-8859-1")[0] == DE


def test_utf8_mislabelled_as_latin1_is_read_as_utf8() -> None:
    assert decode_bytes(DE.encode("utf-8"), "iso-8859-1") == (DE, True)


def test_unknown_charset_falls_back_to_sniffing() -> None:
    assert lookup("x-user-defined") is None
    assert decode_bytes("Dear Seller".encode("utf-16-le"), "x-user-defined")[0] == "Dear Seller"


def test_undeclared_western_bytes_are_not_taken_for_japanese() -> None:
    text, _ = decode_bytes(DE.encode("cp1252"), None)
    assert text == DE


def test_never_raises_on_garbage() -> None:
    for data in (b"\xff\xfe\x00", b"\x1b$B\xff", bytes(range(256)), b"\x00" * 9):
        assert isinstance(decode_bytes(data, "utf-8")[0], str)
