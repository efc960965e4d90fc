"""HTML to text for notice bodies."""

from __future__ import annotations

import pytest

from inbox_daemon.notices.htmltext import html_to_text, read_html


def test_blocks_become_lines_and_entities_are_unescaped() -> None:
    text = html_to_text("<p>Dear&nbsp;Seller,</p><div>l&#8217;acheteur &amp; co</div><br>end")
    lines = [line for line in text.split("\n") if line]
    assert lines == ["Dear Seller,", "l\u2019acheteur & co", "end"]


def test_mailto_address_is_kept_when_the_link_text_hides_it() -> None:
    text = html_to_text('sent to <a href="mailto:ABC@x.example?subject=1">the buyer</a> for')
    assert text == "sent to the buyer <ABC@x.example> for"


def test_mailto_is_not_repeated_when_shown() -> None:
    assert html_to_text('<a href="mailto:a@b.example">A@B.example</a>') == "A@B.example"


def test_style_script_and_comments_are_dropped() -> None:
    text = html_to_text("<style>p{x:y}</style><!-- From: x@y --><script>1</script><p>kept</p>")
    assert text.strip() == "kept"


# Each of these made CPython 3.11's html.parser rescan the rest of the document once per
# character (512 KB of "<!--" took 82 s); closed first, each is read in one pass. The timeout
# is a hang guard, not a measurement.
@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "markup",
    ["<!--" * 200_000, "</" * 400_000, "<?" * 400_000, "<![CDATA[" * 100_000, "<!" * 400_000,
     "<p>kept</p>" + "<a" * 400_000, "<script>" + "</" * 400_000, "<![x" + "]]" * 400_000],
    ids=["comments", "end-tags", "processing", "cdata", "declarations", "start-tags", "script", "brackets"],
)
def test_unclosed_constructs_are_read_in_one_pass(markup: str) -> None:
    assert isinstance(html_to_text(markup), str)


def test_an_unclosed_comment_runs_to_the_end() -> None:
    assert html_to_text("<p>kept</p><!-- never closed <p>hidden").strip() == "kept"


def test_a_lone_angle_after_the_last_tag_is_text() -> None:
    assert html_to_text("<b>x</b> a < b").strip() == "x a < b"


def test_amazon_link_targets_are_kept_and_others_are_not() -> None:
    page = read_html(
        '<a href="https://sellercentral.amazon.de/orders-v3/order/302-1234567-7654321">Bestellung</a>'
        '<a href="https://evil.example/amazon.de/order/302-0000000-0000000">x</a>'
        '<a href="https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fsellercentral.amazon.co.uk'
        '%2Forders-v3%2Forder%2F202-7654321-1234567&amp;data=1">View</a>'
    )
    assert page.links == (
        "https://sellercentral.amazon.de/orders-v3/order/302-1234567-7654321",
        "https://sellercentral.amazon.co.uk/orders-v3/order/202-7654321-1234567",
    )
    assert page.text == "BestellungxView"  # inline elements join, as a browser shows them
