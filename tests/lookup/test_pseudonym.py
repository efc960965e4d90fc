"""Keyed pseudonyms: the C digest (HMAC from OpenSSL's SHA-256, for the query loop) is the
Python one (keys.digest, the reference) for every kind of input and key length."""

from __future__ import annotations

import os
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon import keys
from inbox_daemon.privacy import PSEUDONYM_BYTES, new_keyring

try:
    from inbox_daemon.lookup._fastpath import Pseudonymiser
except ImportError:  # not built
    Pseudonymiser = None  # type: ignore[assignment,misc]


@pytest.fixture(autouse=True)
def built() -> None:
    if Pseudonymiser is None:
        if os.environ.get("CI"):
            pytest.fail("inbox_daemon.lookup._fastpath is not built (CI's install builds it)")
        pytest.skip("inbox_daemon.lookup._fastpath is not built")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048))
def test_c_and_python_digests_are_one(data: bytes) -> None:
    ring = new_keyring()
    assert Pseudonymiser(ring.pseudonym_key).digest(data) == ring.pseudonym(data)


@settings(max_examples=100, deadline=None)
@given(secret=st.binary(min_size=16, max_size=200), data=st.binary(max_size=200))
def test_every_key_length_hashed_or_padded_as_rfc_2104_says(secret: bytes, data: bytes) -> None:
    assert Pseudonymiser(secret).digest(data) == keys.digest(secret, data)


def test_every_buyer_key_and_a_reused_context() -> None:
    ring = new_keyring()
    c = Pseudonymiser(ring.pseudonym_key)
    for text in ("abcdefghijklmno+x@marketplace.amazon.com", "113-5663737-4342765", "D01-1234567-7654321",
                 "a@b\x00c", "x" * 5000):
        key = keys.parse(text) or keys.BuyerKey("email", text)
        for _ in range(3):  # the keyed template is duplicated, never consumed
            assert c.digest(key.canonical) == key.pseudonym(ring)
        assert len(key.pseudonym(ring)) == PSEUDONYM_BYTES
        assert key.tag(ring).startswith(key.kind + ":") and key.value not in key.tag(ring)


def test_another_key_gives_another_digest_and_the_key_never_shows() -> None:
    key = secrets.token_bytes(32)
    c = Pseudonymiser(key)
    assert c.digest(b"email:a@b") != Pseudonymiser(secrets.token_bytes(32)).digest(b"email:a@b")
    assert key.hex() not in repr(c) and "hidden" in repr(c)
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")
    with pytest.raises(TypeError):
        c.digest("not bytes")  # type: ignore[arg-type]
