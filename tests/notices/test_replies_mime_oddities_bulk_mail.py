"""Samples in tests/data/notices/replies_mime_oddities_bulk_mail: reply-style and mobile forwards, MIME
oddities, typographic variants, new marketplaces, Amazon's own bulk mail and work bounds; plus
the facts behind the fixes they forced (each named by the sample that showed the gap).
"""

from __future__ import annotations

from typing import Any

import pytest

from inbox_daemon.notices import Kind, parse_notice
from inbox_daemon.notices.addresses import find_order_ids
from inbox_daemon.notices.bulk import is_amazon_bulk_mail
from inbox_daemon.notices.htmltext import html_to_text
from inbox_daemon.notices.languages import OPT_OUT, first_reason, normalise
from inbox_daemon.notices.mime import Headers

from .expectations import OWN_SAMPLES

REDTEAM2 = OWN_SAMPLES / "replies_mime_oddities_bulk_mail"


def test_typographic_hyphens_and_invisible_characters_are_normalised() -> None:
    text = "the buyer has chosen to opt\u2011out of receiving un\u00adsolicited\u200b messages"
    found = first_reason(normalise(text))
    assert found is not None and found[0] == OPT_OUT


@pytest.mark.parametrize(
    "sentence",
    [
        "Good to know: if the buyer has chosen to opt out of receiving unsolicited messages",
        "Messages are not delivered when a buyer has chosen to opt out of receiving unsolicited messages",
        "wenn der Käufer den Erhalt unerwünschter Nachrichten von Verkäufern deaktiviert hat",
        "si l'acheteur a choisi de ne pas recevoir de messages non sollicités",
        "si el comprador ha elegido no recibir mensajes no solicitados",
        "se l'acquirente ha scelto di non ricevere messaggi non richiesti",
    ],
)
def test_a_conditional_opt_out_mention_is_not_a_reason(sentence: str) -> None:
    assert first_reason(normalise(sentence)) is None


def test_a_conditional_mention_before_the_real_reason_does_not_hide_it() -> None:
    text = "If the buyer has chosen to opt out of receiving unsolicited messages, read on. " \
           "We could not deliver it because the buyer has chosen to opt out of receiving unsolicited messages."
    found = first_reason(normalise(text))
    assert found is not None and found[0] == OPT_OUT and found[1] == text.index("We could")


def test_order_ids_are_folded_to_ascii() -> None:
    assert find_order_ids("注文番号：２４９－１２３４５６７－７６５４３２１") == ["249-1234567-7654321"]
    assert find_order_ids("order 113\u20134471920\u20136630158") == ["113-4471920-6630158"]
    assert find_order_ids("order ١١٣-٤٤٧١٩٢٠-٦٦٣٠١٥٨") == ["113-4471920-6630158"]


def test_mailto_with_percent_encoded_at_keeps_the_address() -> None:
    text = html_to_text('<a href="mailto:abc%40marketplace.amazon.co.uk?subject=x">the buyer</a>')
    assert "abc@marketplace.amazon.co.uk" in text


@pytest.mark.parametrize(
    ("name", "value", "amazon"),
    [
        ("List-Unsubscribe", "<https://sellercentral.amazon.com/forums/u>", True),
        ("List-Unsubscribe", "<mailto:unsubscribe-news@amazon.co.uk>", True),
        ("List-Id", "Digest <digest.sellerforums.amazon.de>", True),
        ("List-Id", "<optout-desk.seller-group.example>", False),
        ("List-Unsubscribe", "<https://groups.google.com/u/amazon.com>", False),
        ("List-Unsubscribe", "<https://amazon.com.evil.example/u>", False),
    ],
)
def test_amazon_bulk_mail_is_known_by_who_runs_the_list(name: str, value: str, amazon: bool) -> None:
    assert is_amazon_bulk_mail(Headers([(name.lower(), value)])) is amazon


def test_qp_trailing_blanks_after_a_soft_break_are_transport_padding() -> None:
    raw = (REDTEAM2 / "qp_softbreak_after_amazon_dot_trailing_blanks.eml").read_bytes()
    assert b"amazon.=  \n" in raw
    assert parse_notice(raw).buyers[0].marketplace == "marketplace.amazon.com"


def test_rfc2231_charset_on_an_8bit_body_does_not_crash_the_walk() -> None:
    result = parse_notice((REDTEAM2 / "pl_rfc2231_encoded_charset_param_latin2.eml").read_bytes())
    assert result.kind is Kind.OPT_OUT  # was "parser error: TypeError" from compat32's get_payload()


def test_mime_digest_parts_do_not_taint_their_siblings() -> None:
    result = parse_notice((REDTEAM2 / "mailman_mime_digest_relay_quote_then_real_notice.eml").read_bytes())
    assert result.kind is Kind.OPT_OUT and len(result.buyers) == 1
    assert result.forwarded_via == "attachment"
