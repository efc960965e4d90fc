"""Raw messages sealed at rest: how their bytes are sealed and opened, and the bounded batch
that seals them again under the current data key (key rotation, and rows kept plain before
sealing existed).

Every value is sealed with ``KeyRing.encrypt`` (AES-256-GCM) for a context that names the
column and the row's sha256: a sealed value copied onto another row, or into another column,
does not open. ``raw_messages.key_id`` repeats the key id the value carries, so rotation finds
what it still has to do with an index-free walk over the primary key and can stop and resume
at any batch. Functions take an open session and never commit; ``Store`` owns transactions.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.privacy import KeyRing, SealedDataError

from .schema import RawMessage

__all__ = ["seal_raw", "open_raw", "Resealed", "reseal_batch", "count_to_reseal", "key_ids_in_use"]


def _context(sha256: str) -> bytes:
    return b"raw_messages.data/" + sha256.encode("ascii")


def seal_raw(ring: KeyRing | None, data: bytes, sha256: str) -> tuple[bytes, str | None]:
    """``(stored bytes, key id)``: sealed under the ring's current key; plain without a ring
    (a Store opened without one: library use and tests, never the daemon or the CLI)."""
    if ring is None:
        return data, None
    return ring.encrypt(data, context=_context(sha256)), ring.current


def open_raw(
    ring: KeyRing | None, stored: bytes, key_id: str | None, sha256: str, purged: bool = False
) -> tuple[bytes, str | None]:
    """``(bytes, None)``, or ``(b"", why)`` when they cannot be read: purged, or sealed under a
    key this process does not hold. Never raises: one unreadable message is that message's
    error, not the batch's."""
    if purged:
        return b"", "purged by retention"
    if key_id is None:
        return stored, None
    if ring is None:
        return b"", f"sealed under data key {key_id!r} and no privacy key file is loaded"
    try:
        return ring.decrypt(stored, context=_context(sha256)), None
    except SealedDataError as error:
        return b"", str(error)


def _stale(current: str) -> object:
    """Rows whose bytes are kept but not under ``current``: plain ones included."""
    return (RawMessage.purged_at.is_(None)) & or_(RawMessage.key_id.is_(None), RawMessage.key_id != current)


@dataclass(frozen=True, slots=True)
class Resealed:
    """One batch: the last id looked at (resume after it), rows sealed again, rows skipped
    because they do not open here (sealed under a key this ring lacks)."""

    last_id: int
    resealed: int
    unreadable: int


async def reseal_batch(
    session: AsyncSession, ring: KeyRing, after: int, limit: int, *, plain_only: bool = False
) -> Resealed | None:
    """Seal again under the current key up to ``limit`` rows with ids above ``after``; None
    when none is left. ``plain_only``: only rows never sealed (what every daemon may do in the
    background without waiting for a key file to reach the others)."""
    due = RawMessage.purged_at.is_(None) & RawMessage.key_id.is_(None) if plain_only else _stale(ring.current)
    statement = (
        select(RawMessage.id, RawMessage.sha256, RawMessage.data, RawMessage.key_id)
        .where(RawMessage.id > after, due)  # type: ignore[arg-type]
        .order_by(RawMessage.id)
        .limit(limit)
        .with_for_update()
    )
    rows = list(await session.execute(statement))
    if not rows:
        return None
    done = unreadable = 0
    for raw_id, sha256, stored, key_id in rows:
        data, why = open_raw(ring, stored, key_id, sha256)
        if why is not None:
            unreadable += 1
            continue
        sealed, current = seal_raw(ring, data, sha256)
        changed = await session.execute(
            update(RawMessage)
            .where(RawMessage.id == raw_id, RawMessage.purged_at.is_(None))  # not purged meanwhile
            .values(data=sealed, key_id=current)
        )
        done += changed.rowcount  # type: ignore[attr-defined]
    return Resealed(int(rows[-1][0]), done, unreadable)


async def count_to_reseal(session: AsyncSession, current: str, *, plain_only: bool = False) -> int:
    due = RawMessage.key_id.is_(None) if plain_only else or_(RawMessage.key_id.is_(None), RawMessage.key_id != current)
    statement = select(func.count()).select_from(RawMessage).where(RawMessage.purged_at.is_(None), due)
    return int((await session.execute(statement)).scalar_one())


async def key_ids_in_use(session: AsyncSession) -> dict[str | None, int]:
    """Kept messages per data key (None: plain): which keys may be retired."""
    statement = (
        select(RawMessage.key_id, func.count()).where(RawMessage.purged_at.is_(None)).group_by(RawMessage.key_id)
    )
    return {k: int(n) for k, n in await session.execute(statement)}
