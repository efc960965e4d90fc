"""``users`` (who may log in to the web pages, with a role) and ``tokens`` (bearer tokens of
the HTTP API). Passwords and tokens are kept only as hashes (``inbox_daemon.web.auth``)."""

from __future__ import annotations

import sys

import click

from ..store import Store
from .common import by_option, emit, iso, json_option, refusable, who as login, with_store

__all__ = ["users", "tokens"]


def _read_password() -> str:
    """Prompted twice on a terminal; else the first line of standard input."""
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


@click.group()
def users() -> None:
    """Who may use the web pages: viewers read, operators also approve, discard and change."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True)
@by_option
@with_store
async def users_add(store: Store, name: str, role: str, who: str | None) -> None:
    """Add user NAME, or set its password and role; the password is asked for (or read from
    standard input when that is not a terminal)."""
    from ..web.auth import hash_password

    password = _read_password()
    if len(password) < 8:
        raise click.UsageError("a password of at least 8 characters")
    new = await refusable(store.set_user(name, role, hash_password(password), who=login(who)))
    click.echo(f"{'added' if new else 'updated'} user {name} ({role})")


@users.command("list")
@json_option
@with_store
async def users_list(store: Store, as_json: bool) -> None:
    """List users: name, role, created, disabled (never the hash)."""
    for row in await store.list_users():
        state = f"disabled {iso(row.disabled_at)}" if row.disabled_at else "active"
        emit(row, f"{row.name}\t{row.role}\t{iso(row.created_at)}\t{state}", as_json)


@users.command("disable")
@click.argument("name")
@by_option
@with_store
async def users_disable(store: Store, name: str, who: str | None) -> None:
    """Disable user NAME: its sessions end at their next request."""
    await refusable(store.disable_user(name, who=login(who)))
    click.echo(f"disabled user {name}")


@click.group()
def tokens() -> None:
    """Bearer tokens of the HTTP API (``/v1/check``)."""


@tokens.command("add")
@click.argument("name")
@by_option
@with_store
async def tokens_add(store: Store, name: str, who: str | None) -> None:
    """Make token NAME and print it once: only its hash is kept."""
    from ..web.auth import new_token, token_digest

    token = new_token()
    await refusable(store.add_token(name, token_digest(token), who=login(who)))
    click.echo(token)


@tokens.command("list")
@json_option
@with_store
async def tokens_list(store: Store, as_json: bool) -> None:
    """List tokens: name, created, revoked (never the token)."""
    for row in await store.list_tokens():
        state = f"revoked {iso(row.revoked_at)}" if row.revoked_at else "active"
        emit(row, f"{row.name}\t{iso(row.created_at)}\t{state}", as_json)


@tokens.command("revoke")
@click.argument("name")
@by_option
@with_store
async def tokens_revoke(store: Store, name: str, who: str | None) -> None:
    """Revoke token NAME: refused from the next request on."""
    await refusable(store.revoke_token(name, who=login(who)))
    click.echo(f"revoked token {name}")
