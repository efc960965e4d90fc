"""The sans-IO SASL framing of XOAUTH2 and OAUTHBEARER (RFC 7628), without a server: the exact
bytes of the documented examples, the error challenge each mechanism must acknowledge, and
what a hostile server's challenge gets (a cancel, never a crash or a second token)."""

from __future__ import annotations

import base64
import json

import pytest

from inbox_daemon.intake.sasl import SaslError, SaslExchange, State, initial_response

TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="  # RFC 7628 4.1's example token


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def challenge(obj: object) -> bytes:
    return b"+ " + b64(json.dumps(obj).encode())


def test_initial_responses_match_the_documented_examples() -> None:
    # RFC 7628 4.1 (client's first message, host and port included)
    assert initial_response("OAUTHBEARER", "user@example.com", TOKEN, "server.example.com", 143) == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"
    )
    # Google's XOAUTH2 protocol page: "user=" {User} "^Aauth=Bearer " {Access Token} "^A^A"
    assert initial_response("XOAUTH2", "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg") == (
        b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01"
    )
    # RFC 5801 4: "," and "=" in the authzid are escaped
    assert initial_response("OAUTHBEARER", "a,b=c@x", "t").startswith(b"n,a=a=2Cb=3Dc@x,\x01auth=")


@pytest.mark.parametrize("token", ["", "has space", "x\x01auth=Bearer y", "t\r\nA1 LOGOUT", "tök"])
def test_a_token_that_is_not_an_rfc6750_bearer_token_is_refused(token: str) -> None:
    with pytest.raises(SaslError, match="bearer token"):
        initial_response("XOAUTH2", "u@x", token)


@pytest.mark.parametrize("user", ["", "u\x01auth=Bearer evil", "u\x00", "u\r\nA1 LOGOUT"])
def test_a_username_with_control_characters_is_refused(user: str) -> None:
    with pytest.raises(SaslError, match="username"):
        initial_response("OAUTHBEARER", user, "t")


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_with_sasl_ir_the_token_goes_in_the_command(mechanism: str) -> None:
    message = initial_response(mechanism, "u@x", "abc")
    exchange = SaslExchange(mechanism, message)
    assert exchange.begin("A1", sasl_ir=True) == f"A1 AUTHENTICATE {mechanism} ".encode() + b64(message) + b"\r\n"
    assert exchange.state is State.SENT


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_without_sasl_ir_the_token_follows_the_empty_continuation(mechanism: str) -> None:
    message = initial_response(mechanism, "u@x", "abc")
    exchange = SaslExchange(mechanism, message)
    assert exchange.begin("A1", sasl_ir=False) == f"A1 AUTHENTICATE {mechanism}\r\n".encode()
    assert exchange.on_continuation(b"+ ") == b64(message) + b"\r\n"
    assert exchange.state is State.SENT


@pytest.mark.parametrize(("mechanism", "ack", "status"), [
    ("XOAUTH2", b"\r\n", "401"),  # Google / Microsoft: an empty line, then the tagged NO
    ("OAUTHBEARER", b"AQ==\r\n", "invalid_token"),  # RFC 7628 3.2.3: the single byte %x01
])
def test_the_error_challenge_is_acknowledged_as_each_mechanism_requires(mechanism: str, ack: bytes, status: str) -> None:
    exchange = SaslExchange(mechanism, initial_response(mechanism, "u@x", "abc"))
    exchange.begin("A1", sasl_ir=True)
    reply = exchange.on_continuation(challenge({"status": status, "schemes": "bearer", "scope": "https://mail.google.com/"}))
    assert reply == ack
    assert exchange.state is State.ERROR_ACKED
    assert exchange.server_error is not None
    assert exchange.server_error.status == status and exchange.server_error.token_rejected
    assert exchange.server_error.scope == "https://mail.google.com/"
    # A second challenge is out of turn: cancel, never send the token again.
    assert exchange.on_continuation(challenge({"status": status})) == b"*\r\n"
    assert exchange.state is State.CANCELLED and "out of turn" in exchange.problem


@pytest.mark.parametrize("line", [
    b"+ not base64!!",
    b"+ " + b64(b"\xff\xfe not utf-8"),
    b"+ " + b64(b"[1, 2]"),
    b"+ " + b64(b'{"schemes": "bearer"}'),  # no status
    b"+ " + b64(b'{"status": 401}'),  # status not a string
    b"+ " + b64(b"\x00" * 64),
    b"+ " + b64(json.dumps({"status": "x" * 5000}).encode()),  # too long to be an error object
    b"+",
])
def test_a_challenge_that_is_not_an_oauth_error_is_cancelled(line: bytes) -> None:
    exchange = SaslExchange("OAUTHBEARER", initial_response("OAUTHBEARER", "u@x", "abc"))
    exchange.begin("A1", sasl_ir=True)
    assert exchange.on_continuation(line) == b"*\r\n"
    assert exchange.state is State.CANCELLED and exchange.server_error is None


def test_a_non_empty_challenge_before_the_initial_response_is_cancelled() -> None:
    exchange = SaslExchange("XOAUTH2", initial_response("XOAUTH2", "u@x", "abc"))
    exchange.begin("A1", sasl_ir=False)
    assert exchange.on_continuation(challenge({"status": "401"})) == b"*\r\n"
    assert exchange.state is State.CANCELLED


def test_the_error_status_says_whether_a_fresh_token_can_help() -> None:
    exchange = SaslExchange("OAUTHBEARER", initial_response("OAUTHBEARER", "u@x", "abc"))
    exchange.begin("A1", sasl_ir=True)
    exchange.on_continuation(challenge({"status": "insufficient_scope", "scope": "imap"}))
    assert exchange.server_error is not None and not exchange.server_error.token_rejected


def test_an_unknown_mechanism_is_refused() -> None:
    with pytest.raises(SaslError):
        SaslExchange("PLAIN", b"x")
    with pytest.raises(SaslError):
        initial_response("PLAIN", "u@x", "abc")
