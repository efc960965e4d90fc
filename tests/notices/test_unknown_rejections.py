"""Amazon's rejection subject over a cause no table holds: a rejection, never an opt-out, and
malformed only when the text is damaged or reads like an opt-out the tables miss."""

from __future__ import annotations

import pytest

from inbox_daemon.notices import Kind, parse_notice


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
