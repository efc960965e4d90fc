"""Engines for the two supported databases, and the line between "the database is down" (a
temporary failure the SMTP client retries) and a bug.

SQLite is the embedded default: WAL, ``synchronous=FULL`` (an acknowledged message survives
power loss, https://www.sqlite.org/pragma.html#pragma_synchronous), foreign keys on, and writes
start with ``BEGIN IMMEDIATE`` so that a writer waits on ``busy_timeout`` instead of failing
with SQLITE_BUSY when its read snapshot turns out stale. PostgreSQL goes through asyncpg.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, exc, func, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from inbox_daemon.errors import StoreRefused, StoreUnavailable

__all__ = [
    "WRITE",
    "async_url",
    "make_engine",
    "unavailable",
    "retrying",
    "is_transient",
    "is_refused",
    "driver_message",
    "chunks",
    "utcnow",
    "Listening",
    "listen",
    "LISTEN_APPLICATION",
    "import_page_cache",
    "Lane",
    "ReadLane",
    "WriteLane",
]

T = TypeVar("T")

#: Execution option that marks a connection as about to write (SQLite: BEGIN IMMEDIATE).
WRITE = "inbox_daemon_write"

SQLITE_BUSY_TIMEOUT_MS = 10_000
# The page cache of a connection that imports a buyer list: an import reads and extends the key
# indexes at random (keys are pseudonyms), about 100 MiB of index pages for a million buyers; a
# cache that holds them spares reading a page from the file per key (bench/import.py --csv). Taken
# only as pages are read; SQLite's own default (2 MiB) is restored when the import ends.
SQLITE_IMPORT_CACHE_KIB = 256 * 1024
SQLITE_DEFAULT_CACHE_KIB = 2000  # SQLITE_DEFAULT_CACHE_SIZE (https://www.sqlite.org/pragma.html#pragma_cache_size)
PG_CONNECT_TIMEOUT_S = 5.0
# No statement cache: a cached sqlite3 statement keeps the values last bound to it
# (sqlite3_reset does not clear bindings, and the module never calls sqlite3_clear_bindings), so
# each cached multi-row INSERT of raw messages held a copy of its last batch: 300+ MiB after a
# burst of 10 MiB messages (bench/flood.py).
SQLITE_CONNECT_ARGS = {"cached_statements": 0}

# PostgreSQL SQLSTATEs worth one more try: serialization failure, deadlock, unique violation
# (two daemons inserting the same order id at once; the retry finds the other's row).
RETRY_SQLSTATES = frozenset({"40001", "40P01", "23505"})
RETRIES = 3
CHUNK = 500  # values per IN (...): well under SQLite's and asyncpg's parameter limits


def chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    """``values`` in lists of at most CHUNK, in their order."""
    ordered = list(values)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


#: ``application_name`` of the LISTEN connections: operators (and tests) find them in pg_stat_activity.
LISTEN_APPLICATION = "inbox-daemon listen"


class Listening:
    """A dedicated connection LISTENing on one channel; ``lost`` is set once it is gone."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.lost = asyncio.Event()
        connection.add_termination_listener(lambda _conn: self.lost.set())

    async def close(self) -> None:
        """Close it (at once if the server is gone: never wait on a dead peer)."""
        if not self._connection.is_closed():
            try:
                await asyncio.wait_for(self._connection.close(), PG_CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError):
                self._connection.terminate()
        self.lost.set()


async def listen(engine: AsyncEngine, channel: str, notified: Callable[[], None]) -> Listening | None:
    """PostgreSQL: a connection of its own, outside the pool, that calls ``notified`` on each
    NOTIFY on ``channel`` (https://www.postgresql.org/docs/current/sql-listen.html;
    notifications arrive only when the notifying transaction commits). None on SQLite, which
    has no notifications across processes: its followers poll. StoreUnavailable when the
    server cannot be reached."""
    if engine.dialect.name != "postgresql":
        return None
    import asyncpg  # type: ignore[import-untyped]  # the PostgreSQL driver, present wherever a postgresql URL works

    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    async with unavailable():
        connection = await asyncpg.connect(
            dsn, timeout=PG_CONNECT_TIMEOUT_S, server_settings={"application_name": LISTEN_APPLICATION})
        try:
            await connection.add_listener(channel, lambda *_: notified())
        except BaseException:
            connection.terminate()
            raise
    return Listening(connection)


def utcnow() -> datetime:
    """The time every row of one transaction is stamped with (aware UTC)."""
    return datetime.now(UTC)


async def database_clock(session: AsyncSession) -> datetime:
    """Now, by the clock every daemon sharing this database agrees on: PostgreSQL's
    (``clock_timestamp()``), so leases and claims run out alike whatever the hosts' clocks say;
    SQLite belongs to one host, whose clock it is."""
    if session.get_bind().dialect.name == "postgresql":
        moment: datetime = (await session.execute(select(func.clock_timestamp()))).scalar_one()
        return moment
    return utcnow()


def async_url(url: str | URL) -> URL:
    """Any SQLite URL to aiosqlite, any PostgreSQL one to asyncpg: the store is async only."""
    parsed = make_url(url)
    backend = parsed.drivername.partition("+")[0]  # "postgres" has no dialect to ask
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    return parsed


def make_engine(url: str | URL, *, pool_size: int = 5, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine with this project's connection settings (used by the store and Alembic)."""
    target = async_url(url)
    # Bound values are buyer data (relay addresses, order ids, message bytes): an error's text,
    # which reaches log lines, names the statement but never its parameters.
    kwargs.setdefault("hide_parameters", True)
    if target.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {**SQLITE_CONNECT_ARGS, **kwargs.get("connect_args", {})}
        engine = create_async_engine(target, **kwargs)
        _sqlite_events(engine.sync_engine)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", pool_size)
    kwargs.setdefault("pool_pre_ping", True)  # a restarted server must not cost a 451 per conn
    kwargs.setdefault("connect_args", {"timeout": PG_CONNECT_TIMEOUT_S})
    return create_async_engine(target, **kwargs)


async def import_page_cache(session: AsyncSession, importing: bool) -> None:
    """On SQLite, size the session's page cache for an import (``SQLITE_IMPORT_CACHE_KIB``), or
    back to SQLite's default when it ends; nothing on PostgreSQL, whose server caches."""
    if session.get_bind().dialect.name == "sqlite":
        kib = SQLITE_IMPORT_CACHE_KIB if importing else SQLITE_DEFAULT_CACHE_KIB
        await session.execute(text(f"PRAGMA cache_size = -{kib}"))


class Lane:
    """SQLite transactions run whole in a thread, on a connection of their own: one hand-off to
    a thread per transaction. Through aiosqlite every statement, BEGIN and COMMIT included, is a
    hand-off and back through the event loop (bench/ingest.py): a write holds SQLite's one write
    lock for all those turns, and the SMTP process's writes wait behind it; a read costs the
    daemon's loop about twice what the statements themselves take."""

    def __init__(self, url: URL, *, write: bool, threads: int) -> None:
        self._write = write
        self._engine = create_engine(
            url.set(drivername="sqlite+pysqlite"), hide_parameters=True, pool_size=threads,
            connect_args={**SQLITE_CONNECT_ARGS, "check_same_thread": False},
        )
        _sqlite_events(self._engine, busy_timeout_ms=0 if write else SQLITE_BUSY_TIMEOUT_MS)
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="sqlite-write" if write else "sqlite-read")

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work`` in one transaction (a write: BEGIN IMMEDIATE, committed); StoreUnavailable
        when the database cannot be read or cannot commit, or its write lock is not free within
        the busy timeout."""

        def transaction() -> T:
            with self._engine.connect().execution_options(**{WRITE: self._write}) as conn, self._begun(conn):
                return work(conn)

        async with unavailable():
            return await asyncio.get_running_loop().run_in_executor(self._threads, transaction)

    def _begun(self, conn: Connection) -> Any:
        return _locked(conn) if self._write else conn.begin()

    def close(self) -> None:
        """Let the transactions under way end; those still queued are not started (their
        callers are told they were cancelled: nothing of them was written)."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        self._engine.dispose()


class WriteLane(Lane):
    """The write transactions, one at a time. The lock is asked for every LOCK_POLL_S instead
    of through ``busy_timeout``, whose sleeps grow to 100 ms: writes of a few milliseconds, from
    two processes, take turns as soon as the lock is free."""

    def __init__(self, url: URL) -> None:
        super().__init__(url, write=True, threads=1)


class ReadLane(Lane):
    """The read transactions, ``threads`` at once (WAL: a read never waits for the writer)."""

    def __init__(self, url: URL, threads: int = 4) -> None:
        super().__init__(url, write=False, threads=threads)


LOCK_POLL_S = 0.0005


def _locked(conn: Connection) -> Any:
    """``conn.begin()`` (BEGIN IMMEDIATE), asked again every LOCK_POLL_S while another
    connection holds the write lock, for up to SQLITE_BUSY_TIMEOUT_MS.

    The asking is done on the driver's connection: a refusal there is one C call and a
    ``sqlite3.OperationalError``, where through SQLAlchemy it is an event, a wrapped error and a
    rollback, about 0.1 ms of CPU each, and a waiting writer asks thousands of times a second
    while the SMTP process and the daemon take turns (bench/ingest.py). ``_on_begin`` then sees
    the driver's transaction open and leaves it; any other error, or the deadline, falls through
    to ``conn.begin()``, which raises it as SQLAlchemy does."""
    driver = conn.connection.dbapi_connection
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while driver is not None and time.monotonic() <= deadline:
        try:
            driver.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                break
        time.sleep(LOCK_POLL_S)
    return conn.begin()


def _sqlite_events(engine: Engine, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module so that _on_begin decides its kind
        # (SQLAlchemy docs, "Enabling Non-Legacy SQLite Transactional Modes").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            f"busy_timeout={busy_timeout_ms}",
            "foreign_keys=ON",
            # Deleted and rewritten content is overwritten with zeros, not left in free space:
            # purged or newly sealed buyer data must not linger in the file
            # (https://www.sqlite.org/pragma.html#pragma_secure_delete).
            "secure_delete=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE, False)
        if immediate and getattr(conn.connection.dbapi_connection, "in_transaction", False):  # ``_locked`` began it
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _driver_errors(error: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """The driver's own error and its cause: SQLAlchemy wraps the DB-API error, whose cause is
    the asyncpg exception under SQLAlchemy's asyncpg adapter."""
    orig = error.orig if isinstance(error, exc.DBAPIError) else error
    return orig, getattr(orig, "__cause__", None)


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error (wrapped by SQLAlchemy or raised by asyncpg itself)."""
    for source in _driver_errors(error):
        code = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


# Transient PostgreSQL conditions (https://www.postgresql.org/docs/current/errcodes-appendix.html),
# by class: 08 connection exception, 40 transaction rollback (serialization, deadlock),
# 53 insufficient resources (53300 too many connections), 57 operator intervention (57P01
# admin shutdown, 57P03 cannot connect now), 58 system error; and single codes: 55000 (a
# database not accepting connections), 55006 (object in use), 55P03 (lock not available).
TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
TRANSIENT_STATES = frozenset({"55000", "55006", "55P03"})


def is_transient(error: BaseException) -> bool:
    """True when the database could not be reached or could not commit for a reason that
    passes (the sender should retry); False for a bug or a fault of the data itself."""
    if isinstance(error, StoreUnavailable):
        return True
    state = _sqlstate(error)
    if state is not None:
        return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES
    if _protocol_broken(error):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        # OperationalError covers SQLite "database is locked"/"unable to open" and the
        # PostgreSQL connection-class failures; InterfaceError a connection closed under us.
        return isinstance(error, (exc.OperationalError, exc.InterfaceError))
    # Pool checkout timeouts, refused or reset sockets, connect timeouts, asyncpg's own
    # connection errors before SQLAlchemy wraps them.
    if isinstance(error, (exc.TimeoutError, OSError, asyncio.TimeoutError)):
        return True
    return type(error).__module__.startswith("asyncpg") and "Connection" in type(error).__name__


def _protocol_broken(error: BaseException) -> bool:
    """asyncpg's InternalClientError (raw or under SQLAlchemy's wrapper): the connection's
    protocol state is not one a statement can start from. A server that is stopping sends
    FATAL 57P01 unasked; a statement sent while asyncpg still consumes it fails with "cannot
    switch to state 12; another operation (2) is in progress" (seen on LISTEN during a
    PostgreSQL shutdown). A new connection is the cure, so it passes."""
    return any(type(source).__name__ in ("InternalClientError", "ProtocolError")
               and type(source).__module__.startswith("asyncpg")
               for source in _driver_errors(error))


# The server answered and refused who we are or what we asked for: class 28 invalid
# authorization (28P01 wrong password, 28000 no such role), 3D000 no such database.
REFUSED_CLASSES = frozenset({"28"})
REFUSED_STATES = frozenset({"3D000"})


def is_refused(error: BaseException) -> bool:
    """True when the database refused the connection for a reason of the configuration."""
    state = _sqlstate(error)
    return state is not None and (state[:2] in REFUSED_CLASSES or state in REFUSED_STATES)


def driver_message(error: BaseException) -> str:
    """The driver's own one-line reason, without SQLAlchemy's statement, parameters and link
    (a line for a log or a terminal; the drivers never put a password in it)."""
    orig = error.orig if isinstance(error, exc.DBAPIError) and error.orig is not None else error
    text = str(orig).strip().splitlines()
    return (text[0] if text else type(orig).__name__)[:300]


@asynccontextmanager
async def unavailable() -> AsyncIterator[None]:
    """Turn "cannot reach or commit to the database" into StoreUnavailable and "the database
    refuses these credentials" into StoreRefused; let bugs through."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as error:
        if is_transient(error):
            raise StoreUnavailable(f"database unavailable: {driver_message(error)}") from error
        if is_refused(error):
            raise StoreRefused(f"database refused the connection: {driver_message(error)}") from None
        raise


async def retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run one whole transaction, again when PostgreSQL says a concurrent one got in its way;
    StoreUnavailable when the database cannot be reached."""
    async with unavailable():
        for remaining in range(RETRIES, 0, -1):
            try:
                return await attempt()
            except exc.DBAPIError as error:
                if remaining == 1 or _sqlstate(error) not in RETRY_SQLSTATES:
                    raise
    raise AssertionError("unreachable")
