"""``TrustRepository``: the trust and review methods of ``Store`` (issue 5), kept apart from
``repository`` so that each module stays readable. Every method is one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.notices.result import Buyer, ParseResult

from . import review, trust
from .audit import audit_rows
from .records import Applied
from .trust_records import AuditEntry, EvidenceDetail, HeldRow, Imported, MonthFigures, SellerRow
from .trust_tables import MessageTrust

__all__ = ["TrustRepository"]

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


class TrustRepository:
    """Mixed into ``Store``, which provides the two transaction helpers."""

    _transaction: Callable[[Callable[[AsyncSession], Awaitable[Any]]], Awaitable[Any]]
    _reading: Callable[[Callable[[AsyncSession], Awaitable[Any]]], Awaitable[Any]]

    # -- sellers and forwarders --------------------------------------------------------------

    async def add_seller(self, name: str, forwarders: Sequence[str] = (), *, who: str) -> SellerRow:
        """A seller with a fresh token and its forwarders (ValueError if it exists)."""
        row: SellerRow = await self._transaction(lambda s: trust.add_seller(s, name, forwarders, who, _now()))
        return row

    async def remove_seller(self, name: str, *, who: str) -> None:
        await self._transaction(lambda s: trust.remove_seller(s, name, who, _now()))

    async def list_sellers(self) -> list[SellerRow]:
        rows: list[SellerRow] = await self._reading(lambda s: trust.sellers(s))
        return rows

    async def get_seller(self, name: str) -> SellerRow | None:
        found: list[SellerRow] = await self._reading(lambda s: trust.sellers(s, name))
        return found[0] if found else None

    async def add_forwarder(self, seller: str, address: str, *, who: str) -> None:
        await self._transaction(lambda s: trust.add_forwarder(s, seller, address, who, _now()))

    async def remove_forwarder(self, address: str, *, who: str) -> None:
        await self._transaction(lambda s: trust.remove_forwarder(s, address, who, _now()))

    async def seller_figures(self, seller_id: int) -> list[MonthFigures]:
        rows: list[MonthFigures] = await self._reading(lambda s: review.figures(s, seller_id))
        return rows

    # -- quarantine ----------------------------------------------------------------------------

    async def list_held(self, outcomes: Sequence[str] = review.UNAPPLIED, limit: int = 50) -> list[HeldRow]:
        rows: list[HeldRow] = await self._reading(lambda s: review.held_rows(s, outcomes, limit))
        return rows

    async def get_held(self, raw_id: int) -> HeldRow | None:
        rows: list[HeldRow] = await self._reading(lambda s: review.held_rows(s, (), 1, raw_id))
        return rows[0] if rows else None

    async def trust_of(self, raw_id: int) -> dict[str, Any] | None:
        """What the admission step recorded about a message (None: never assessed)."""

        async def work(session: AsyncSession) -> dict[str, Any] | None:
            columns = list(MessageTrust.__table__.columns)
            found = (await session.execute(select(*columns).where(MessageTrust.raw_message_id == raw_id))).mappings()
            row = found.one_or_none()
            return None if row is None else dict(row)

        result: dict[str, Any] | None = await self._reading(work)
        return result

    async def reprocess_ids(self, parser_version: str, *, every: bool = False, after: int = 0, limit: int = 1000) -> list[int]:
        ids: list[int] = await self._reading(lambda s: review.reprocess_ids(s, parser_version, every, after, limit))
        return ids

    async def approve(self, raw_id: int, result: ParseResult, *, parser_version: str, who: str) -> Applied:
        """Apply a held notice (LookupError: no such message; ValueError: not held, or it no
        longer parses as an opt-out)."""
        applied: Applied = await self._transaction(
            lambda s: review.approve(s, raw_id, result, parser_version, who, _now())
        )
        return applied

    async def discard(self, raw_id: int, *, who: str, reason: str) -> None:
        await self._transaction(lambda s: review.discard(s, raw_id, who, reason, _now()))

    # -- evidence, audit, imports ----------------------------------------------------------------

    async def evidence_details(self, opt_out_id: int) -> list[EvidenceDetail]:
        rows: list[EvidenceDetail] = await self._reading(lambda s: review.evidence_details(s, opt_out_id))
        return rows

    async def audit_log(self, *, opt_out_ids: Sequence[int] = (), limit: int = 100) -> list[AuditEntry]:
        rows: list[AuditEntry] = await self._reading(lambda s: audit_rows(s, opt_out_ids=opt_out_ids, limit=limit))
        return rows

    async def import_buyers(
        self, data: bytes, name: str, buyers: list[Buyer], skipped: list[str], *, who: str
    ) -> Imported:
        """Apply buyers read from a CSV file, keeping the file as their evidence."""
        done: Imported = await self._transaction(
            lambda s: review.import_buyers(s, data, name, buyers, skipped, who, _now())
        )
        return done
