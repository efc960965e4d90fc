"""HTML to text for notice bodies."""

from __future__ import annotations

from inbox_daemon.notices.htmltext import html_to_text


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
