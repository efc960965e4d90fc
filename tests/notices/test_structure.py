"""Whose message is it: notice senders, reply quoting, citations, order ids outside the text, and
forwarding depth (samples in tests/data/notices/structure and false_opt_outs)."""

from __future__ import annotations

from typing import Any

import pytest

from inbox_daemon.notices import Kind, parse_notice
from inbox_daemon.notices.mime import MAX_LEVELS
from inbox_daemon.notices.quoting import split_forwards
from inbox_daemon.notices.senders import NOTICE_SENDERS, is_notice_sender

from .expectations import OWN_SAMPLES
from .test_parser import ADDR, ORDER, SENTENCE, notice

STRUCTURE = OWN_SAMPLES / "structure"


def _parse(name: str) -> Any:
    return parse_notice((STRUCTURE / name).read_bytes())


def test_every_notice_sender_has_its_evidence() -> None:
    assert all(s.local_part and len(s.evidence) > 40 for s in NOTICE_SENDERS)
    assert is_notice_sender("auto-communication@amazon.co.jp")
    assert not is_notice_sender("auto-communication@amazon.co.jp.example")
    assert not is_notice_sender("news@amazon.de")
    assert not is_notice_sender(None)


@pytest.mark.parametrize("local", ["news", "seller-performance", "do-not-reply", "auto-communications"])
def test_the_exact_notice_from_another_amazon_address_names_nobody(local: str) -> None:
    result = parse_notice(notice(sender=f"{local}@amazon.com"))
    assert result.kind is Kind.NOT_OPT_OUT and result.buyers == ()
    assert f"{local}@amazon.com" in (result.reason or "")


def test_a_reply_is_unwrapped_and_said_to_be_one() -> None:
    result = _parse("gmail_reply_quotes_notice.eml")
    assert result.kind is Kind.OPT_OUT
    assert (result.forwarder, result.forwarded_via) == ("pat@seller.example", "reply")


def test_reply_split_keeps_the_bottom_post_out_of_the_quoted_notice() -> None:
    text = ("top note\n\nOn Mon, 6 May 2024 at 10:00, Amazon.com <auto-communication@amazon.com> wrote:\n"
            "> Dear Seller,\n>\n> the notice\n\nbottom note by the seller\n")
    head, blocks = split_forwards(text)
    assert [b.reply for b in blocks] == [True]
    assert "auto-communication@amazon.com" in blocks[0].fields["from"]
    assert blocks[0].text.split() == ["Dear", "Seller,", "the", "notice"]
    assert "bottom note" in head and "the notice" not in head


def test_quoted_lines_without_attribution_belong_to_nobody() -> None:
    head, blocks = split_forwards(f"You asked about this:\n\n> {SENTENCE}\n\nRegards")
    assert blocks == [] and "opt out" not in head


@pytest.mark.parametrize(
    "cited",
    [f'Our tip: "{SENTENCE}" means', f"Exemple : « {SENTENCE} »", f"例：「{SENTENCE}」"],
)
def test_a_sentence_in_quotation_marks_is_cited_not_stated(cited: str) -> None:
    result = parse_notice(notice(body=f"Dear Seller,\n\n{cited}\n"))
    assert result.kind is not Kind.OPT_OUT


def test_a_quoted_name_before_the_sentence_does_not_hide_it() -> None:
    body = SENTENCE.replace(ADDR, f'"Pat Q." <{ADDR}>')
    assert parse_notice(notice(body=body)).kind is Kind.OPT_OUT


def test_order_ids_in_several_subjects_are_not_guessed_between() -> None:
    body = "We were unable to deliver your message because the buyer has chosen to opt out of receiving unsolicited messages."
    raw = notice(body=body).replace(b"Subject: Your message", f"Subject: {ORDER} 113-0000000-0000002 Your message".encode())
    result = parse_notice(raw)
    assert result.kind is Kind.MALFORMED and result.buyers == ()


def _attached(levels: int, with_alternatives: bool = False) -> bytes:
    inner = notice().decode()
    for level in range(levels):
        note = "see attached"
        if with_alternatives:
            note = ("--alt\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--alt\r\nContent-Type: text/html\r\n\r\n"
                    "<p>see attached</p>\r\n--alt--")
            note = f"Content-Type: multipart/alternative; boundary=alt\r\n\r\n{note}"
        else:
            note = f"Content-Type: text/plain\r\n\r\n{note}"
        inner = (f"From: hop{level} <hop{level}@seller.example>\r\nSubject: Fwd\r\n"
                 f"Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n{note}\r\n"
                 f"--b{level}\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--b{level}--\r\n")
    return inner.encode()


@pytest.mark.parametrize("with_alternatives", [False, True])
def test_forwarding_levels_count_not_mime_containers(with_alternatives: bool) -> None:
    result = parse_notice(_attached(24, with_alternatives))
    assert result.kind is Kind.OPT_OUT and result.forwarder == "hop23@seller.example"


@pytest.mark.timeout(30)  # a hang guard, not a measurement
def test_past_the_level_bound_the_notice_is_unverified_not_absent() -> None:
    result = parse_notice(_attached(MAX_LEVELS + 8))
    assert result.kind is Kind.MALFORMED and "forwarding levels" in (result.reason or "")
