"""Forward header blocks and reply attributions in body text, across clients and languages."""

from __future__ import annotations

import pytest

from inbox_daemon.notices.quoting import split_forwards


@pytest.mark.parametrize(
    "block",
    [
        "From: Amazon.com <a@amazon.com>\nDate: Mon\nSubject: s\nTo: <x@y>",  # Gmail
        "*From:* Amazon.com <a@amazon.com>\n*Sent:* Mon\n*To:* x\n*Subject:* s",  # Gmail bold
        "Subject: \ts\nDate: \tMon\nFrom: \tAmazon.it <a@amazon.it>\nTo: \tx",  # Thunderbird
        "Von: \"Amazon.de\" <a@amazon.de>\nBetreff: s\nDatum: 6. Mai\nAn: x",  # Apple Mail, German
        "De : Amazon.fr <a@amazon.fr>\nEnvoyé : lundi\nÀ : x\nObjet : s",  # Outlook, French
        "差出人: Amazon.co.jp <a@amazon.co.jp>\n件名: s\n日付: 2024",  # Japanese
        "> From: Amazon.com <a@amazon.com>\n> Date: Mon\n> Subject: s",  # quoted
    ],
)
def test_header_block_is_found(block: str) -> None:
    quote = "> " if block.startswith(">") else ""  # a quoted block quotes its body too
    head, blocks = split_forwards(f"note on top\n\n{block}\n{quote}\n{quote}Dear Seller,\n{quote}body")
    assert head.strip() == "note on top"
    assert len(blocks) == 1
    assert "@amazon." in blocks[0].fields["from"]
    assert "Dear Seller," in blocks[0].text


def test_amazon_message_details_are_not_a_forward_block() -> None:
    text = "Message details:\n  Order ID: 1\n  Recipient: a\n  Subject: s\n  Sent: today\n"
    assert split_forwards(text)[1] == []


def test_several_blocks_split_a_digest() -> None:
    one = "From: A <a@amazon.com>\nSubject: s\n\nfirst\n"
    head, blocks = split_forwards("top\n" + one + one.replace("first", "second"))
    assert [b.text.strip() for b in blocks] == ["first", "second"]
