"""The language tables: one module per language, one reason scan for all of them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.notices import languages
from inbox_daemon.notices.languages import matcher
from inbox_daemon.notices.languages import (
    LANGUAGES,
    OPT_OUT,
    LookAlike,
    first_reason,
    is_notice_subject,
    normalise,
)
from inbox_daemon.notices.languages.literals import required_literal

from .expectations import OWN_SAMPLES

OPT_OUT_SENTENCES = {
    "en": "because the buyer has chosen to opt out of receiving unsolicited messages from sellers",
    "fr": "car l’acheteur a choisi de ne pas recevoir de messages non sollicités",
    "de": "weil der Käufer den Erhalt unerwünschter Nachrichten von Verkäufern deaktiviert hat",
    "it": "perché l'acquirente ha scelto di non ricevere messaggi non richiesti dai venditori",
    "es": "porque el comprador ha elegido no recibir mensajes no solicitados",
    "ja": "購入者が出品者からの未承諾広告メールを受信\nしないように設定しているため",
    "pt": "porque o comprador optou por não receber mensagens não solicitadas",
    "nl": "omdat de koper ervoor heeft gekozen",  # not the table's wording: must not match
}


def test_every_language_module_has_an_opt_out_sentence() -> None:
    assert {lang.code for lang in LANGUAGES} >= {"en", "fr", "de", "it", "es", "ja"}
    assert all(lang.opt_out and lang.labels for lang in LANGUAGES)


@pytest.mark.parametrize("code", [c for c in OPT_OUT_SENTENCES if c != "nl"])
def test_opt_out_sentence_is_recognised(code: str) -> None:
    found = first_reason(normalise(OPT_OUT_SENTENCES[code]))
    assert found is not None and found[0] == OPT_OUT


def test_unknown_wording_is_not_an_opt_out() -> None:
    assert first_reason(normalise(OPT_OUT_SENTENCES["nl"])) is None
    assert first_reason(normalise("Every week more buyers opt out of receiving unsolicited messages")) is None


def test_the_earliest_reason_decides() -> None:
    text = ("We could not deliver it because it did not meet the communication guidelines. "
            "Note: the buyer has chosen to opt out of receiving unsolicited messages.")
    assert first_reason(normalise(text)) == (LookAlike.CONTENT_POLICY, 0)  # where its sentence starts


def test_notice_subjects_in_several_languages() -> None:
    assert is_notice_subject("Fwd: Your message to a buyer could not be delivered")
    assert is_notice_subject("購入者へのメッセージを送信できませんでした")
    assert not is_notice_subject("Sold, ship now")


# Text built to make a per-sentence or per-match step costly: every shape is read in one pass
# (about half a second for 256 KB on a busy machine). The timeout is a hang guard.
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text",
    ["購、" * 128_000, "the buyer opted out " * 13_000, "buyer. " * 36_000, "not to receive " * 17_000,
     "if the buyer opted out of unsolicited messages. " * 5_000,
     "if the buyer has chosen to opt out of receiving unsolicited " * 4_000,
     '"the buyer opted out of unsolicited messages." ' * 5_000, "購入者が未承諾メールを受信しない場合、" * 10_000],
    ids=["cjk-runs", "no-sentence-end", "many-sentences", "multiword", "hedged-sentences", "hedged-phrases",
         "quotes", "cjk-conditions"],
)
def test_hostile_text_is_read_in_one_pass(text: str) -> None:
    assert first_reason(normalise(text)) is None


@pytest.mark.parametrize(
    "sentence",
    [
        "The buyer has not opted out of receiving unsolicited messages from sellers.",
        "A buyer may opt out of receiving unsolicited messages from sellers.",
        "Der Käufer hat den Erhalt unerwünschter Nachrichten nicht deaktiviert.",
        "購入者が未承諾広告メールを受信しない設定にしている場合は、メッセージは届きません。",
        "Si el comprador ha elegido no recibir mensajes no solicitados, no se entregan.",
        # Turkish closes the clause with the verb: the choice denied or made possible at the end.
        "Alıcı, satıcılardan gelen istenmeyen mesajları almamayı seçmedi.",
        "Alıcı, satıcılardan gelen istenmeyen mesajları almamayı seçebilir.",
        "Alıcı istenmeyen mesajları almamayı hiçbir zaman tercih etmedi.",
        "Müşteri istenmeyen e posta mesajlarını almamayı tercih edebilir.",
    ],
)
def test_negations_possibilities_and_conditions_state_no_opt_out(sentence: str) -> None:
    assert first_reason(normalise(sentence)) is None


@pytest.mark.parametrize(
    "sentence",
    [
        "Alıcı, satıcılardan gelen istenmeyen mesajları almamayı seçti.",
        "Alıcı istenmeyen mesajları almamayı tercih etti.",
        "Müşteri, istenmeyen mesajları almak istemediğini belirtti.",
    ],
)
def test_a_turkish_opt_out_stated_plainly_still_is_one(sentence: str) -> None:
    found = first_reason(normalise(sentence))
    assert found is not None and found[0] == OPT_OUT


def test_within_one_sentence_a_rejection_beats_an_opt_out() -> None:
    text = "The buyer opted out of unsolicited messages and your attachment exceeds the size limit."
    found = first_reason(normalise(text))
    assert found is not None and found[0] is LookAlike.ATTACHMENT_SIZE


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2000\u2028\u3000\u200bab.購")), max_size=12))
def test_one_space_is_the_whitespace_regex(text: str) -> None:
    """normalise's whitespace collapse (str.split) gives what re's \\s+ -> " " gives."""
    from inbox_daemon.notices.languages import _SPACE, _one_space

    assert _one_space(text) == _SPACE.sub(" ", text)


# Pieces that meet the tokenizer's edges: word characters, "_", stops, blanks of every kind, an
# apostrophe (elision), accents and CJK, a CJK stop or a dash (the regex path), digits, other punctuation.
_TOKEN_PIECES = ["a", "Zz", "7", "_", " ", "  ", ".", "!", "?", ";", "\n", "\t", "\r", "\x0b", "\x1c", ",", "-",
                 "...", ". ", ".\n", "'", "é", "。", "購", "\x00", "e.g.", "amazon.com", "—", "«", "\xa0", "①", "ß",
                 "\u3000", "l'", "''", "\x85"]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_TOKEN_PIECES), max_size=14).map("".join))
def test_split_words_and_positions_are_the_token_regex(text: str) -> None:
    """``split_words`` and ``Positions`` (str methods, for speed) against ``_TOKEN``'s matches:
    the same words, each starting and ending where its match does."""
    pattern = matcher._TOKEN if "'" in text else matcher._TOKEN_NO_ELISION
    matches = list(pattern.finditer(text))
    words = matcher.split_words(text)
    assert words == [m.group() for m in matches]
    positions = matcher.Positions(text, words)
    for index in reversed(range(len(words))):  # asked out of order too: the scan is cached
        assert (positions.start(index), positions.end(index)) == matches[index].span()


@pytest.mark.parametrize("text", ["Ends here.", "Ends here.\n", "Ends here.\n\n", "x.. y", "?! z", "U.S. ok", "a .\tb",
                                  "no stop", "a.b. c", ". lone", "end?\n"])
def test_split_words_at_the_edges_of_a_stop(text: str) -> None:
    assert matcher.split_words(text) == matcher._TOKEN_NO_ELISION.findall(text)


# One reply attribution per attribution pattern, as mail clients write them.
ATTRIBUTION_LINES = [
    "On Mon, May 6, 2024 at 10:00 AM Amazon.com <auto-communication@amazon.com> wrote:",
    "Le lun. 6 mai 2024 à 10:00, Amazon.fr <noreply@amazon.fr> a écrit :",
    "Am 06.05.2024 um 10:00 schrieb Amazon.de <noreply@amazon.de>:",
    "Il giorno lun 6 mag 2024 alle ore 10:00 Amazon.it <noreply@amazon.it> ha scritto:",
    "El lun, 6 may 2024 a las 10:00, Amazon.es (<noreply@amazon.es>) escribió:",
    "2024年5月6日(月) 10:00 Amazon.co.jp <noreply@amazon.co.jp>のメッセージ:",
    "Amazon.co.jp さんは書きました:",
    "Em seg., 6 de mai. de 2024 às 10:00, Amazon.com.br <noreply@amazon.com.br> escreveu:",
    "Op ma 6 mei 2024 om 10:00 schreef Amazon.nl <noreply@amazon.nl>:",
    "Den mån 6 maj 2024 kl 10:00 skrev Amazon.se <noreply@amazon.se>:",
    "W dniu pon., 6 maj 2024 o 10:00 Amazon.pl <noreply@amazon.pl> napisał(a):",
    "Amazon.com.tr <noreply@amazon.com.tr> şunu yazdı:",
    "في الاثنين، 6 مايو 2024، Amazon.ae <noreply@amazon.ae> كتب:",
    "Amazon.cn <noreply@amazon.cn> 写道：",
    "6 May 2024, 10:00 Amazon.com <auto-communication@amazon.com>:",
]


def _unfiltered_attribution(line: str) -> bool:
    line = line.strip()
    return len(line) <= languages.MAX_ATTRIBUTION and languages._ATTRIBUTION.search(line.lower()) is not None


def test_every_attribution_pattern_has_a_line_and_its_literal() -> None:
    """Each pattern matches a line of its own here, and the line holds the pattern's literal."""
    for pattern in languages._ATTRIBUTIONS:
        matching = [line for line in ATTRIBUTION_LINES if re.search(pattern, line.lower())]
        assert matching, pattern
        literal = required_literal(pattern)
        assert literal and all(literal in line.lower() for line in matching), (pattern, literal)
    assert all(languages.is_attribution(line) for line in ATTRIBUTION_LINES)


def test_attribution_filter_answers_as_the_search_alone() -> None:
    """Every line of every sample (and the crafted ones, cut and padded) gets the answer the
    search alone gives: the literal test only skips lines the search would not match."""
    lines = list(ATTRIBUTION_LINES)
    lines += [line[:n] for line in ATTRIBUTION_LINES for n in (10, 30, -1, -5)]
    lines += [line.replace("<", "") for line in ATTRIBUTION_LINES] + ["x" * 390 + " wrote:", "x" * 401 + " wrote:"]
    for path in sorted(OWN_SAMPLES.rglob("*.eml")):
        lines += path.read_bytes().decode("utf-8", "replace").splitlines()
    assert sum(map(_unfiltered_attribution, lines)) > len(ATTRIBUTION_LINES)  # the samples hold some too
    for line in lines:
        assert languages.is_attribution(line) == _unfiltered_attribution(line), line


def test_required_literal_reads_the_top_level_only() -> None:
    assert required_literal(r"\bwrote\s*:$") == "wrote"
    assert required_literal(r"ab(?:cd)?efg|x") == ""  # an alternation at the top: no literal for all
    assert required_literal(r"ab(?:cd)?efg") == "efg"
    assert required_literal(r"(?i)wrote:") == ""  # ignoring case, "WROTE:" matches without "wrote"
