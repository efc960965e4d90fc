"""OAuth 2.0 access tokens for IMAP accounts (RFC 6749), through authlib's asyncio client (httpx):
a refresh token (delegated access: Gmail, Microsoft 365) or client credentials (Microsoft 365
app-only access with a service principal), and the device authorization grant (RFC 8628) that
``inbox-daemon imap authorize`` runs once.

Secrets come from files or systemd credentials ($CREDENTIALS_DIRECTORY), never from the config
file, and travel as ``Secret`` so that no repr, log line or error message shows one. An access
token is refreshed ahead of its expiry and once more when the server refuses it; a refresh token
the server rotates is saved atomically at 0600 before it is used.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped]

from ..config import ImapAccount
from ..secret import Secret
from .imap_client import ImapAuthError, ImapSessionError

__all__ = [
    "Secret", "TokenSource", "GrantInvalid", "TokenUnavailable", "DeviceGrant", "read_secret",
    "save_token", "device_authorize", "authorize_command",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 3.4
HTTP_TIMEOUT = 30.0
REFRESH_AHEAD = 60.0  # seconds before expiry; a quarter of the lifetime for short-lived tokens
# RFC 6749 5.2: the grant itself is void (revoked, expired, consent withdrawn) or the client is
# not recognised: no retry helps, the operator must act.
_PERMANENT = frozenset({"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type",
                        "invalid_scope", "access_denied", "expired_token"})


def authorize_command(account: ImapAccount) -> str:
    """What an operator runs to grant access again (named in every grant error)."""
    return f"inbox-daemon imap authorize {account.name}"


class GrantInvalid(ImapAuthError):
    """The refresh token or client credentials are refused for good (revoked, expired, wrong):
    the operator must run ``imap authorize`` (or fix the client secret)."""


class TokenUnavailable(ImapSessionError):
    """No token now (the token endpoint is down or answered nonsense): back off and retry.
    ``error`` is the RFC 6749 5.2 / RFC 8628 3.5 code when the endpoint gave one."""

    def __init__(self, message: str, error: str = "") -> None:
        super().__init__(message)
        self.error = error


# -- secrets on disk ---------------------------------------------------------------------------


def read_secret(path: str = "", credential: str = "", what: str = "secret") -> Secret[str]:
    """One secret from a file, or from a systemd credential (``$CREDENTIALS_DIRECTORY/NAME``),
    without its trailing newline. The error names the file, never its content."""
    if credential:
        directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
        if not directory:
            # systemd sets it for the service only (systemd.exec(5) LoadCredential=); a command
            # run by hand gets the credential from systemd-run.
            raise GrantInvalid(f"{what}: credential {credential!r} asked for but CREDENTIALS_DIRECTORY is not set "
                               f"(outside the service: systemd-run --pipe --wait -p LoadCredential={credential}:PATH ...)")
        path = str(Path(directory) / credential)
    try:
        with open(path, encoding="utf-8") as fh:
            value = fh.read(65536).strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise GrantInvalid(f"cannot read {what} {path}: {reason}") from None
    if not value or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise GrantInvalid(f"{what} {path} is empty or holds control characters")
    return Secret(value)


def save_token(path: str, token: Secret[str]) -> None:
    """Write a refresh token to ``path`` atomically (a 0600 temporary file, fsync, rename, fsync
    of the directory): a crash leaves the old token or the new one, never half of one."""
    directory = Path(path).parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    owner: tuple[int, int] | None = None  # root running `imap test` keeps the daemon's user the owner
    try:
        st = os.stat(path)
        owner = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".token-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token.reveal() + "\n")
            fh.flush()
            if owner is not None and os.geteuid() == 0:
                os.fchown(fh.fileno(), *owner)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dirfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


# -- the token endpoint ------------------------------------------------------------------------


def _client(account: ImapAccount, secret: Secret[str] | None) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=account.client_id,
        client_secret=secret.reveal() if secret else None,
        token_endpoint_auth_method=account.token_auth if secret else "none",
        scope=" ".join(account.scopes) or None,
        timeout=HTTP_TIMEOUT,
    )


def _client_secret(account: ImapAccount) -> Secret[str] | None:
    if not (account.client_secret_file or account.client_secret_credential):
        return None  # a public client (RFC 6749 2.1), as Microsoft's device flow allows
    return read_secret(account.client_secret_file, account.client_secret_credential, "client secret")


async def _token_request(account: ImapAccount, call: Callable[[AsyncOAuth2Client], Awaitable[Any]]) -> dict[str, Any]:
    """One request to the token endpoint; the answer's errors sorted into permanent (the
    operator must act) and transient (retry later). Nothing secret goes into a message."""
    secret = await asyncio.to_thread(_client_secret, account)
    try:
        async with _client(account, secret) as client:
            token = await call(client)
    except OAuthError as exc:
        if exc.error in _PERMANENT:
            raise GrantInvalid(f"token endpoint refused the grant: {exc.error}"
                               f"{': ' + _printable(exc.description) if exc.description else ''}") from None
        raise TokenUnavailable(f"token endpoint answered {_printable(exc.error)}", _printable(exc.error)) from None
    except httpx2.HTTPStatusError as exc:
        raise TokenUnavailable(f"token endpoint answered HTTP {exc.response.status_code}") from None
    except (httpx2.HTTPError, OSError) as exc:
        raise TokenUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from None
    except ValueError:  # not JSON
        raise TokenUnavailable("token endpoint answered something that is not a token response") from None
    if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
        raise TokenUnavailable("token endpoint answered without an access_token")
    return dict(token)


def _printable(text: Any) -> str:
    """A server's error description, bounded and without control characters."""
    return "".join(c if c.isprintable() else "?" for c in str(text)[:200])


@dataclass
class _Access:
    token: Secret[str]
    expires_at: float  # monotonic
    refresh_at: float


class TokenSource:
    """Access tokens for one account: cached, refreshed ahead of expiry, and fresh on demand
    after the server refused one. Refreshes never run twice at once (a lock)."""

    def __init__(self, account: ImapAccount, *, logger: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.account = account
        self._log = logger
        self._clock = clock
        self._lock = asyncio.Lock()
        self._access: _Access | None = None
        # A rotated refresh token the token file could not take (disk full): the old one is
        # void at the issuer once it rotated (RFC 6749 6), so this is the only copy; it is
        # used from memory and saved again at each refresh until a save succeeds.
        self._unsaved: Secret[str] | None = None
        self.refreshes = 0  # token endpoint calls that gave a token

    async def token(self) -> Secret[str]:
        async with self._lock:
            if self._access is None or self._clock() >= self._access.refresh_at:
                self._access = await self._fetch()
            return self._access.token

    def invalidate(self) -> None:
        """The server refused the token: the next ``token()`` asks the endpoint again."""
        self._access = None

    async def _fetch(self) -> _Access:
        acct = self.account
        rotated = False
        if acct.grant == "client_credentials":
            token = await _token_request(acct, lambda c: c.fetch_token(acct.token_url, grant_type="client_credentials"))
        else:
            refresh = self._unsaved
            if refresh is None:
                refresh = await asyncio.to_thread(read_secret, acct.token_file, "", "refresh token (token_file)")
            token = await _token_request(
                acct, lambda c: c.refresh_token(acct.token_url, refresh_token=refresh.reveal()))
            new = token.get("refresh_token")
            if isinstance(new, str) and new and new != refresh.reveal():
                self._unsaved = Secret(new)
                rotated = True
            await self._save_unsaved()
        self.refreshes += 1
        now = self._clock()
        lifetime = _lifetime(token)
        if self._log is not None:
            self._log.info("imap_oauth_token", grant=acct.grant, expires_in=round(lifetime), rotated=rotated)
        return _Access(Secret(token["access_token"]), now + lifetime, now + lifetime - min(REFRESH_AHEAD, lifetime / 4))

    async def _save_unsaved(self) -> None:
        """Save a rotated refresh token held in memory; on failure keep holding it and say so
        (the reason and the path, never the token): a restart before a save succeeds needs
        ``imap authorize``."""
        if self._unsaved is None:
            return
        try:
            await asyncio.to_thread(save_token, self.account.token_file, self._unsaved)
        except OSError as exc:
            if self._log is not None:
                self._log.error("imap_oauth_token_unsaved", account=self.account.name, path=self.account.token_file,
                                error=exc.strerror or type(exc).__name__,
                                hint="the rotated refresh token is held in memory and saved at the next refresh")
            return
        self._unsaved = None


def _lifetime(token: dict[str, Any]) -> float:
    """Seconds the access token is good for (RFC 6749 5.1 ``expires_in``; one hour when absent,
    what Google and Microsoft issue)."""
    value = token.get("expires_in")
    try:
        seconds = float(value) if value is not None else 3600.0
    except (TypeError, ValueError):
        seconds = 3600.0
    return max(1.0, min(seconds, 86400.0))


# -- RFC 8628: the device authorization grant --------------------------------------------------


@dataclass(frozen=True)
class DeviceGrant:
    """What the device authorization endpoint answered (RFC 8628 3.2)."""

    device_code: Secret[str]
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float
    interval: float


async def device_authorize(account: ImapAccount) -> DeviceGrant:
    """Ask for a device code (RFC 8628 3.1)."""
    if not account.device_url:
        raise GrantInvalid("no device_url for this account (set it, or a provider that has one)")

    async def call(client: AsyncOAuth2Client) -> dict[str, Any]:
        data = {"client_id": account.client_id, "scope": " ".join(account.scopes)}
        response = await client.request("POST", account.device_url, data=data, withhold_token=True,
                                     auth=client.client_auth(client.token_endpoint_auth_method))
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not an object")
        if "error" in body:
            raise OAuthError(error=str(body["error"]), description=body.get("error_description"))
        response.raise_for_status()
        body.setdefault("access_token", "")  # _token_request checks for one; this answer has none
        return body

    body = await _token_request(account, call)
    try:
        return DeviceGrant(
            device_code=Secret(str(body["device_code"])), user_code=_printable(body["user_code"]),
            # Microsoft's v2.0 endpoint says verification_uri; older ones verification_url.
            verification_uri=_printable(body.get("verification_uri") or body["verification_url"]),
            verification_uri_complete=_printable(body.get("verification_uri_complete", "")),
            expires_in=float(body.get("expires_in", 900)), interval=float(body.get("interval", 5)),
        )
    except (KeyError, TypeError, ValueError):
        raise TokenUnavailable("device authorization endpoint answered without a device_code and user_code") from None


async def device_poll(account: ImapAccount, grant: DeviceGrant, *,
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Secret[str]:
    """Poll the token endpoint until the user has approved (RFC 8628 3.4, 3.5): wait
    ``interval`` between requests, 5 s more after each ``slow_down``; the refresh token."""
    interval = max(1.0, grant.interval)
    deadline = time.monotonic() + grant.expires_in
    while time.monotonic() < deadline:
        await sleep(interval)
        try:
            token = await _token_request(account, lambda c: c.fetch_token(
                account.token_url, grant_type=DEVICE_CODE_GRANT, device_code=grant.device_code.reveal()))
        except TokenUnavailable as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += 5.0
                continue
            raise
        refresh = token.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise GrantInvalid("the token endpoint issued no refresh token (is offline_access among the scopes?)")
        return Secret(refresh)
    raise GrantInvalid("the code expired before it was approved: run the command again")
