"""How far each IMAP poller got: per account and mailbox, the UIDVALIDITY it read under and the
highest UID that was stored durably *and* then flagged or moved (issue 4, point 2).

A message is stored before it is flagged and the position advances only after the flag, so a
crash in between leaves the message above ``last_uid``: it is fetched and stored again (the
sha256 dedupe makes that a no-op) and flagged then. No per-UID table is needed for that.
A different UIDVALIDITY means the UIDs mean nothing any more (RFC 3501 section 2.3.1.1): the
poller starts again from UID 1 under the new value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from .engine import WRITE, retrying
from .tables import Base, UTCDateTime

__all__ = ["ImapStateRow", "Position", "ImapProgress"]


class ImapStateRow(Base):
    """One row per polled account and mailbox (migration 0002)."""

    __tablename__ = "imap_state"

    account: Mapped[str] = mapped_column(String(200), primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(1000), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)  # 32-bit unsigned on the wire
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class Position:
    uidvalidity: int
    last_uid: int  # every UID up to this one is stored and flagged or moved


class ImapProgress:
    """The pollers' positions, read and written in short transactions of their own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self, account: str, mailbox: str) -> Position | None:
        async def attempt() -> Position | None:
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(ImapStateRow.uidvalidity, ImapStateRow.last_uid).where(
                            ImapStateRow.account == account, ImapStateRow.mailbox == mailbox
                        )
                    )
                ).one_or_none()
            return None if row is None else Position(int(row[0]), int(row[1]))

        return await retrying(attempt)

    async def save(self, account: str, mailbox: str, position: Position) -> None:
        """Upsert the position: StoreUnavailable if it cannot be committed."""

        async def attempt() -> None:
            insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
            values = {
                "uidvalidity": position.uidvalidity,
                "last_uid": position.last_uid,
                "updated_at": datetime.now(UTC),
            }
            statement = (
                insert(ImapStateRow)
                .values(account=account, mailbox=mailbox, **values)
                .on_conflict_do_update(index_elements=["account", "mailbox"], set_=values)
            )
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(**{WRITE: True})
                async with conn.begin():
                    await conn.execute(statement)

        await retrying(attempt)
