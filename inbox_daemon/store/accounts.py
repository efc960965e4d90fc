"""Web users and HTTP API tokens: kept hashed (the caller hashes; the store never sees a
password or a token in the clear), every change audited.

Functions take an open session and never commit; ``Store`` owns the transactions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .audit import audit
from .records import ApiTokenRow, WebUserRow
from .schema import ROLES, ApiToken, WebUser

__all__ = ["set_user", "user", "users", "disable_user", "add_token", "token_name", "tokens", "revoke_token"]


def _row(u: WebUser) -> WebUserRow:
    return WebUserRow(u.name, u.role, u.password_hash, u.created_at, u.disabled_at)


async def set_user(session: AsyncSession, name: str, role: str, password_hash: str, who: str, now: datetime) -> bool:
    """Add the user, or give an existing one a new password and role (enabled again). True: new."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 200 or any(c <= " " or c == "\x7f" for c in name):
        raise ValueError("a user name is 1-200 printable characters without spaces")
    found = await session.get(WebUser, name, with_for_update=True)
    if found is None:
        session.add(WebUser(name=name, role=role, password_hash=password_hash, created_at=now))
    else:
        found.role, found.password_hash, found.disabled_at = role, password_hash, None
    await audit(session, [{"actor": who, "action": "user_add" if found is None else "user_change",
                           "subject": name, "detail": f"role {role}"}], now)
    return found is None


async def user(session: AsyncSession, name: str) -> WebUserRow | None:
    found = await session.get(WebUser, name)
    return None if found is None else _row(found)


async def users(session: AsyncSession) -> list[WebUserRow]:
    return [_row(u) for u in await session.scalars(select(WebUser).order_by(WebUser.name))]


async def disable_user(session: AsyncSession, name: str, who: str, now: datetime) -> None:
    found = await session.get(WebUser, name, with_for_update=True)
    if found is None or found.disabled_at is not None:
        raise LookupError(f"no user {name!r}")
    found.disabled_at = now
    await audit(session, [{"actor": who, "action": "user_disable", "subject": name}], now)


async def add_token(session: AsyncSession, name: str, token_sha256: str, who: str, now: datetime) -> None:
    if not name or len(name) > 200:
        raise ValueError("a token name is 1-200 characters")
    if await session.get(ApiToken, name) is not None:
        raise ValueError(f"token {name!r} exists (revoke it first)")
    session.add(ApiToken(name=name, token_sha256=token_sha256, created_at=now))
    await audit(session, [{"actor": who, "action": "token_add", "subject": name}], now)


async def token_name(session: AsyncSession, token_sha256: str) -> str | None:
    """The name of the live token with this hash, or None."""
    return await session.scalar(
        select(ApiToken.name).where(ApiToken.token_sha256 == token_sha256, ApiToken.revoked_at.is_(None))
    )


async def tokens(session: AsyncSession) -> list[ApiTokenRow]:
    found = await session.scalars(select(ApiToken).order_by(ApiToken.name))
    return [ApiTokenRow(t.name, t.created_at, t.revoked_at) for t in found]


async def revoke_token(session: AsyncSession, name: str, who: str, now: datetime) -> None:
    found = await session.get(ApiToken, name, with_for_update=True)
    if found is None or found.revoked_at is not None:
        raise LookupError(f"no token {name!r}")
    found.revoked_at = now
    await audit(session, [{"actor": who, "action": "token_revoke", "subject": name}], now)
