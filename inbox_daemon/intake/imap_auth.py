"""How a poller signs in to its mailbox: LOGIN with a password, or SASL XOAUTH2 / OAUTHBEARER
(RFC 7628) with an OAuth 2.0 access token. One callable per account, built by ``sign_in_for``."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..config import ImapAccount
from .imap_client import ImapAuthError, ImapConnection
from .oauth import TokenSource
from .sasl import SaslError, SaslExchange, initial_response

__all__ = ["SignIn", "PasswordSignIn", "OAuthSignIn", "sign_in_for"]


class SignIn(Protocol):
    async def __call__(self, conn: ImapConnection) -> None: ...


class PasswordSignIn:
    """LOGIN; ``password_file`` is read at every connect, so a rotated password needs no restart."""

    def __init__(self, account: ImapAccount) -> None:
        self.account = account

    async def __call__(self, conn: ImapConnection) -> None:
        await conn.login(await self._password())

    async def _password(self) -> str:
        if not self.account.password_file:
            return self.account.password
        try:
            text = await asyncio.to_thread(_read_text, self.account.password_file)
        except OSError as exc:
            raise ImapAuthError(f"cannot read password_file {self.account.password_file}: {exc.strerror}") from None
        return text.rstrip("\r\n")


class OAuthSignIn:
    """AUTHENTICATE with an access token; a token the server refuses is replaced by a fresh one
    once (it may have expired or been revoked since it was issued), then the refusal stands."""

    def __init__(self, account: ImapAccount, tokens: TokenSource) -> None:
        self.account = account
        self.mechanism = account.auth.upper()
        self.tokens = tokens

    async def __call__(self, conn: ImapConnection) -> None:
        acct = self.account
        for attempt in (1, 2):
            token = await self.tokens.token()
            try:
                message = initial_response(self.mechanism, acct.username, token.reveal(), acct.host, acct.port)
            except SaslError as exc:
                raise ImapAuthError(str(exc)) from None
            exchange = SaslExchange(self.mechanism, message)
            if await conn.authenticate(exchange):
                return
            # Exchange Online answers a bad token with a plain NO, Gmail and Dovecot with the
            # error challenge first; either way a token that may have expired is replaced once.
            error = exchange.server_error
            if attempt == 1 and (error is None or error.token_rejected):
                self.tokens.invalidate()
                continue
            reason = f"status {error.status}" if error is not None else exchange.refusal
            raise ImapAuthError(f"AUTHENTICATE {self.mechanism} refused the access token ({reason})")


def sign_in_for(account: ImapAccount, logger: Any = None) -> SignIn:
    if account.oauth:
        return OAuthSignIn(account, TokenSource(account, logger=logger))
    return PasswordSignIn(account)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()
