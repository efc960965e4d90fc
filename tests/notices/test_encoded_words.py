"""Encoded words come out as compat32's ``email.header.decode_header`` gives them: on every
header value of the samples, on crafted edge cases and on values built under Hypothesis."""

from __future__ import annotations

import email
import email.header
from email.errors import HeaderParseError
from email.policy import compat32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.notices.encoded_words import decode_header

from .expectations import OWN_SAMPLES, SHARED_CORPUS


def _stdlib(value: str) -> object:
    try:
        return email.header.decode_header(value)
    except HeaderParseError:
        return HeaderParseError


def _ours(value: str) -> object:
    try:
        return decode_header(value)
    except HeaderParseError:
        return HeaderParseError


def test_every_header_value_of_the_samples_decodes_as_the_stdlib() -> None:
    paths = sorted(OWN_SAMPLES.rglob("*.eml")) + sorted(SHARED_CORPUS.glob("*.eml"))
    encoded = 0
    for path in paths:
        msg = email.message_from_bytes(path.read_bytes(), policy=compat32)
        for part in msg.walk():
            for _, value in part.raw_items():
                if not isinstance(value, str):
                    continue
                value = value.replace("\r", "").replace("\n", "")
                encoded += "=?" in value
                assert _ours(value) == _stdlib(value), (path.name, value)
    assert encoded > 50  # the samples hold encoded subjects and names in many charsets


@pytest.mark.parametrize("value", [
    "=?utf-8?q?a_b=3D=3d=ZZ=4Z=4=41=?=",  # "_", upper and lower hex, "=" not before two hex digits
    "=?utf-8?Q?=3D41?=",  # a decoded "=" does not start another escape
    "=?utf-8?b?YWJj?= \t =?utf-8?B?ZGVm?=",  # blanks between encoded words are dropped
    "=?utf-8?b?YWJjZA?=",  # padding missing
    "=?utf-8?b?Y?=",  # not base64
    "plain =?iso-8859-1?q?caf=E9?= plain",
    "a =?x?q?1?= b =?y?q?2?=c",
    "=?UTF-8?Q?=E2=91=A0?=\x0bnext line",  # a line break str.splitlines knows
    "=?utf-8?q?\udcff\u2460?=",  # undecodable bytes and characters above U+00FF
    "=??q??=",
    "",
])
def test_edge_cases_decode_as_the_stdlib(value: str) -> None:
    assert _ours(value) == _stdlib(value)


_PIECES = st.sampled_from(["=?", "?=", "?", "=", "q", "Q", "b", "B", "_", " ", "\t", "a", "é", "①", "3D", "E9", "fF",
                           "YWJj", "utf-8", "=?utf-8?q?", "=?iso-8859-1?b?", "?= =?utf-8?q?", "\n", "\udce9", "=="])


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECES, max_size=24).map("".join))
def test_values_built_from_encoded_word_pieces_decode_as_the_stdlib(value: str) -> None:
    assert _ours(value) == _stdlib(value)
