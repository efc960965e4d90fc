"""Our own samples (tests/data/notices) with their expectation table, plus facts per sample."""

from __future__ import annotations

from typing import Any

import pytest

from inbox_daemon.notices import Kind, parse_notice

from .expectations import OWN_SAMPLES, check_case, load_cases

# Our sample tables, each folder with its expected.json: the first samples; wrappings,
# marketplaces, look-alikes and damage; replies, MIME oddities and Amazon's bulk mail; the
# structure of a message (replies, subjects, links, forwarding depth); mail that quotes or
# imitates a notice and must never block anybody; notices paraphrased in every language and
# rejections for other reasons; Windows charsets, one-line forward headers and rejections for
# reasons no table holds.
FOLDERS = ("", "wrappings_marketplaces_lookalikes", "replies_mime_oddities_bulk_mail", "structure",
           "false_opt_outs", "paraphrases_and_rejections", "charsets_alternatives_rejections")
TABLES = {name: OWN_SAMPLES / name for name in FOLDERS}
CASES = [(folder, case) for folder in TABLES.values() for case in load_cases(folder)]


@pytest.mark.parametrize("name", TABLES)
def test_each_table_lists_exactly_its_folder(name: str) -> None:
    folder = TABLES[name]
    cases = load_cases(folder)
    assert len(cases) >= 10
    assert sorted(c["file"] for c in cases) == sorted(p.name for p in folder.glob("*.eml"))


@pytest.mark.parametrize(("folder", "case"), CASES, ids=[f"{f.name}/{c['file']}" for f, c in CASES])
def test_own_sample(folder: Any, case: dict[str, Any]) -> None:
    result = check_case(folder, case)
    if "reason_has" in case:  # a look-alike must be rejected for its own reason, not by luck
        assert case["reason_has"] in (result.reason or ""), result.reason


def _parse(name: str) -> Any:
    return parse_notice((OWN_SAMPLES / name).read_bytes())


def test_digest_counts_every_notice_but_only_opt_outs_add_buyers() -> None:
    result = _parse("digest_three_one_policy_lookalike.eml")
    assert result.kind is Kind.OPT_OUT
    assert result.notices == 3
    assert len(result.buyers) == 2


def test_direct_notice_keeps_its_own_message_id_and_date() -> None:
    result = _parse("plus_tag_address_in.eml")
    assert result.message_id and result.message_id.endswith("@email.amazonses.com")
    assert not result.message_id.startswith("<")
    assert result.date == "Mon, 06 May 2024 10:00:00 +0000"
    assert result.forwarder is None and result.notices == 1


def test_inline_forward_takes_the_quoted_date_not_the_outer_one() -> None:
    result = _parse("fwd_gmail_4k.eml")
    assert result.date == "Mon, May 6, 2024 at 10:00 AM"
    assert result.message_id is None  # forward header blocks do not quote it
    assert result.forwarded_via == "inline"


def test_reasons_name_the_look_alike() -> None:
    assert "closed" in (_parse("closed_address_bounce.eml").reason or "")
    assert "forged" in (_parse("forged_buyer_domain.eml").reason or "")
    assert "relayed from a buyer" in (_parse("relayed_buyer_message_fwd.eml").reason or "")


def test_no_false_opt_out_sample_blocks_anybody() -> None:
    """Amazon's other mail, buyers' and sellers' messages, phishing and replies that quote or
    discuss a notice: at least 40, and not one of them an opt-out."""
    folder = TABLES["false_opt_outs"]
    cases = load_cases(folder)
    assert len(cases) >= 40
    results = [parse_notice((folder / case["file"]).read_bytes()) for case in cases]
    assert [r.kind for r in results if r.kind is Kind.OPT_OUT] == []
    assert all(r.buyers == () and r.reason for r in results)
