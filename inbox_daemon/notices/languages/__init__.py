"""Per-language tables (key terms, phrases, subjects, forward labels), one module per language.

Adding a language means adding one module here that defines ``LANGUAGE`` and naming it in
``_MODULES``; nothing else changes (the flufl.bounce one-module-per-dialect shape, see
the house style). The reason of a notice is read from these tables by ``matcher``.
Patterns are regular expressions matched against *normalised* text:
lower-case, straight quotes, whitespace collapsed to one space, and no spaces between two CJK
characters (see ``normalise``).
"""

from __future__ import annotations

import enum
import importlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final

from .literals import required_literal

__all__ = [
    "LookAlike",
    "Language",
    "LANGUAGES",
    "OPT_OUT",
    "cause_sentence",
    "mentions_opt_out",
    "first_reason",
    "is_attribution",
    "is_notice_subject",
    "label_kind",
    "normalise",
]


class LookAlike(str, enum.Enum):
    """Amazon's other rejections and notifications; the value is the result's reason."""

    CONTENT_POLICY = "content-policy rejection, not an opt-out"
    UNSUBSCRIBE_LINK = "content-policy rejection (unsubscribe or opt-out link), not an opt-out"
    ATTACHMENT = "attachment rejected, not an opt-out"
    RESTRICTED_ACCOUNT = "seller account restricted from sending messages, not an opt-out"
    UNAUTHORISED_SENDER = "sent from an unauthorised sender address, not an opt-out"
    FRAUD_FILTER = "stopped by Amazon's fraud filtering, not an opt-out"
    CLOSED_ADDRESS = "bounce for a closed or inactive address, not an opt-out"
    ORDER_NOTIFICATION = "order notification, not an opt-out"
    SENT_COPY = "Amazon's copy of a message the seller sent, not an opt-out"
    CANCELLATION = "cancellation request, not an opt-out"
    CLAIM = "A-to-z Guarantee claim notification, not an opt-out"
    ATTACHMENT_SIZE = "attachment over the size limit, not an opt-out"
    MESSAGING_WINDOW = "the order's messaging window has closed, not an opt-out"


# Marker returned by first_reason() when the opt-out reason sentence matched.
OPT_OUT: Final = "opt_out"


@dataclass(frozen=True, slots=True)
class Language:
    """The phrases of one marketplace language. Every pattern is a regex on normalised text."""

    code: str
    opt_out: tuple[str, ...]  # the reason sentence of the opt-out notice
    look_alikes: dict[LookAlike, tuple[str, ...]] = field(default_factory=dict)
    subjects: tuple[str, ...] = ()  # notice subjects: a hint for "damaged notice", never a verdict
    # Labels of the header block a mail client writes above an inline forward, by field.
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # What, right before an opt-out sentence, makes it a general statement rather than the
    # reason for this message: "if the buyer has chosen to opt out …" in a help paragraph.
    # Each pattern is anchored at the end ("$") of the text just before the sentence.
    conditional: tuple[str, ...] = ()
    # The end of the line a mail client writes above a quoted reply ("On …, X wrote:"),
    # matched on the lower-cased line ("$" anchors it at the line's end).
    attribution: tuple[str, ...] = ()
    # Key terms by concept (see ``matcher``): every form written out, lower-case; a form of
    # several words matches those words in a row; Japanese and Chinese forms match inside a run.
    terms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Words that make the buyer's choice a condition ("if", "wenn"), a possibility ("may"),
    # or deny it ("not"); see ``matcher`` for where each must stand.
    hedges: tuple[str, ...] = ()
    modal: tuple[str, ...] = ()
    negation: tuple[str, ...] = ()
    # The verb closes the clause and carries the modal or the negation of the buyer's choice
    # (Turkish "almama... seçti", chose not to receive; "seçmedi", did not choose): such a word counts
    # anywhere after the buyer, not only before the opt-out term.
    verb_final: bool = False
    # Words that introduce the cause in a rejection's sentence ("because", "weil", "ため"): a
    # rejection whose reason no table holds is quoted from the first sentence holding one
    # (charsets_alternatives_rejections/en_rejection_daily_message_limit.eml).
    causes: tuple[str, ...] = ()


_MODULES: Final = ("en", "fr", "de", "it", "es", "ja", "pt", "nl", "sv", "pl", "tr", "ar", "zh")


def _load() -> tuple[Language, ...]:
    return tuple(
        importlib.import_module(f"{__name__}.{name}").LANGUAGE for name in _MODULES
    )


LANGUAGES: tuple[Language, ...] = _load()

_CJK: Final = "\u3000-\u30ff\u3400-\u9fff\uff00-\uffef"
# The space first: a literal lets the regex engine skip to candidates (a leading lookbehind
# was tried at every position).
_CJK_GAP: Final = re.compile(f" (?<=[{_CJK}] )(?=[{_CJK}])")
_SPACE: Final = re.compile(r"\s+")
# Typographic variants of the same words: curly quotes; hyphens NFKC leaves alone (U+2011
# NON-BREAKING HYPHEN becomes U+2010, not "-": replies_mime_oddities_bulk_mail/sg_html_nonbreaking_hyphen_soft_hyphen_zwsp.eml);
# and invisible characters that split a word (soft hyphen, zero-width space/joiners, BOM).
_TYPOGRAPHY: Final = {
    "\u2019": "'", "\u2018": "'", "\u00a0": " ", "\u201c": '"', "\u201d": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-",
    "\u201e": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"', "\u300c": '"', "\u300d": '"',
    "\u300e": '"', "\u300f": '"',
    "\u00ad": "", "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "",
}
# Any character of that table. str.translate looks every character of the text up in a table
# (18 us for a 400-character German notice with one pair of quotes); a regex finds in one C-level
# scan which ones the text holds, and each is replaced in a C-level pass of its own.
_TYPOGRAPHIC: Final = re.compile("[" + "".join(map(re.escape, sorted(_TYPOGRAPHY))) + "]")


def normalise(text: str) -> str:
    """Lower-case, NFKC, straight quotes and hyphens, no invisible characters, one space for any
    whitespace run, CJK joined."""
    if text.isascii():  # NFKC, the typography table and the CJK joins change nothing in ASCII
        return _one_space(text.lower())
    text = unicodedata.normalize("NFKC", text)
    for variant in set(_TYPOGRAPHIC.findall(text)):
        text = text.replace(variant, _TYPOGRAPHY[variant])
    text = _one_space(text.lower())
    return _CJK_GAP.sub("", text) if " " in text else text


def _one_space(text: str) -> str:
    """Each whitespace run as one space, as ``_SPACE.sub(" ", text)`` but in C-level passes
    (str.split and re's \\s agree on what is whitespace; the regex cost ~15 us a notice)."""
    words = text.split()
    if not words:
        return " " if text else ""
    joined = " ".join(words)
    if text[0].isspace():
        joined = " " + joined
    return joined + " " if text[-1].isspace() else joined


_SUBJECTS: Final = tuple(normalise(s) for lang in LANGUAGES for s in lang.subjects)


def is_notice_subject(subject: str) -> bool:
    """Whether a subject is one of the notice subjects Amazon uses (a hint only)."""
    norm = normalise(subject)
    return any(s in norm for s in _SUBJECTS)


def _label_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for lang in LANGUAGES:
        for kind, labels in lang.labels.items():
            for label in labels:
                table.setdefault(label, kind)
    return table


_LABELS: Final = _label_table()
_LABEL_RE: Final = re.compile(
    r"^[\s>*]*(" + "|".join(sorted(map(re.escape, _LABELS), key=len, reverse=True)) + r")"
    r"\s*\*?\s*[:：]\s*\*?[ \t]*(.*)$",
    re.IGNORECASE,
)


def label_kind(line: str) -> tuple[str, str] | None:
    """For a forward header line ("From: x", "Von: x", "差出人: x"): (field kind, value)."""
    found = _LABEL_RE.match(line)
    if found is None:
        return None
    kind = _LABELS.get(found.group(1).lower())
    return None if kind is None else (kind, found.group(2).strip())


# Any language: "<date> <name> <address>:" with nothing after the address, as Gmail writes it
# where its language has no verb there (Japanese: "2024年5月6日(月) 10:00 Amazon.co.jp <…>:").
_ADDRESS_ATTRIBUTION: Final = r"\d.*<[^<>\s]+@[^<>\s]+>\s*[:：]$"
_ATTRIBUTIONS: Final = [p for lang in LANGUAGES for p in lang.attribution] + [_ADDRESS_ATTRIBUTION]
_ATTRIBUTION: Final = re.compile("|".join(_ATTRIBUTIONS))
# What each attribution holds ("wrote", "schrieb", "<"): most lines ending in ":" hold none, and
# the search (".*" and ".{0,200}" before the ":") cost about 10 us a line.
_ATTRIBUTION_LITERALS: Final = tuple(sorted({required_literal(p) for p in _ATTRIBUTIONS}))
MAX_ATTRIBUTION: Final = 400  # characters: a date, a name and an address, with room to spare


def is_attribution(line: str) -> bool:
    """Whether a line is a reply attribution ("On Mon, 6 May 2024, X <x@y> wrote:")."""
    line = line.strip()
    if len(line) > MAX_ATTRIBUTION:
        return False
    low = line.lower()
    return any(literal in low for literal in _ATTRIBUTION_LITERALS) and _ATTRIBUTION.search(low) is not None


def _causes() -> re.Pattern[str]:
    words = [c for lang in LANGUAGES for c in lang.causes if c[0] < _CJK_START]
    cjk = [c for lang in LANGUAGES for c in lang.causes if c[0] >= _CJK_START]
    latin = r"(?<!\w)(?:" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + r")(?!\w)"
    return re.compile(latin + "|" + "|".join(map(re.escape, cjk)))


_CJK_START: Final = "\u2e80"
_CAUSES: Final = _causes()
# Sentence ends: Latin stops before blanks, CJK stops anywhere, and blank lines (a greeting).
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n[ \t]*\n")
MAX_CAUSE: Final = 300  # characters of the sentence kept in a reason


def cause_sentence(text: str) -> str | None:
    """The first sentence of ``text`` that gives a cause in any language ("… because …"),
    whitespace collapsed and cut to ``MAX_CAUSE``, or None. A sentence with undecodable bytes
    (U+FFFD) is not read: damaged text states nothing."""
    for sentence in _SENTENCE_END.split(text[:MAX_TEXT_FOR_CAUSE]):
        if _CAUSES.search(normalise(sentence)) is not None:
            if "\ufffd" in sentence:
                return None
            return _REDACT.sub("…", _SPACE.sub(" ", sentence)).strip()[:MAX_CAUSE]
    return None


# Addresses and long numbers (orders, phone numbers) in a quoted sentence: the reason is stored
# and shown to operators, and names no buyer.
_REDACT: Final = re.compile(r"[^\s<>()\[\]]+@[^\s<>()\[\]]+|\d[\d-]{5,}\d")


MAX_TEXT_FOR_CAUSE: Final = 8 * 1024  # Amazon states the cause up front


def first_reason(normalised: str) -> tuple[str | LookAlike, int] | None:
    """The reason the text states first: ``OPT_OUT`` or a ``LookAlike``, and where.

    The reason sentence decides, never the subject: Amazon states the cause in its first
    sentence, and later paragraphs may mention opting out in passing (corpus s04). See
    ``matcher`` for how a sentence is read.
    """
    return find_reason(normalised)


from .matcher import find_reason, mentions_opt_out  # noqa: E402  (reads LANGUAGES, defined above)
