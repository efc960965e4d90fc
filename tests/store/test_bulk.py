"""Bulk writes: the ids of inserted rows come back for exactly those rows, and datetimes are
written as the same text every other write path gives them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from inbox_daemon.store import Store, bulk
from inbox_daemon.store.schema import OptOut, table

OPT_OUTS = table(OptOut)
COLUMNS = ("order_id", "email", "marketplace", "first_seen", "last_seen", "notice_count", "active")


def _row(n: int, at: datetime) -> tuple[Any, ...]:
    return (f"{n:032x}", f"{n + 10**6:032x}", "www.amazon.com", at, at, 1, True)


def test_insert_returning_gives_back_the_new_rows_only(with_store: Callable[..., Any]) -> None:
    """Rows already in the table (and one deleted at its end, whose id SQLite may hand out
    again) are never among those returned; each new row comes back with its own keys."""
    at = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)

    async def body(store: Store) -> None:
        async with store._write() as session, session.begin():
            first = await bulk.insert_returning(session, OPT_OUTS, COLUMNS, [_row(n, at) for n in range(3)],
                                                ("id", "order_id"))
            await session.execute(OPT_OUTS.delete().where(OPT_OUTS.c.id == max(i for i, _ in first)))
            new = [_row(n, at) for n in range(100, 1100)]
            back = await bulk.insert_returning(session, OPT_OUTS, COLUMNS, new, ("id", "order_id", "email"))
            assert sorted((o, e) for _, o, e in back) == sorted((r[0], r[1]) for r in new)
            stored = {o: i for i, o in await session.execute(select(OPT_OUTS.c.id, OPT_OUTS.c.order_id))}
            assert all(stored[o] == i for i, o, _ in back)
            assert len({i for i, _, _ in back}) == len(new)

    with_store(body)


def test_datetimes_written_in_bulk_read_as_the_orm_writes_them(with_store: Callable[..., Any]) -> None:
    """A timestamp written in bulk and the same one written through the ORM are stored alike
    (SQLite keeps text; min/max and ORDER BY compare it), with and without microseconds."""
    moments = [datetime(2026, 12, 7, 5, 0, 0, 0, tzinfo=UTC), datetime(2026, 12, 7, 5, 0, 0, 123456, tzinfo=UTC)]

    async def body(store: Store) -> None:
        async with store._write() as session, session.begin():
            await bulk.insert_rows(session, OPT_OUTS, COLUMNS, [_row(n, at) for n, at in enumerate(moments)])
            for n, at in enumerate(moments, start=10):
                session.add(OptOut(order_id=f"{n:032x}", email=None, marketplace=None, first_seen=at, last_seen=at,
                                   notice_count=1, active=True))
            await session.flush()
            if session.get_bind().dialect.name == "sqlite":
                raw = [r[0] for r in await session.execute(text("SELECT first_seen FROM opt_outs ORDER BY id"))]
                assert raw[:2] == raw[2:], raw
            back = [r[0] for r in await session.execute(select(OPT_OUTS.c.first_seen).order_by(OPT_OUTS.c.id))]
            assert back == moments + moments

    with_store(body)


def test_update_rows_sets_each_row_by_its_key_and_no_other(with_store: Callable[..., Any]) -> None:
    """Each row's values land on the row its key names, converted as the column's type
    converts them (a NUL in text replaced, which PostgreSQL would refuse; a datetime as every
    write path stores it); rows
    not named, and keys no row has, change nothing."""
    at = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    later = datetime(2026, 12, 8, 6, 30, 0, 250000, tzinfo=UTC)

    async def body(store: Store) -> None:
        async with store._write() as session, session.begin():
            ids = [i for i, in await bulk.insert_returning(session, OPT_OUTS, COLUMNS, [_row(n, at) for n in range(4)], ("id",))]
            ids.sort()
            await bulk.update_rows(session, OPT_OUTS, "id", ("marketplace", "last_seen", "notice_count"), [
                (ids[1], "www.amazon\x00.de", later, 7), (ids[3], None, later, 9), (10**9, "nowhere", later, 1)])
            rows = {r.id: (r.marketplace, r.last_seen, r.notice_count) for r in await session.execute(
                select(OPT_OUTS.c.id, OPT_OUTS.c.marketplace, OPT_OUTS.c.last_seen, OPT_OUTS.c.notice_count))}
            assert rows == {ids[0]: ("www.amazon.com", at, 1), ids[1]: ("www.amazon\ufffd.de", later, 7),
                            ids[2]: ("www.amazon.com", at, 1), ids[3]: (None, later, 9)}
            assert await session.scalar(select(OPT_OUTS.c.id).where(OPT_OUTS.c.last_seen > at).order_by(OPT_OUTS.c.id)) == ids[1]

    with_store(body)
