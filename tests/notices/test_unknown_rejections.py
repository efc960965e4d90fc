"""Amazon's rejection subject over a cause no table holds: a rejection, never an opt-out, and
malformed only when the text is damaged or reads like an opt-out the tables miss."""

from __future__ import annotations

import pytest

from inbox_daemon.notices import Kind, parse_notice
from inbox_daemon.notices.languages import LANGUAGES


def _notice(sentence: str, charset: str = "utf-8") -> bytes:
    head = (
        "From: Amazon.com <auto-communication@amazon.com>\r\nTo: shop@seller.example\r\n"
        "Subject: Your message to a buyer could not be delivered\r\n"
        "Date: Mon, 06 May 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + f"Dear Seller,\r\n\r\n{sentence}\r\n\r\nAmazon Seller Support\r\n".encode("utf-8")


@pytest.mark.parametrize("sentence", [
    "We could not deliver your message to 7zq1kx0wm3vd8pn@marketplace.amazon.com because the messaging"
    " service is unavailable for buyers in this region.",
    "Your message was not delivered as you have sent too many messages to this buyer today.",
])
def test_unknown_cause_is_a_rejection_that_quotes_its_sentence(sentence: str) -> None:
    result = parse_notice(_notice(sentence))
    assert result.kind is Kind.NOT_OPT_OUT and result.buyers == ()
    assert (result.reason or "").startswith("rejection for a reason not recognised: ")
    assert "messag" in (result.reason or "")
    assert "@" not in (result.reason or "")  # the buyer's address is not repeated in the reason


# A daily message limit, a cause no table holds, in each language the parser reads (the samples in
# charsets_alternatives_rejections hold en, de, fr, es and ja as Amazon sends them).
DAILY_LIMIT = {
    "en": "We could not deliver your message about order 403-1234567-1234567 because you reached today's limit.",
    "fr": "Nous n'avons pas pu remettre votre message concernant la commande 403-1234567-1234567 car la limite"
          " quotidienne de messages est atteinte.",
    "de": "Ihre Nachricht zur Bestellung 403-1234567-1234567 wurde nicht zugestellt, weil das Tageslimit für"
          " Nachrichten erreicht ist.",
    "it": "Non è stato possibile recapitare il tuo messaggio relativo all'ordine 403-1234567-1234567 perché hai"
          " raggiunto il limite giornaliero di messaggi.",
    "es": "No hemos podido entregar tu mensaje sobre el pedido 403-1234567-1234567 porque has alcanzado el límite"
          " diario de mensajes.",
    "ja": "本日のメッセージ送信数の上限に達したため、注文 403-1234567-1234567 に関するメッセージを送信できませんでした。",
    "pt": "Não foi possível entregar sua mensagem sobre o pedido 403-1234567-1234567 porque o limite diário de"
          " mensagens foi atingido.",
    "nl": "We konden je bericht over bestelling 403-1234567-1234567 niet bezorgen omdat je de dagelijkse"
          " berichtenlimiet hebt bereikt.",
    "sv": "Vi kunde inte leverera ditt meddelande om beställning 403-1234567-1234567 eftersom den dagliga"
          " meddelandegränsen har nåtts.",
    "pl": "Nie mogliśmy dostarczyć Twojej wiadomości dotyczącej zamówienia 403-1234567-1234567, ponieważ"
          " osiągnięto dzienny limit wiadomości.",
    "tr": "403-1234567-1234567 numaralı siparişle ilgili mesajınız teslim edilemedi çünkü günlük mesaj sınırına"
          " ulaşıldı.",
    "ar": "لم نتمكن من تسليم رسالتك بخصوص الطلب 403-1234567-1234567 لأن الحد اليومي للرسائل قد تم بلوغه.",
    "zh": "由于您今天发送的消息已达到每日上限，我们无法递送您就订单 403-1234567-1234567 发送的消息。",
}


def test_every_language_has_an_unknown_cause_sentence() -> None:
    assert sorted(DAILY_LIMIT) == sorted(language.code for language in LANGUAGES)


@pytest.mark.parametrize("code", sorted(DAILY_LIMIT))
def test_an_unknown_cause_in_every_language_is_a_rejection_that_quotes_its_sentence(code: str) -> None:
    result = parse_notice(_notice(DAILY_LIMIT[code]))
    assert result.kind is Kind.NOT_OPT_OUT and result.buyers == (), (code, result.reason)
    reason = result.reason or ""
    assert reason.startswith("rejection for a reason not recognised: "), reason
    assert "1234567" not in reason  # the order id is elided from the quoted sentence
    assert " ".join(DAILY_LIMIT[code].split("403-1234567-1234567")[1].split()[:2]) in reason, reason  # the sentence


def test_opt_out_talk_in_unknown_words_or_damage_stays_for_review() -> None:
    known = parse_notice(_notice("We could not deliver your message because the daily limit was reached."))
    assert known.kind is Kind.NOT_OPT_OUT
    # names the buyer opting out, in words the tables do not read as a reason: kept for review
    talk = parse_notice(_notice("We could not deliver your message because the buyer declined."))
    assert talk.kind is Kind.MALFORMED
    # undecodable bytes in the sentence: damaged, not a reason
    damaged = _notice("We could not deliver your message because \ufffd\ufffd limit.")
    assert parse_notice(damaged).kind is Kind.MALFORMED
    # no sentence giving a cause at all
    assert parse_notice(_notice("Message status: 550.")).kind is Kind.MALFORMED
