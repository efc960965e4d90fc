"""``imap``: set up and check an ``[[imap.accounts]]`` mailbox before the daemon polls it.

``authorize`` runs the OAuth 2.0 device authorization grant (RFC 8628) once and stores the
refresh token; ``test`` signs in as the daemon would and says what the next poll would take,
taking nothing. Exit codes: 0 good; 1 refused (credentials, grant, mailbox); 2 the server or the
token endpoint could not be reached; 78 a bad configuration.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from ..config import Config, ImapAccount
from ..errors import InboxDaemonError
from ..store import Store
from .common import EX_CONFIG, config_option, load, run, with_store

__all__ = ["imap"]


@click.group()
def imap() -> None:
    """IMAP accounts: grant OAuth 2.0 access, test a mailbox."""


def _account(cfg: Config, name: str) -> ImapAccount:
    for account in cfg.imap.accounts:
        if account.name == name:
            return account
    names = ", ".join(a.name for a in cfg.imap.accounts) or "none configured"
    click.echo(f"inbox-daemon: no imap account {name!r} ({names})", err=True)
    sys.exit(EX_CONFIG)


def _failed(account: ImapAccount, exc: BaseException) -> NoReturn:
    from ..intake.imap_client import ImapAuthError

    click.echo(f"inbox-daemon: imap account {account.name}: {exc}", err=True)
    sys.exit(1 if isinstance(exc, ImapAuthError) else 2)


@imap.command("authorize")
@click.argument("name")
@config_option
def authorize(name: str, config_path: str | None) -> None:
    """Grant the daemon access to account NAME's mailbox (OAuth 2.0 device flow): open the
    address shown on any device, enter the code, sign in; the refresh token is stored in the
    account's token_file (0600)."""
    account = _account(load(config_path), name)
    if not account.oauth or account.grant != "refresh_token":
        click.echo(f"inbox-daemon: imap account {name} does not use auth = xoauth2|oauthbearer with "
                   "grant = refresh_token: nothing to authorize", err=True)
        sys.exit(EX_CONFIG)
    from ..intake.oauth import device_authorize, device_poll, save_token

    async def flow() -> None:
        grant = await device_authorize(account)
        click.echo(f"To let inbox-daemon read {account.username}: open {grant.verification_uri}")
        click.echo(f"and enter the code {grant.user_code}")
        if grant.verification_uri_complete:
            click.echo(f"(or open {grant.verification_uri_complete})")
        click.echo(f"Waiting for the approval (up to {int(grant.expires_in // 60)} minutes)...", err=True)
        refresh = await device_poll(account, grant)
        save_token(account.token_file, refresh)

    try:
        run(flow())
    except InboxDaemonError as exc:
        _failed(account, exc)
    click.echo(f"refresh token stored in {account.token_file} (mode 0600)")


@imap.command("test")
@click.argument("name")
@with_store
async def test(store: Store, name: str, cfg: Config) -> None:
    """Connect to account NAME, sign in, select its mailbox, and print how many messages it
    holds and how many the next poll would take (nothing is taken or flagged)."""
    account = _account(cfg, name)
    from ..intake.imap_auth import sign_in_for
    from ..intake.imap_client import ImapConnection

    conn = ImapConnection(account, command_timeout=30.0, connect_timeout=15.0)
    try:
        await conn.open()
        await sign_in_for(account)(conn)
        uidvalidity = await conn.select(account.mailbox)
        uids = await conn.uids_after(0)
        position = await store.imap_position(account.name, account.mailbox)
        last = position.last_uid if position is not None and position.uidvalidity == uidvalidity else 0
        waiting = sum(1 for uid in uids if uid > last)
    except (InboxDaemonError, OSError, TimeoutError) as exc:
        await conn.close(logout=False, timeout=3.0)
        _failed(account, _plain(exc))
    await conn.close(logout=True, timeout=3.0)
    click.echo(f"{account.name}: signed in to {account.host}:{account.port} as {account.username} ({account.auth})")
    click.echo(f"{account.mailbox}: {len(uids)} messages; the next poll would take {waiting}")


def _plain(exc: BaseException) -> Any:
    """OSError and timeouts as a one-line reason (a refused connection, a TLS failure)."""
    if isinstance(exc, InboxDaemonError):
        return exc
    return InboxDaemonError(f"{type(exc).__name__}: {exc}")
