"""The WHATWG Encoding Standard's label table (https://encoding.spec.whatwg.org/#names-and-labels),
as data: every label a mail client accepts for a charset, and the decoder it reads with.

Mail clients (Thunderbird, Apple Mail, webmail in browsers) resolve a declared charset through
this table, so "iso-8859-1" and "us-ascii" read as windows-1252, "gb2312" as GBK, "shift_jis"
as Windows-31J (cp932), "euc-kr" as cp949 and "iso-2022-jp" with Microsoft's extensions
(CP50220/CP50221). ``charsets`` reads every declared label through ``ENCODING_OF_LABEL`` and
``CODEC_OF_ENCODING``; a label outside the table falls back to Python's own codec names.
"""

from __future__ import annotations

__all__ = ["CODEC_OF_ENCODING", "ENCODING_OF_LABEL", "LABELS", "MAIL_LABELS", "REPLACEMENT_CODECS"]

# Encoding name -> its labels, in the standard's order (section 4.2, "Names and labels").
LABELS: dict[str, tuple[str, ...]] = {
    "UTF-8": ("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8",
              "x-unicode20utf8"),
    "IBM866": ("866", "cp866", "csibm866", "ibm866"),
    "ISO-8859-2": ("csisolatin2", "iso-8859-2", "iso-ir-101", "iso8859-2", "iso88592", "iso_8859-2",
                   "iso_8859-2:1987", "l2", "latin2"),
    "ISO-8859-3": ("csisolatin3", "iso-8859-3", "iso-ir-109", "iso8859-3", "iso88593", "iso_8859-3",
                   "iso_8859-3:1988", "l3", "latin3"),
    "ISO-8859-4": ("csisolatin4", "iso-8859-4", "iso-ir-110", "iso8859-4", "iso88594", "iso_8859-4",
                   "iso_8859-4:1988", "l4", "latin4"),
    "ISO-8859-5": ("csisolatincyrillic", "cyrillic", "iso-8859-5", "iso-ir-144", "iso8859-5", "iso88595",
                   "iso_8859-5", "iso_8859-5:1988"),
    "ISO-8859-6": ("arabic", "asmo-708", "csiso88596e", "csiso88596i", "csisolatinarabic", "ecma-114",
                   "iso-8859-6", "iso-8859-6-e", "iso-8859-6-i", "iso-ir-127", "iso8859-6", "iso88596",
                   "iso_8859-6", "iso_8859-6:1987"),
    "ISO-8859-7": ("csisolatingreek", "ecma-118", "elot_928", "greek", "greek8", "iso-8859-7",
                   "iso-ir-126", "iso8859-7", "iso88597", "iso_8859-7", "iso_8859-7:1987", "sun_eu_greek"),
    "ISO-8859-8": ("csiso88598e", "csisolatinhebrew", "hebrew", "iso-8859-8", "iso-8859-8-e",
                   "iso-ir-138", "iso8859-8", "iso88598", "iso_8859-8", "iso_8859-8:1988", "visual"),
    "ISO-8859-8-I": ("csiso88598i", "iso-8859-8-i", "logical"),
    "ISO-8859-10": ("csisolatin6", "iso-8859-10", "iso-ir-157", "iso8859-10", "iso885910", "l6",
                    "latin6"),
    "ISO-8859-13": ("iso-8859-13", "iso8859-13", "iso885913"),
    "ISO-8859-14": ("iso-8859-14", "iso8859-14", "iso885914"),
    "ISO-8859-15": ("csisolatin9", "iso-8859-15", "iso8859-15", "iso885915", "iso_8859-15", "l9"),
    "ISO-8859-16": ("iso-8859-16",),
    "KOI8-R": ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r"),
    "KOI8-U": ("koi8-ru", "koi8-u"),
    "macintosh": ("csmacintosh", "mac", "macintosh", "x-mac-roman"),
    "windows-874": ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874"),
    "windows-1250": ("cp1250", "windows-1250", "x-cp1250"),
    "windows-1251": ("cp1251", "windows-1251", "x-cp1251"),
    "windows-1252": ("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1",
                     "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1",
                     "latin1", "us-ascii", "windows-1252", "x-cp1252"),
    "windows-1253": ("cp1253", "windows-1253", "x-cp1253"),
    "windows-1254": ("cp1254", "csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9", "iso88599",
                     "iso_8859-9", "iso_8859-9:1989", "l5", "latin5", "windows-1254", "x-cp1254"),
    "windows-1255": ("cp1255", "windows-1255", "x-cp1255"),
    "windows-1256": ("cp1256", "windows-1256", "x-cp1256"),
    "windows-1257": ("cp1257", "windows-1257", "x-cp1257"),
    "windows-1258": ("cp1258", "windows-1258", "x-cp1258"),
    "x-mac-cyrillic": ("x-mac-cyrillic", "x-mac-ukrainian"),
    "GBK": ("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk",
            "iso-ir-58", "x-gbk"),
    "gb18030": ("gb18030",),
    "Big5": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "EUC-JP": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    "ISO-2022-JP": ("csiso2022jp", "iso-2022-jp"),
    "Shift_JIS": ("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j",
                  "x-sjis"),
    "EUC-KR": ("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987",
               "ks_c_5601-1989", "ksc5601", "ksc_5601", "windows-949"),
    "replacement": ("csiso2022kr", "hz-gb-2312", "iso-2022-cn", "iso-2022-cn-ext", "iso-2022-kr",
                    "replacement"),
    "UTF-16BE": ("unicodefffe", "utf-16be"),
    "UTF-16LE": ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"),
    "x-user-defined": ("x-user-defined",),
}

# Labels mail carries that the standard (written for the web) leaves out: Microsoft's own names
# for its ISO-2022-JP variants and code pages, as Outlook writes them in Content-Type.
MAIL_LABELS: dict[str, str] = {
    "cp50220": "ISO-2022-JP", "cp50221": "ISO-2022-JP", "cp50222": "ISO-2022-JP",
    "iso-2022-jp-ms": "ISO-2022-JP", "x-windows-iso2022jp": "ISO-2022-JP", "iso-2022-jp-1": "ISO-2022-JP",
    "cp932": "Shift_JIS", "windows-932": "Shift_JIS", "x-ms-cp932": "Shift_JIS",
    "cp936": "GBK", "windows-936": "GBK", "ms936": "GBK", "euc-cn": "GBK",
    "cp949": "EUC-KR", "x-windows-949": "EUC-KR", "cp950": "Big5", "windows-950": "Big5",
    "cp51932": "EUC-JP", "eucjp-ms": "EUC-JP", "eucjp-win": "EUC-JP",
}

# The Python codec each encoding decodes with. The standard's decoders are the Windows
# supersets (GBK is read by the gb18030 decoder, Big5 includes HKSCS, EUC-KR is cp949), which is
# what these codecs are ("gbk-ms" is gb18030 with GBK's euro sign at 0x80); "jis" names ``jis``'s decoder (JIS X 0208 with NEC row 13 and the IBM
# extensions, which Python's iso2022_jp and euc_jp refuse). "replacement" exists so browsers never
# run script through a stateful encoding; a parser reading text for a notice gains nothing by
# refusing it, so Python's codec reads it where there is one, and sniffing where there is not.
# x-user-defined maps bytes to private-use characters, which never hold a notice: sniff instead
# (corpus s27 declares it over UTF-16LE).
CODEC_OF_ENCODING: dict[str, str | None] = {
    "UTF-8": "utf-8", "IBM866": "cp866",
    "ISO-8859-2": "iso8859_2", "ISO-8859-3": "iso8859_3", "ISO-8859-4": "iso8859_4",
    "ISO-8859-5": "iso8859_5", "ISO-8859-6": "iso8859_6", "ISO-8859-7": "iso8859_7",
    "ISO-8859-8": "iso8859_8", "ISO-8859-8-I": "iso8859_8", "ISO-8859-10": "iso8859_10",
    "ISO-8859-13": "iso8859_13", "ISO-8859-14": "iso8859_14", "ISO-8859-15": "iso8859_15",
    "ISO-8859-16": "iso8859_16", "KOI8-R": "koi8_r", "KOI8-U": "koi8_u", "macintosh": "mac_roman",
    "windows-874": "cp874", "windows-1250": "cp1250", "windows-1251": "cp1251",
    "windows-1252": "cp1252", "windows-1253": "cp1253", "windows-1254": "cp1254",
    "windows-1255": "cp1255", "windows-1256": "cp1256", "windows-1257": "cp1257",
    "windows-1258": "cp1258", "x-mac-cyrillic": "mac_cyrillic",
    "GBK": "gbk-ms", "gb18030": "gbk-ms", "Big5": "big5hkscs",
    "EUC-JP": "euc-jp-ms", "ISO-2022-JP": "iso-2022-jp-ms", "Shift_JIS": "cp932", "EUC-KR": "cp949",
    "replacement": None, "UTF-16BE": "utf-16-be", "UTF-16LE": "utf-16-le", "x-user-defined": None,
}
# "replacement" labels Python can still read (by label: the encoding alone does not say which).
REPLACEMENT_CODECS: dict[str, str] = {"hz-gb-2312": "hz", "iso-2022-kr": "iso2022_kr", "csiso2022kr": "iso2022_kr"}


def _index() -> dict[str, str]:
    table = {label: name for name, labels in LABELS.items() for label in labels}
    for label, name in MAIL_LABELS.items():
        table.setdefault(label, name)
    return table


ENCODING_OF_LABEL: dict[str, str] = _index()
