"""The audit trail: one row per change to the blocklist or the registry, written in the
changing transaction. Who (a login name, or ``intake``), when, what, why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import bulk
from .records import AuditEntry
from .schema import AuditRow, table

__all__ = ["audit", "audit_rows"]

_TABLE = table(AuditRow)


async def audit(session: AsyncSession, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Write audit rows (dicts of AuditRow columns; ``at`` defaults to now)."""
    if rows:
        others = [k for k in dict.fromkeys(chain.from_iterable(rows)) if k != "at"]  # every row's keys, in order
        values = [(r.get("at", now), *map(r.get, others)) for r in rows]
        await bulk.insert_rows(session, _TABLE, ["at", *others], values)


async def audit_rows(
    session: AsyncSession, *, opt_out_ids: Sequence[int] = (), limit: int = 100, offset: int = 0,
    actor: str | None = None, action: str | None = None,
) -> list[AuditEntry]:
    """The newest audit rows (of one actor, one action), or those of some opt-outs (oldest first then)."""
    columns = [c for c in AuditRow.__table__.columns]
    statement = select(*columns)
    if actor is not None:
        statement = statement.where(AuditRow.actor == actor)
    if action is not None:
        statement = statement.where(AuditRow.action == action)
    if opt_out_ids:
        statement = statement.where(AuditRow.opt_out_id.in_(list(opt_out_ids))).order_by(AuditRow.id)
    else:
        statement = statement.order_by(AuditRow.id.desc())
    return [AuditEntry(**m) for m in (await session.execute(statement.limit(limit).offset(offset))).mappings()]
