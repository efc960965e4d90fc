"""Relay addresses, forged marketplace domains, order ids and sender domains."""

from __future__ import annotations

import pytest

from inbox_daemon.notices.addresses import (
    find_forged_relay_domains,
    find_order_ids,
    find_relay_addresses,
    first_address,
    normalise_relay_address,
    sender_kind,
)

ID = "abcdefghij12345"


@pytest.mark.parametrize("tld", ["com", "co.uk", "de", "co.jp", "com.mx", "com.au", "com.br", "sg"])
def test_relay_address_on_each_marketplace(tld: str) -> None:
    assert find_relay_addresses(f"to {ID}@marketplace.amazon.{tld}.") == [f"{ID}@marketplace.amazon.{tld}"]


def test_relay_address_is_lower_cased_and_plus_tag_stripped() -> None:
    text = f"Jane <{ID.upper()}+Thread9@Marketplace.Amazon.COM> and {ID}@marketplace.amazon.com"
    assert find_relay_addresses(text) == [f"{ID}@marketplace.amazon.com"]
    assert normalise_relay_address(f"{ID}+x@marketplace.amazon.de") == f"{ID}@marketplace.amazon.de"


@pytest.mark.parametrize(
    "text",
    [
        f"{ID}@marketplace.amazon.com.relay-notify.example",  # s23: domain continues
        f"{ID}x@marketplace.amazon.com",  # 16 characters
        f"{ID[:14]}@marketplace.amazon.com",  # 14 characters
        f"{ID}@marketplace.amazon.zz",  # no such marketplace
        f"{ID}@amazon.com",  # not the relay subdomain
        f"{ID}@marketplace-amazon.com",
    ],
)
def test_not_a_relay_address(text: str) -> None:
    assert find_relay_addresses(text) == []
    assert normalise_relay_address(text) is None


def test_forged_marketplace_domains_are_reported() -> None:
    text = f"{ID}@marketplace.amazon.com.relay-notify.example and {ID}@marketplace.amazon.de."
    assert find_forged_relay_domains(text) == ["marketplace.amazon.com.relay-notify.example"]


def test_order_ids_are_3_7_7_digits_and_unique() -> None:
    text = "[113-5663737-4342765] 113-5663737-4342765 1113-5663737-4342765 113-566373-4342765 113-5663737-43427651"
    assert find_order_ids(text) == ["113-5663737-4342765"]


def test_digital_order_ids_are_d_and_2_7_7_and_the_d_starts_a_word() -> None:
    """A digital order's ``D`` (either case, stored upper-case) begins the id: ``ID01-...`` or
    ``XD03-...`` hold no order id, nor does a ``D`` followed by one or three digits."""
    text = ("Bestellnummer: d01-5512093-7730148, (D02-3390417-6128853) ID01-1111111-2222222 "
            "XD03-1234567-1234567 DD1-1234567-1234567 D1-1234567-1234567 D01-1234567-12345678 D01-5512093-7730148")
    assert find_order_ids(text) == ["D01-5512093-7730148", "D02-3390417-6128853"]


def test_first_address_and_sender_kind() -> None:
    assert first_address('"Amazon.com" <Auto-Communication@Amazon.com>') == "auto-communication@amazon.com"
    assert first_address("a@b.example c@d.example") == "a@b.example"
    assert first_address("Amazon.com") is None
    assert first_address("x@marketplace@amazon.com") is None  # two @: not an address at all
    assert sender_kind("auto-communication@amazon.co.jp") == "amazon"
    assert sender_kind(f"{ID}@marketplace.amazon.com") == "relay"
    assert sender_kind("x@amazon-seller-alerts.example") == "other"
    assert sender_kind("x@mail.amazon.com.evil.example") == "other"
    assert sender_kind(None) == "none"
