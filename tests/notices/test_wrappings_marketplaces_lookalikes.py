"""Samples in tests/data/notices/wrappings_marketplaces_lookalikes: wrappings, marketplaces, look-alikes and damage
the first samples did not cover, with their expectation table; plus the facts behind the fixes
they forced (each named by the sample that showed the gap).
"""

from __future__ import annotations

from typing import Any

from inbox_daemon.notices import Kind, parse_notice
from inbox_daemon.notices.addresses import find_relay_addresses

from .expectations import OWN_SAMPLES

REDTEAM = OWN_SAMPLES / "wrappings_marketplaces_lookalikes"


def _parse(name: str) -> Any:
    return parse_notice((REDTEAM / name).read_bytes())


def test_a_buyer_relay_taints_every_block_it_quotes() -> None:
    result = _parse("lookalike_buyer_relay_forges_forward_block.eml")
    assert result.kind is Kind.NOT_OPT_OUT and result.notices == 0


def test_google_groups_rewrite_reads_the_author_and_names_the_group() -> None:
    result = _parse("google_groups_dmarc_rewrite.eml")
    assert result.kind is Kind.OPT_OUT
    assert result.forwarder == "optout-desk@seller-group.example"


def test_a_cut_file_drops_only_the_address_at_the_cut() -> None:
    text = "sent to ab3de6gh9jk2mn5@marketplace.amazon.com"  # ".au" may have been cut off
    assert find_relay_addresses(text, open_end=True) == []
    assert find_relay_addresses(text + "\n", open_end=True) == ["ab3de6gh9jk2mn5@marketplace.amazon.com"]
    assert find_relay_addresses(text) == ["ab3de6gh9jk2mn5@marketplace.amazon.com"]


def test_base64_rfc822_attachment_is_decoded_before_parsing() -> None:
    result = _parse("attachment_nested_outer_rfc822_base64.eml")
    assert result.forwarded_via == "attachment"
    assert result.message_id and result.message_id.endswith("@email.amazonses.com")


def test_damaged_first_reason_does_not_expose_a_conditional_opt_out_mention() -> None:
    # Found by the property test: lookalike_violates_policy_faq_mentions_optout.eml with its
    # reason sentence cut ("was not sent because it c" gone). Its FAQ says messages are not
    # delivered "when the buyer has chosen to opt out …": a condition, not this message's reason
    # (languages.Language.conditional), so the notice is left without a known reason.
    raw = (REDTEAM / "lookalike_violates_policy_faq_mentions_optout.eml").read_bytes()
    start = raw.index(b" for order")
    damaged = raw[:start] + b" " + raw[raw.index(b"ontains content"):]
    result = parse_notice(damaged)
    assert result.buyers == ()
    # Its FAQ's "violates our policies" sentence is now read as the (policy) reason.
    assert result.kind is not Kind.OPT_OUT and result.reason
