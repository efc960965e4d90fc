"""Forwarding confirmations: Gmail's is recognised with its requester, code and link; a look-alike
whose link leaves Google's host, or another sender, is not."""

from __future__ import annotations

from pathlib import Path

from inbox_daemon.notices.confirmation import forwarding_confirmation

SAMPLE = (Path(__file__).resolve().parents[1] / "data" / "confirmations" / "gmail-en.eml").read_bytes()


def test_gmail_confirmation_gives_requester_code_and_link() -> None:
    found = forwarding_confirmation(SAMPLE)
    assert found is not None
    assert (found.provider, found.requester, found.code) == ("gmail", "ops.acme@gmail.com", "482915736")
    assert found.link == "https://mail-settings.google.com/mail/vf-%5BANGjdJ8xQ2bP1kq%5D-Z3kYb2c4Xq1n0VJ7r"
    assert found.reason().startswith("forwarding confirmation: ops.acme@gmail.com")


def test_a_link_off_google_or_another_sender_is_not_a_confirmation() -> None:
    phishing = SAMPLE.replace(b"https://mail-settings.google.com/mail/vf-", b"https://mail-settings.google.com.evil.example/vf-")
    assert forwarding_confirmation(phishing) is None
    assert forwarding_confirmation(SAMPLE.replace(b"forwarding-noreply@google.com", b"noreply@evil.example")) is None
    assert forwarding_confirmation(b"From: forwarding-noreply@google.com\r\n\r\n\xff\x00 no code") is None
    assert forwarding_confirmation(b"") is None
