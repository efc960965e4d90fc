"""Sans-IO SASL for IMAP ``AUTHENTICATE`` with an OAuth 2.0 bearer token: XOAUTH2 (Google's
and Microsoft's) and OAUTHBEARER (RFC 7628). No sockets here: the exchange says which bytes to
write for each line the server sends, and what the outcome was.

The wire (RFC 3501 6.2.2, RFC 4959 SASL-IR): ``tag AUTHENTICATE MECH <base64 initial response>``
when the server offers SASL-IR, else ``tag AUTHENTICATE MECH`` and the initial response after the
server's empty ``+``. A failed token is answered with a ``+ <base64 JSON>`` error challenge
(RFC 7628 3.2.2), which the client must acknowledge before the tagged ``NO`` comes: an empty
line for XOAUTH2, ``AQ==`` (the single byte 0x01) for OAUTHBEARER (RFC 7628 3.2.3). Anything
else the server sends mid-exchange is answered ``*``: the client cancels (RFC 3501 6.2.2).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["MECHANISMS", "SaslError", "SaslExchange", "ServerError", "State", "initial_response"]

MECHANISMS = ("XOAUTH2", "OAUTHBEARER")
CANCEL = b"*\r\n"
MAX_CHALLENGE = 4096  # an error challenge is a small JSON object; more is not one
# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class SaslError(ValueError):
    """A username or token that cannot be put into the SASL message (the reason names which)."""


class State(Enum):
    START = "start"
    WAIT_READY = "wait_ready"  # no SASL-IR: the server's empty "+" comes first
    SENT = "sent"  # the initial response is out
    ERROR_ACKED = "error_acked"  # the error challenge was acknowledged; the NO comes next
    CANCELLED = "cancelled"  # we sent "*"; the server answers BAD


@dataclass(frozen=True)
class ServerError:
    """The error challenge's fields (RFC 7628 3.2.2); ``status`` is ``invalid_token`` (RFC
    6750) in OAUTHBEARER and an HTTP status such as ``401`` or ``400`` in XOAUTH2."""

    status: str
    scope: str = ""

    @property
    def token_rejected(self) -> bool:
        """The token itself was refused (expired, revoked): a fresh one may succeed."""
        return self.status.lower() in ("invalid_token", "401", "400")


def initial_response(mechanism: str, username: str, token: str, host: str = "", port: int = 0) -> bytes:
    """The client's first SASL message (unencoded)."""
    if _B64TOKEN.fullmatch(token) is None:
        raise SaslError("the access token is not an RFC 6750 bearer token")
    if not username or any(c in username for c in "\x00\x01\r\n"):
        raise SaslError("the username is empty or holds a control character")
    if mechanism == "XOAUTH2":
        return f"user={username}\x01auth=Bearer {token}\x01\x01".encode()
    if mechanism == "OAUTHBEARER":
        # RFC 7628 3.1: gs2-header "n,a=<saslname>," where "," and "=" are escaped (RFC 5801 4).
        name = username.replace("=", "=3D").replace(",", "=2C")
        fields = [f"host={host}"] if host else []
        fields += [f"port={port}"] if port else []
        return ("n,a=" + name + ",\x01" + "".join(f + "\x01" for f in fields) + f"auth=Bearer {token}\x01\x01").encode()
    raise SaslError(f"unknown SASL mechanism {mechanism!r}")


class SaslExchange:
    """One ``AUTHENTICATE`` exchange: ``begin`` gives the command line, ``on_continuation`` the
    answer to each ``+`` line; the tagged response ends it. ``server_error`` holds what the
    error challenge said, if one came."""

    def __init__(self, mechanism: str, message: bytes) -> None:
        if mechanism not in MECHANISMS:
            raise SaslError(f"unknown SASL mechanism {mechanism!r}")
        self.mechanism = mechanism
        self._message = message
        self.state = State.START
        self.server_error: ServerError | None = None
        self.problem = ""  # why we cancelled, for the error message
        self.refusal = ""  # the text of the server's tagged NO, when it refused

    def begin(self, tag: str, sasl_ir: bool) -> bytes:
        """The command line to write (it carries the token when ``sasl_ir``)."""
        assert self.state is State.START
        if sasl_ir:
            self.state = State.SENT
            return f"{tag} AUTHENTICATE {self.mechanism} ".encode() + _line(self._message)
        self.state = State.WAIT_READY
        return f"{tag} AUTHENTICATE {self.mechanism}\r\n".encode()

    def on_continuation(self, line: bytes) -> bytes:
        """What to write for one ``+`` line from the server (``line`` without its CRLF)."""
        if self.state is State.WAIT_READY and line.rstrip() == b"+":
            self.state = State.SENT
            return _line(self._message)
        if self.state is State.SENT:
            error = _error_challenge(line)
            if error is not None:
                self.server_error = error
                self.state = State.ERROR_ACKED
                return b"\r\n" if self.mechanism == "XOAUTH2" else b"AQ==\r\n"
            self.problem = "the server sent a challenge that is not an OAuth error"
        else:
            self.problem = "the server sent a challenge out of turn"
        self.state = State.CANCELLED
        return CANCEL


def _line(message: bytes) -> bytes:
    return base64.b64encode(message) + b"\r\n"


def _error_challenge(line: bytes) -> ServerError | None:
    """The RFC 7628 3.2.2 error object of a ``+ <base64>`` line; None if it is not one."""
    if not line.startswith(b"+ ") or len(line) > MAX_CHALLENGE:
        return None
    try:
        data = json.loads(base64.b64decode(line[2:].strip(), validate=True))
    except (binascii.Error, ValueError):  # not base64, not UTF-8, not JSON
        return None
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        return None
    scope = data.get("scope")
    return ServerError(status=data["status"][:64], scope=scope[:512] if isinstance(scope, str) else "")
