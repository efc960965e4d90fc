"""parse_notice as a whole: verdict rules, buyer merging, forwarders, hostile inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.notices import Buyer, Kind, parse_notice
from inbox_daemon.notices.mime import MAX_BYTES, MAX_PARTS
from inbox_daemon.notices.parser import merge_buyers

ADDR = "q1w2e3r4t5y6u7i@marketplace.amazon.com"
ORDER = "113-1234567-7654321"
SENTENCE = (f"We were unable to deliver the message you sent to {ADDR} for order {ORDER} because the "
            "buyer has chosen to opt out of receiving unsolicited messages from sellers.")


def notice(extra_headers: str = "", sender: str = "auto-communication@amazon.com", body: str = SENTENCE) -> bytes:
    head = (f"{extra_headers}From: Amazon.com <{sender}>\r\nTo: shop@seller.example\r\n"
            "Subject: Your message to a buyer could not be delivered\r\nMessage-ID: <n1@email.amazonses.com>\r\n"
            "Date: Mon, 06 May 2024 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    return (head + body + "\r\n").encode()


def test_plain_notice() -> None:
    result = parse_notice(notice())
    assert result.kind is Kind.OPT_OUT
    assert result.buyers == (Buyer(ADDR, ORDER, "marketplace.amazon.com"),)
    assert (result.message_id, result.notices, result.reason) == ("n1@email.amazonses.com", 1, None)


def test_subject_alone_never_decides() -> None:
    result = parse_notice(notice(body=f"Order {ORDER} to {ADDR}: please see Seller Central."))
    assert result.kind is not Kind.OPT_OUT and result.reason


def test_non_amazon_sender_with_the_exact_wording_is_rejected() -> None:
    result = parse_notice(notice(sender="auto-communication@amazon.com.evil.example"))
    assert result.kind is Kind.NOT_OPT_OUT and result.buyers == ()
    assert "not an Amazon domain" in (result.reason or "")


@pytest.mark.parametrize(
    ("headers", "forwarder", "via"),
    [
        ("Resent-From: <Ops@Seller.example>\r\n", "ops@seller.example", "resent"),
        ("X-Forwarded-For: a@seller.example optout@desk.example\r\n", "a@seller.example", "x-forwarded-for"),
        ("X-Sieve-Redirected-From: b@seller.example\r\n", "b@seller.example", "sieve"),
        ("Delivered-To: optout@desk.example\r\nX-Original-To: c@seller.example\r\n", "c@seller.example", "x-original-to"),
        ("Delivered-To: optout@desk.example\r\n", "shop@seller.example", "redirect"),
        ("", None, None),
    ],
)
def test_forwarding_identity_of_redirects(headers: str, forwarder: str | None, via: str | None) -> None:
    result = parse_notice(notice(headers))
    assert (result.forwarder, result.forwarded_via) == (forwarder, via)


def test_merge_buyers_joins_address_and_order_mentions() -> None:
    merged = merge_buyers([
        Buyer(None, ORDER, None),
        Buyer(ADDR, ORDER, "marketplace.amazon.com"),
        Buyer(ADDR, None, "marketplace.amazon.com"),
        Buyer(None, "113-0000000-0000001", None),
    ])
    assert merged == (Buyer(ADDR, ORDER, "marketplace.amazon.com"), Buyer(None, "113-0000000-0000001", None))


def test_same_address_with_two_orders_stays_two_records() -> None:
    merged = merge_buyers([Buyer(ADDR, ORDER, "m"), Buyer(ADDR, "113-0000000-0000001", "m")])
    assert len(merged) == 2


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"From: x\r\n", b"\x00\xff" * 10, b"Content-Type: multipart/mixed\r\n\r\n--"])
def test_junk_is_malformed_or_not_opt_out_never_an_exception(raw: bytes) -> None:
    result = parse_notice(raw)
    assert result.kind in (Kind.MALFORMED, Kind.NOT_OPT_OUT) and result.reason and not result.buyers


@pytest.mark.slow
def test_ten_thousand_parts_are_bounded_and_an_early_notice_still_reads() -> None:
    part = "--b\r\nContent-Type: text/plain\r\n\r\nfiller\r\n"
    first = f"--b\r\nContent-Type: text/plain\r\n\r\n{SENTENCE}\r\n"
    body = first + part * 10_000 + "--b--\r\n"
    raw = notice(body=body).replace(b"text/plain; charset=utf-8", b'multipart/mixed; boundary="b"')
    result = parse_notice(raw)
    assert result.kind is Kind.OPT_OUT and len(result.buyers) == 1
    assert MAX_PARTS < 10_000


def test_two_hundred_levels_of_nesting() -> None:
    inner = notice().decode()
    for level in range(200):
        inner = (f"Content-Type: multipart/mixed; boundary=\"l{level}\"\r\n\r\n--l{level}\r\n"
                 f"{inner}\r\n--l{level}--\r\n")
    result = parse_notice(("From: x@seller.example\r\n" + inner).encode())
    assert result.kind in (Kind.MALFORMED, Kind.NOT_OPT_OUT, Kind.OPT_OUT)
    assert isinstance(result.notices, int)


def test_two_hundred_attached_messages_deep() -> None:
    inner = notice().decode()
    for level in range(200):
        inner = (f"From: f{level}@seller.example\r\nContent-Type: message/rfc822\r\n\r\n{inner}")
    result = parse_notice(inner.encode())
    assert result.kind in (Kind.MALFORMED, Kind.NOT_OPT_OUT)


def test_fifty_megabyte_body() -> None:
    raw = notice(body=SENTENCE + "\r\n" + ("x" * 998 + "\r\n") * (50 * 1024))
    assert len(raw) > 50_000_000
    result = parse_notice(raw)
    assert result.kind is Kind.OPT_OUT  # the notice sits before the bound


def test_a_single_fifty_megabyte_line() -> None:
    result = parse_notice(notice(body="A" * 50_000_000))
    assert result.kind is not Kind.OPT_OUT and result.reason


def _html(markup: bytes) -> bytes:
    return (b"From: Amazon.com <auto-communication@amazon.com>\r\nSubject: Your message to a buyer could "
            b"not be delivered\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + markup)


# Markup and headers that made a regular expression or the stdlib's RFC 2047 decoder
# quadratic (found by inserting repeated snippets into our samples): 19 s for the first, 29 s
# for encoded words, minutes for the unclosed ones, the long mailto and many ";"; and runs the
# line-by-line header reader and the Q decoder must take in one pass (a million folds, a million
# "=XX"). The timeout is a hang guard (each now takes well under a second here), not a measurement.
@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "raw",
    [
        _html(b"<" * 2_000_000),
        _html(b"<a href='mailto:x@y.example'>" * 100_000),
        _html(b"<!--" * 500_000),
        _html(b"<script>" * 250_000),
        b"Subject: " + b"=?utf-8?q?a?= " * 200_000 + b"\r\n\r\nx\r\n",
        _html(b"<a href='mailto:x" + b"ark" * 133_333 + b"@y.example'>x</b>"),
        _html(b"<td" + b"\n" * 200_000 + b"x"),
        b"Content-Type: multipart/mixed; boundary=x; " + b"d;" * 1_000_000 + b"\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\na" + b" " * 400_000 + b"b\r\n",
        b"X-Long: a\r\n" + b" b\r\n" * 1_000_000 + b"\r\nx\r\n",
        b"Subject: =?utf-8?q?" + b"=41" * 1_000_000 + b"?=\r\n\r\nx\r\n",
    ],
    ids=["lone-angles", "unclosed-anchors", "unclosed-comments", "unclosed-scripts", "encoded-words",
         "long-mailto", "blank-run-in-tag", "many-params", "qp-blank-run", "million-folds", "q-escape-run"],
)
@pytest.mark.slow
def test_hostile_markup_and_headers_stay_linear(raw: bytes) -> None:
    result = parse_notice(raw)
    assert result.kind is not Kind.OPT_OUT and result.buyers == () and result.reason


def test_a_notice_survives_comments_scripts_and_an_unclosed_comment_after_it() -> None:
    body = (f"<html><head><title>x</title><style>p {{}}</style></head><body><!-- {ADDR} -->"
            f"<script>var a = '<p>';</script><p>{SENTENCE}</p><!-- never closed <p>ignored").encode()
    result = parse_notice(_html(body))
    assert result.kind is Kind.OPT_OUT
    assert result.buyers == (Buyer(ADDR, ORDER, "marketplace.amazon.com"),)


def _merge_by_scanning(buyers: list[Buyer]) -> tuple[Buyer, ...]:
    """The reference meaning of merge_buyers, written the obvious (quadratic) way."""

    def same(a: Buyer, b: Buyer) -> bool:
        if a.email and b.email:
            return a.email == b.email and (not a.order_id or not b.order_id or a.order_id == b.order_id)
        return bool(a.order_id and a.order_id == b.order_id)

    merged: list[Buyer] = []
    for buyer in buyers:
        for n, known in enumerate(merged):
            if same(known, buyer):
                merged[n] = Buyer(known.email or buyer.email, known.order_id or buyer.order_id,
                                  known.marketplace or buyer.marketplace)
                break
        else:
            merged.append(buyer)
    return tuple(merged)


_SMALL_BUYERS = st.lists(
    st.builds(Buyer, st.sampled_from([None, "a@m.example", "b@m.example", "c@m.example"]),
              st.sampled_from([None, "111-1111111-1111111", "222-2222222-2222222", "333-3333333-3333333"]),
              st.sampled_from([None, "m.example"])).filter(lambda b: b.email or b.order_id),
    max_size=12,
)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(_SMALL_BUYERS)
def test_merge_buyers_means_what_the_scan_means(buyers: list[Buyer]) -> None:
    assert merge_buyers(buyers) == _merge_by_scanning(buyers)


def _orders(count: int, start: int = 0) -> list[str]:
    return [f"{113 + n % 800:03d}-{n:07d}-{(n * 7919) % 10_000_000:07d}" for n in range(start, start + count)]


# A hang guard, not a measurement: before the merge was linear, 13,000 orders took 6 s and a
# 7 MB message would have taken hours.
@pytest.mark.timeout(60)
def test_seven_megabytes_of_order_ids_in_one_notice_name_nobody() -> None:
    orders = _orders(400_000)
    raw = notice(body=SENTENCE + "\r\n" + "\r\n".join(" ".join(orders[n:n + 20]) for n in range(0, len(orders), 20)))
    assert len(raw) > 7_000_000
    result = parse_notice(raw)
    assert result.kind is Kind.NOT_OPT_OUT and result.buyers == ()
    assert "buyers or orders (more than 50)" in (result.reason or "")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_seven_megabytes_of_forwarded_notices_name_nobody() -> None:
    """19,800 inline-forwarded notices (7 MB), one order each, spread over many parts: every
    notice alone is credible, together they are not."""
    parts, orders, count = [], _orders(19_800), 0
    for start in range(0, len(orders), 300):
        blocks = "".join(
            "---------- Forwarded message ---------\r\nFrom: Amazon.com <auto-communication@amazon.com>\r\n"
            f"Subject: Your message to a buyer could not be delivered\r\n\r\n{SENTENCE.replace(ORDER, order)}\r\n\r\n"
            for order in orders[start:start + 300]
        )
        count += len(orders[start:start + 300])
        parts.append(f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{blocks}\r\n")
    raw = ("From: Ops <ops@seller.example>\r\nSubject: Fwd: notices\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           + "".join(parts) + "--b--\r\n").encode()
    assert 7_000_000 < len(raw) < MAX_BYTES and count == 19_800
    result = parse_notice(raw)
    assert result.kind is not Kind.OPT_OUT and result.buyers == () and result.reason


def test_is_notice_foretells_classify_on_every_candidate_of_every_sample() -> None:
    """The parser reads only the notices of a mail that holds one, trusting ``is_notice`` to
    say which candidates ``classify`` calls notices: it must agree on every candidate."""
    from pathlib import Path

    from inbox_daemon.notices.classify import classify, is_notice
    from inbox_daemon.notices.mime import read_message
    from inbox_daemon.notices.unwrap import candidates

    samples = Path(__file__).resolve().parents[1] / "data" / "notices"
    checked = 0
    for path in sorted(samples.rglob("*.eml")):
        for candidate in candidates(read_message(path.read_bytes())):
            assert is_notice(candidate) == classify(candidate).is_notice, path.name
            checked += 1
    assert checked > 300
