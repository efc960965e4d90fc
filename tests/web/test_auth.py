"""Who is asking, in-process: Argon2 hashes, the login throttle's rule, sessions' bounds."""

from __future__ import annotations

import time

from inbox_daemon.web.auth import LoginThrottle, Sessions, hash_password, token_digest, verify_password


def test_passwords_verify_only_against_their_hash_and_an_unknown_user_never_does() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert not verify_password(None, "correct horse battery")  # no user: the same work, no match
    assert not verify_password("not a hash", "x")
    assert token_digest("idt_a") != token_digest("idt_b") and len(token_digest("idt_a")) == 64


def test_the_throttle_delays_a_failing_source_exponentially_but_never_a_fresh_one() -> None:
    throttle = LoginThrottle(base=10.0, free=3, cap=100.0)
    for _ in range(3):
        assert throttle.wait("198.51.100.7", "alice") == 0.0
        throttle.failed("198.51.100.7", "alice")
    first = throttle.wait("198.51.100.7", "alice")
    assert 9.0 < first <= 10.0
    throttle.failed("198.51.100.7", "alice")
    assert 19.0 < throttle.wait("198.51.100.7", "alice") <= 20.0  # twice as long
    for _ in range(20):
        throttle.failed("198.51.100.7", "alice")
    assert throttle.wait("198.51.100.7", "alice") <= 100.0  # capped
    assert throttle.wait("203.0.113.9", "alice") == 0.0  # the right user elsewhere: not delayed
    throttle.failed("203.0.113.9", "alice")  # a source that failed once now waits for the user's count
    assert throttle.wait("203.0.113.9", "alice") > 0
    throttle.succeeded("203.0.113.9", "alice")
    assert throttle.wait("203.0.113.9", "alice") == 0.0


def test_sessions_expire_end_at_logout_and_stay_bounded() -> None:
    sessions = Sessions(lifetime=3600, max_sessions=3)
    cookies = [sessions.create(f"u{i}")[0] for i in range(5)]
    assert [sessions.get(c) is not None for c in cookies] == [False, False, True, True, True]
    sessions.drop(cookies[-1])
    assert sessions.get(cookies[-1]) is None and sessions.get(None) is None and sessions.get("forged") is None
    short = Sessions(lifetime=-1)
    cookie, session = short.create("u")
    assert session.expires < time.monotonic() and short.get(cookie) is None
    assert session.csrf_ok(session.csrf) and not session.csrf_ok("x") and not session.csrf_ok(None)
