"""The reason of a notice, read sentence by sentence from key terms, so that paraphrase holds.

Each language lists its key terms by concept (the buyer; opting out; unsolicited; messages;
attachment and size; messaging window and closed; account and restricted; policy and
violation), every inflected form written out, and a few hedge words (conditions, modals,
negations). A sentence states a reason when it holds every concept of a rule below, in any
order, register or inflection. The whole-sentence phrases of the tables
(``Language.opt_out``, ``Language.look_alikes``) still decide on their own.

Amazon states the cause in its first sentence, so the earliest sentence with a reason decides,
and within one sentence a rejection beats an opt-out: in doubt, never an opt-out. An opt-out
is not stated when the buyer's choice is a condition ("if the buyer has chosen …", a hedge
word up to four words before the buyer, anywhere in the sentence for Japanese and Chinese, whose
conditions follow the clause), a possibility ("a buyer may opt out"), negated ("has not opted
out") or quoted.

Cost: the text is split into words once (one C-level scan), each word looked up in one table
for all languages; the phrase scan then covers only the text up to that sentence.
"""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import compress, count
from typing import Final

from . import LANGUAGES, OPT_OUT, LookAlike
from .literals import required_literal

__all__ = ["OPT_OUT_RULE", "LOOK_ALIKE_RULES", "Positions", "find_reason", "mentions_opt_out", "split_words"]

OPT_OUT_RULE: Final = frozenset({"buyer", "out", "unsolicited", "messages"})
# Rejections understood from their terms in every language, checked before the opt-out rule.
LOOK_ALIKE_RULES: tuple[tuple[LookAlike, frozenset[str]], ...] = (
    (LookAlike.ATTACHMENT_SIZE, frozenset({"attachment", "size"})),
    (LookAlike.MESSAGING_WINDOW, frozenset({"window", "closed"})),
    (LookAlike.RESTRICTED_ACCOUNT, frozenset({"account", "restricted"})),
    (LookAlike.CONTENT_POLICY, frozenset({"policy", "violate"})),
)
_RULES: Final = (OPT_OUT_RULE, *(rule for _, rule in LOOK_ALIKE_RULES))
_IF, _MAY, _NOT = "_if", "_may", "_not"
# Sentence ends: an ASCII stop before a blank or at the end of the text, a CJK stop anywhere.
_ASCII_ENDS: Final = ".!?;"
_CJK_ENDS: Final = "。！？；"
_TOKEN: Final = re.compile(rf"\w+(?:'\w+)*|[{_ASCII_ENDS}](?= |$)|[{_CJK_ENDS}]")
# The same words in a text without an apostrophe: no group repeated after each word to try.
_TOKEN_NO_ELISION: Final = re.compile(rf"\w+|[{_ASCII_ENDS}](?= |$)|[{_CJK_ENDS}]")
_ENDS: Final = frozenset(_ASCII_ENDS + _CJK_ENDS)
_CJK_START: Final = "\u2e80"
_IF_REACH: Final = 4  # words before the buyer where a condition opens
_MAY_REACH: Final = 3  # words after the buyer where a modal stands

Label = tuple[str, str]  # (language code, concept)


def _tables() -> tuple[dict[str, set[Label]], dict[str, list[tuple[tuple[str, ...], set[Label]]]],
                       dict[str, set[Label]], frozenset[str]]:
    """Word -> labels; last word -> (the words before it, labels); CJK substrings; CJK languages.
    A form of several words is found at its last word, so the text is read in one pass."""
    single: dict[str, set[Label]] = defaultdict(set)
    multi: dict[str, dict[tuple[str, ...], set[Label]]] = defaultdict(lambda: defaultdict(set))
    cjk: dict[str, set[Label]] = defaultdict(set)
    cjk_languages: set[str] = set()
    for lang in LANGUAGES:
        concepts = dict(lang.terms)
        concepts[_IF], concepts[_MAY], concepts[_NOT] = lang.hedges, lang.modal, lang.negation
        for concept, forms in concepts.items():
            for form in forms:
                words = form.lower().split()
                if words[0] >= _CJK_START:
                    cjk[form].add((lang.code, concept))
                    cjk_languages.add(lang.code)
                elif len(words) == 1:
                    single[words[0]].add((lang.code, concept))
                else:
                    multi[words[-1]][tuple(words[:-1])].add((lang.code, concept))
    flat = {last: list(before.items()) for last, before in multi.items()}
    return dict(single), flat, dict(cjk), frozenset(cjk_languages)


_SINGLE, _MULTI, _CJK_TERMS, _CJK_LANGUAGES = _tables()
# Words worth reading one by one: terms (or the last word of one) and sentence ends.
_SIFT: Final = frozenset(_SINGLE) | frozenset(_MULTI) | _ENDS
_VERB_FINAL: Final = frozenset(lang.code for lang in LANGUAGES if lang.verb_final)
# Japanese and Chinese terms are found inside a run of characters, longest first.
_CJK: Final = re.compile("|".join(sorted(map(re.escape, _CJK_TERMS), key=len, reverse=True)))


class _Quotes:
    """Whether a position lies inside quotation marks: cited, as a forum post, a newsletter or
    a seller's message quotes a notice (false_opt_outs/seller_email_quotes_notice_in_quotation_marks.eml).
    Curly, angle and corner quotes are straight '"' after ``normalise``. Positions are asked in
    (nearly) increasing order, so the text is counted about once."""

    __slots__ = ("text", "at", "odd")

    def __init__(self, text: str) -> None:
        self.text, self.at, self.odd = text, 0, False

    def inside(self, at: int) -> bool:
        if at < self.at:  # a little back, within the sentence being read
            return self.odd ^ (self.text.count('"', at, self.at) % 2 == 1)
        if at > self.at:
            self.odd ^= self.text.count('"', self.at, at) % 2 == 1
            self.at = at
        return self.odd


# ASCII characters that are not word characters (``\\w``: letters, digits, "_"); the tables turn
# them into blanks, the second all but the apostrophe, which joins the words of an elision
# ("l'allegato").
_NOT_WORD_ASCII_CHARS: Final = "".join(chr(c) for c in range(128) if not (chr(c).isalnum() or chr(c) == "_"))
_NOT_WORD_ASCII: Final = str.maketrans(dict.fromkeys(_NOT_WORD_ASCII_CHARS, " "))
_NOT_WORD_BUT_APOSTROPHE: Final = str.maketrans(dict.fromkeys(_NOT_WORD_ASCII_CHARS.replace("'", ""), " "))


def split_words(text: str) -> list[str]:
    """The text's words and sentence ends, exactly as ``_TOKEN`` finds them: by str methods
    (``_split_at_blanks``) in about a third of the regex's time, or by the regex where a
    character outside ASCII is neither a word character nor a blank (a CJK stop, a dash)."""
    words = _split_at_blanks(text)
    if words is None:
        return (_TOKEN if "'" in text else _TOKEN_NO_ELISION).findall(text)
    return words


def _split_at_blanks(text: str) -> list[str] | None:
    """``split_words`` by str methods, or None. A stop is a word only before a blank or at the
    end (``(?= |$)``), so only at the end of a piece between blanks; the rest of a piece are its
    runs of word characters, apostrophes between them joining them (``\\w+(?:'\\w+)*``)."""
    ascii_only, elision = text.isascii(), "'" in text
    table = _NOT_WORD_BUT_APOSTROPHE if elision else _NOT_WORD_ASCII
    words: list[str] = []
    pieces = text.split(" ")
    for piece in pieces:
        if not piece:
            continue
        if piece.isalnum():  # letters and digits only, in any script
            words.append(piece)
            continue
        core = piece.strip(_NOT_WORD_ASCII_CHARS)  # "seller.", "(order", "'quoted'"
        if core.isalnum():
            words.append(core)
        elif core:  # punctuation inside too ("amazon.com", "l'un", "a_b")
            for run in core.translate(table).split():
                if not (ascii_only or run.isascii() or run.replace("'", "").isalnum()):
                    return None  # a character outside ASCII that is not a word character
                if elision and "'" in run:
                    words.extend(_elided(run))
                else:
                    words.append(run)
        if piece[-1] in _ASCII_ENDS:  # before a blank, or at the end ("$")
            words.append(piece[-1])
    last = pieces[-1]
    if len(last) > 1 and last[-1] == "\n" and last[-2] in _ASCII_ENDS:  # "$" also stands before a final "\n"
        words.append(last[-2])
    return words


def _elided(run: str) -> list[str]:
    """The words of a run of word characters and apostrophes: words joined by one apostrophe
    each, as ``\\w+(?:'\\w+)*`` takes them."""
    words: list[str] = []
    joined: list[str] = []
    for part in run.split("'"):
        if part:
            joined.append(part)
        elif joined:
            words.append("'".join(joined))
            joined = []
    if joined:
        words.append("'".join(joined))
    return words


class Positions:
    """Where each of a text's words (``split_words``) stands, found when asked by a forward scan
    with ``str.find``: only the few words of the sentence that decides are asked. Exact, as a
    word found early would start a word of its own: between two words no word character
    stands, nor a stop before a blank."""

    __slots__ = ("text", "words", "starts")

    def __init__(self, text: str, words: list[str]) -> None:
        self.text, self.words = text, words
        self.starts: list[int] = []

    def start(self, index: int) -> int:
        starts, text, words = self.starts, self.text, self.words
        while len(starts) <= index:
            at = starts[-1] + len(words[len(starts) - 1]) if starts else 0
            word = words[len(starts)]
            if word in _ASCII_ENDS:  # a stop before a blank, else the one at the end
                found = text.find(word + " ", at)
                if found < 0:
                    found = len(text) - 1 if text.endswith(word) else len(text) - 2
            else:
                found = text.find(word, at)
            starts.append(found)
        return starts[index]

    def end(self, index: int) -> int:
        return self.start(index) + len(self.words[index])


Phrase = tuple[str, re.Pattern[str], "str | LookAlike"]  # (required literal, pattern, verdict)


def _phrases() -> tuple[Phrase, ...]:
    """The tables' whole-sentence phrases in verdict order (opt-out first, as in the tables), each
    with a literal it requires. Searched one by one after a substring test: one alternation of
    them all cost ~150 us per candidate (no literal prefix lets the regex engine skip ahead),
    the filtered search a few."""
    groups: dict[str | LookAlike, list[str]] = {OPT_OUT: []}
    for lang in LANGUAGES:
        groups[OPT_OUT].extend(lang.opt_out)
        for look_alike, patterns in lang.look_alikes.items():
            groups.setdefault(look_alike, []).extend(patterns)
    return tuple((required_literal(p), re.compile(p), verdict) for verdict, ps in groups.items() for p in ps)


_PHRASES: Final = _phrases()
_LITERALS: Final = tuple(literal for literal, _, _ in _PHRASES)
# A word with a blank or a stop on both sides inside a literal is one of the words (``_TOKEN``)
# of any text holding that literal.
_WHOLE_WORD: Final = re.compile(r"(?<![\w'])\w+(?![\w'])")


def _key_word(literal: str) -> str | None:
    """The longest whole word of ``literal`` (see ``_WHOLE_WORD``), or None."""
    inside = [m.group() for m in _WHOLE_WORD.finditer(literal) if 0 < m.start() and m.end() < len(literal)]
    return max(inside, key=len, default=None)


def _by_key_word() -> dict[str, tuple[int, ...]]:
    keyed: dict[str, list[int]] = defaultdict(list)
    for n, literal in enumerate(_LITERALS):
        key = _key_word(literal)
        if key is not None:
            keyed[key].append(n)
    return {key: tuple(ns) for key, ns in keyed.items()}


# Phrases by a word their literal holds whole: a text's words rule most of them out at once
# (a set intersection), and only the rest are looked for as substrings.
_KEYED: Final = _by_key_word()
_KEYS: Final = frozenset(_KEYED)
_UNKEYED: Final = tuple((n, literal) for n, literal in enumerate(_LITERALS) if _key_word(literal) is None)
# ASCII text holds none of the phrases whose literal is not ASCII (accents, CJK, Arabic).
_UNKEYED_ASCII: Final = tuple((n, literal) for n, literal in _UNKEYED if literal.isascii())


def _guarded(literals: tuple[tuple[int, str], ...]) -> tuple[tuple[str, tuple[tuple[int, str], ...]], ...]:
    """The literals grouped under the shortest of them each one holds (" link", "link " and
    "external link" under "link"): a text without that one holds none of its group."""
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for n, literal in literals:
        guard = min((other for _, other in literals if other in literal), key=len)
        groups[guard].append((n, literal))
    return tuple((guard, tuple(members)) for guard, members in groups.items())


_GUARDED: Final = _guarded(_UNKEYED)
_GUARDED_ASCII: Final = _guarded(_UNKEYED_ASCII)
_CONDITIONAL: Final = re.compile("|".join(p for lang in LANGUAGES for p in lang.conditional))
_CONDITIONAL_REACH: Final = 24  # characters before a phrase where its condition opens


def find_reason(normalised: str) -> tuple[str | LookAlike, int] | None:
    """The reason of the earliest sentence that states one, and where that sentence starts."""
    words = split_words(normalised)
    by_terms = _by_terms(normalised, Positions(normalised, words), words)
    end = by_terms[1] if by_terms else len(normalised)
    by_phrase = _by_phrase(normalised, end, words)
    if by_phrase is None:
        return (by_terms[2], by_terms[0]) if by_terms else None
    if by_terms is None or by_phrase[1] < by_terms[0]:
        return by_phrase
    # Both in one sentence: a rejection beats an opt-out.
    if isinstance(by_terms[2], LookAlike) or not isinstance(by_phrase[0], LookAlike):
        return by_terms[2], by_terms[0]
    return by_phrase[0], by_terms[0]


def _by_phrase(text: str, end: int, words: list[str]) -> tuple[str | LookAlike, int] | None:
    """The earliest phrase match before ``end`` that states a reason (the first in table order
    where two start together); an opt-out phrase under a condition or in quotes does not.
    ``words``: the text's words (``_TOKEN``)."""
    found: list[tuple[int, int, str | LookAlike]] = []
    window = text[:end]  # a match before ``end`` holds its literal before ``end``
    present: list[int] = []
    for guard, members in _GUARDED_ASCII if window.isascii() else _GUARDED:
        if guard in window:
            present.extend(n for n, literal in members if literal in window)
    for key in _KEYS.intersection(words):
        present.extend(n for n in _KEYED[key] if _LITERALS[n] in window)
    for order in present:
        _, pattern, verdict = _PHRASES[order]
        if verdict != OPT_OUT:
            match = pattern.search(text, 0, end)
            if match is not None:
                found.append((match.start(), order, verdict))
            continue
        found.extend((match.start(), order, verdict) for match in pattern.finditer(text, 0, end))
    quotes = _Quotes(text)
    for start, _, verdict in sorted(found):
        if verdict != OPT_OUT:
            return verdict, start
        if _CONDITIONAL.search(text, max(0, start - _CONDITIONAL_REACH), start) is None and not quotes.inside(start):
            return OPT_OUT, start
    return None


def _by_terms(text: str, tokens: Positions, words: list[str]) -> tuple[int, int, str | LookAlike] | None:
    """(start, end, reason) of the first sentence whose terms state a reason; ``words``: the
    text's words (``split_words``), ``tokens`` where they stand. The words are split and sifted in
    C-level passes; only the few that are terms or sentence ends are read one by one."""
    quotes = _Quotes(text)
    seen: dict[Label, list[int]] = {}  # label -> indexes of its words in this sentence
    sentence = 0
    for i in _sifted(text, words):
        word = words[i]
        if word in _ENDS:
            # A rule holds two concepts at least: a sentence with fewer labels states nothing.
            reason = _verdict(seen, tokens, quotes) if len(seen) > 1 else None
            if reason is not None:
                return tokens.start(sentence), tokens.end(i), reason
            sentence, seen = i + 1, {}
            continue
        for label in _SINGLE.get(word, ()):
            seen.setdefault(label, []).append(i)
        if "'" in word:  # French and Italian elision: "l'allegato" is "allegato"
            for label in _SINGLE.get(word.rsplit("'", 1)[1], ()):
                seen.setdefault(label, []).append(i)
        for before, labels in _MULTI.get(word, ()):
            first = i - len(before)
            if first >= sentence and tuple(words[first:i]) == before:
                for label in labels:
                    seen.setdefault(label, []).append(first)
        if word[0] >= _CJK_START:
            for term in _CJK.findall(word):
                for label in _CJK_TERMS[term]:
                    seen.setdefault(label, []).append(i)
    reason = _verdict(seen, tokens, quotes) if len(seen) > 1 else None
    return (tokens.start(sentence), len(text), reason) if reason is not None else None


def _sifted(text: str, words: list[str]) -> list[int] | compress[int]:
    """Indexes of the words ``_by_terms`` reads: terms (or the last word of one), sentence
    ends, elisions and CJK runs. Without the last two (ASCII text, no apostrophe), membership
    alone decides, tested in C."""
    if text.isascii() and "'" not in text:
        return compress(count(), map(_SIFT.__contains__, words))
    return [n for n, word in enumerate(words) if word in _SIFT or "'" in word or word[0] >= _CJK_START]


def _verdict(seen: dict[Label, list[int]], tokens: Positions, quotes: _Quotes) -> str | LookAlike | None:
    """The reason one sentence's terms state, in any language, or None."""
    anywhere = {concept for _, concept in seen}  # a rule one language holds, all languages hold
    if not any(map(anywhere.issuperset, _RULES)):
        return None
    concepts: dict[str, set[str]] = defaultdict(set)
    for code, concept in seen:
        concepts[code].add(concept)
    for look_alike, rule in LOOK_ALIKE_RULES:
        if rule <= anywhere and any(map(rule.issubset, concepts.values())):
            return look_alike
    for code, held in concepts.items():
        if OPT_OUT_RULE <= held and not _hedged(code, seen, tokens, quotes):
            return OPT_OUT
    return None


def _hedged(code: str, seen: dict[Label, list[int]], tokens: Positions, quotes: _Quotes) -> bool:
    """Whether the buyer's opting out is a condition, a possibility, negated or quoted."""
    buyer, out = min(seen[(code, "buyer")]), min(seen[(code, "out")])
    if quotes.inside(tokens.start(buyer)):
        return True
    conditions = seen.get((code, _IF), [])
    if code in _CJK_LANGUAGES and conditions:
        return True
    if any(buyer - _IF_REACH <= n < buyer for n in conditions):
        return True
    modal, negation = seen.get((code, _MAY), []), seen.get((code, _NOT), [])
    if code in _VERB_FINAL:
        return any(n > buyer for n in (*modal, *negation))
    if any(buyer < n <= buyer + _MAY_REACH for n in modal):
        return True
    low, high = min(buyer, out), max(buyer, out)
    return any(low < n < high for n in negation)


def mentions_opt_out(normalised: str) -> bool:
    """Whether a text names the buyer and opting out in one language, hedged or not: a
    rejection whose reason is unknown but reads like an opt-out stays for review."""
    words = [found.group() for found in _TOKEN.finditer(normalised)]
    held: dict[str, set[str]] = defaultdict(set)
    for i, word in enumerate(words):
        labels = set(_SINGLE.get(word, ()))
        if "'" in word:
            labels |= _SINGLE.get(word.rsplit("'", 1)[1], set())
        for before, more in _MULTI.get(word, ()):
            if tuple(words[max(0, i - len(before)):i]) == before:
                labels |= more
        if word[0] >= _CJK_START:
            for term in _CJK.findall(word):
                labels |= _CJK_TERMS[term]
        for code, concept in labels:
            held[code].add(concept)
    return any({"buyer", "out"} <= concepts for concepts in held.values())
