"""Many rows into one table in one statement or one driver-level ``executemany``, with each
value converted by its column's own type (``SafeString`` cleaning, ``UTCDateTime``) as
SQLAlchemy would, but once per distinct value in a run instead of once per row and column.

SQLite: the driver's ``executemany`` (one prepared statement, bound in C); when ids must come
back, the rows above the highest rowid before it are read back.
PostgreSQL: one ``INSERT ... SELECT * FROM unnest($1::type[], ...)`` per table and batch, one
round trip however many rows (https://www.postgresql.org/docs/current/functions-array.html).
Both run on the session's connection, inside its transaction. ``select_matching`` is the read
side: the rows whose key is among many values, with the values bound as one parameter (a JSON
array SQLite's ``json_each`` walks, https://www.sqlite.org/json1.html#jeach; an array for
PostgreSQL's ``= ANY``), one statement however many values, each found through the column's index.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Column, Row, Select, Table, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["insert_rows", "insert_returning", "select_matching", "update_rows"]

Processor = Callable[[Any], Any]


def _processed(values: Sequence[Any], processor: Processor | None) -> list[Any]:
    """``values`` through the column's bind processor; a value equal to the one before it is
    converted once (a batch's timestamps, actor and source repeat row after row)."""
    if processor is None:
        return list(values)
    out: list[Any] = []
    last_in: Any = object()
    last_out: Any = None
    for value in values:
        if value is not last_in and value != last_in:
            last_in, last_out = value, processor(value)
        out.append(last_out)
    return out


def _columns(dialect: Dialect, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The rows' values column by column, converted for the database as SQLAlchemy converts
    them for its own statements: by the column type's implementation for this dialect (on
    SQLite, a datetime becomes the text every other write path stores, microseconds always
    written, so equal moments compare equal)."""
    by_column = list(zip(*rows)) if rows else [() for _ in names]
    return [_processed(values, _bind_processor(dialect, table, name)) for name, values in zip(names, by_column)]


@functools.lru_cache(maxsize=1024)
def _bind_processor(dialect: Dialect, table: Table, name: str) -> Processor | None:
    """The column type's converter for this dialect, made once: making it (the type's dialect
    implementation, then its processor) cost more than converting a small batch's values."""
    processor: Processor | None = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _names(dialect: Dialect, table: Table, names: Sequence[str]) -> tuple[str, str]:
    quote = dialect.identifier_preparer.quote
    return dialect.identifier_preparer.format_table(table), ", ".join(quote(n) for n in names)


def _unnest(dialect: Dialect, table: Table, names: Sequence[str]) -> str:
    """PostgreSQL: ``INSERT INTO t (a, b) SELECT * FROM unnest(CAST(:p0 AS type[]), ...)``."""
    target, columns = _names(dialect, table, names)
    arrays = ", ".join(f"CAST(:p{n} AS {table.c[name].type.compile(dialect=dialect)}[])" for n, name in enumerate(names))
    return f"INSERT INTO {target} ({columns}) SELECT * FROM unnest({arrays})"


async def insert_rows(session: AsyncSession, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]],
                      on_conflict: str = "") -> None:
    """INSERT ``rows`` (tuples in the order of ``names``) into ``table``. ``on_conflict``: an
    upsert clause both dialects read alike (``ON CONFLICT (key) DO UPDATE SET ...``; PostgreSQL
    refuses one that reaches a row twice in a statement, so the rows' keys must differ)."""
    if not rows:
        return
    await session.flush()  # as ``session.execute`` would: rows these point at are written first
    connection = await session.connection()
    dialect = connection.dialect
    columns = _columns(dialect, table, names, rows)
    if dialect.name == "postgresql":
        statement = text(f"{_unnest(dialect, table, names)} {on_conflict}")
        await connection.execute(statement, {f"p{n}": c for n, c in enumerate(columns)})
        return
    target, listed = _names(dialect, table, names)
    marks = ", ".join("?" for _ in names)
    await connection.exec_driver_sql(f"INSERT INTO {target} ({listed}) VALUES ({marks}) {on_conflict}", list(zip(*columns)))


async def update_rows(session: AsyncSession, table: Table, key: str, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """UPDATE the rows of ``table`` whose ``key`` is each row's first value, setting ``names`` to
    the rest (tuples: the key, then the values in the order of ``names``). SQLite: one prepared
    UPDATE, bound by the driver for each row; PostgreSQL: ``UPDATE ... FROM unnest(...)``, one
    statement (the keys must differ)."""
    if not rows:
        return
    await session.flush()
    connection = await session.connection()
    dialect = connection.dialect
    every = (key, *names)
    columns = _columns(dialect, table, every, rows)
    target, _ = _names(dialect, table, every)
    quote = dialect.identifier_preparer.quote
    if dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(:p{n} AS {table.c[name].type.compile(dialect=dialect)}[])" for n, name in enumerate(every))
        given = ", ".join(f"v{n}" for n in range(len(every)))
        sets = ", ".join(f"{quote(name)} = v{n + 1}" for n, name in enumerate(names))
        statement = text(f"UPDATE {target} SET {sets} FROM unnest({arrays}) AS given({given}) WHERE {quote(key)} = v0")
        await connection.execute(statement, {f"p{n}": c for n, c in enumerate(columns)})
        return
    sets = ", ".join(f"{quote(name)} = ?" for name in names)
    ordered = list(zip(*columns[1:], columns[0]))  # the key binds last, in WHERE
    await connection.exec_driver_sql(f"UPDATE {target} SET {sets} WHERE {quote(key)} = ?", ordered)


async def insert_returning(
    session: AsyncSession, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]], returning: Sequence[str]
) -> list[tuple[Any, ...]]:
    """INSERT ``rows`` and return the ``returning`` columns of each new row, in no promised
    order (SQLite documents none for RETURNING): callers match them by their values."""
    if not rows:
        return []
    await session.flush()
    connection = await session.connection()
    dialect = connection.dialect
    columns = _columns(dialect, table, names, rows)
    _, back = _names(dialect, table, returning)
    if dialect.name == "postgresql":
        statement = text(f"{_unnest(dialect, table, names)} RETURNING {back}")
        result = await connection.execute(statement, {f"p{n}": c for n, c in enumerate(columns)})
        return [tuple(r) for r in result]
    # SQLite: one prepared INSERT for every row, then the rows above the highest rowid before it.
    # The transaction holds the database's write lock from its first write (BEGIN IMMEDIATE,
    # engine.WRITE) or fails to take it, so no other writer's rows can be among them; a new
    # rowid is one more than the largest (https://www.sqlite.org/autoinc.html). Multi-row
    # ``VALUES ... RETURNING`` pages cost three times as much per row (bench/import.py --csv).
    target, listed = _names(dialect, table, names)
    marks = ", ".join("?" for _ in names)
    top = (await connection.exec_driver_sql(f"SELECT coalesce(max(rowid), 0) FROM {target}")).scalar()
    await connection.exec_driver_sql(f"INSERT INTO {target} ({listed}) VALUES ({marks})", list(zip(*columns)))
    result = await connection.exec_driver_sql(f"SELECT {back} FROM {target} WHERE rowid > ?", (top,))
    return [tuple(r) for r in result]


async def select_matching(
    session: AsyncSession, columns: Sequence[Column[Any]], key: Column[Any], values: Collection[Any], *, lock: bool = False
) -> list[Row[Any]]:
    """``columns`` of the rows of ``key``'s table whose ``key`` is one of ``values``;
    ``lock``: locked against concurrent change of their keys (PostgreSQL FOR NO KEY UPDATE)."""
    if not values:
        return []
    dialect = (await session.connection()).dialect.name
    given = list(values) if dialect == "postgresql" else json.dumps(list(values))
    return list(await session.execute(_matching(tuple(columns), key, dialect, lock), {"matching": given}))


@functools.cache
def _matching(columns: tuple[Column[Any], ...], key: Column[Any], dialect: str, lock: bool) -> Select[Any]:
    """The statement of ``select_matching``, built once: building a select with its join and
    working out its cache key cost more than running it (the SMTP process reads its batch back
    with it under SQLite's write lock)."""
    if dialect == "postgresql":
        statement = select(*columns).where(key == any_(bindparam("matching", type_=ARRAY(key.type))))
    else:
        given = func.json_each(bindparam("matching")).table_valued("value").alias("given")
        statement = select(*columns).join_from(given, key.table, key == given.c.value)
    return statement.with_for_update(key_share=True) if lock else statement
