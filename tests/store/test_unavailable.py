"""A database that cannot be reached or cannot commit raises StoreUnavailable (SMTP 451),
and the store works again once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from inbox_daemon.errors import StoreUnavailable
from inbox_daemon.store import Store
from tests.support.proxy import CuttableProxy

from .store_builders import save_raw


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket closes


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:{closed_port}/test",
        "sqlite:////nonexistent-dir/inbox.db",
    ],
)
def test_unreachable_database(url: str, run: Any) -> None:
    url = url.format(closed_port=closed_port())  # picked at run time: collection is the same in every worker

    async def body() -> None:
        async with await Store.open(url) as store:
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await save_raw(store, b"x", source="smtp")
            with pytest.raises(StoreUnavailable):
                await store.changes_since(await store.change_cursor())
        await asyncio.to_thread(_join_aiosqlite_threads)

    run(body())


def _join_aiosqlite_threads() -> None:
    """aiosqlite stops the thread of a connection that failed to open without waiting for it
    (aiosqlite/core.py ``_connect``); it then reports to the event loop, which must still be
    open, or the thread dies with "Event loop is closed" inside a later test."""
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=5)


def test_a_missing_schema_means_retry_later(sqlite_url: str, run: Any) -> None:
    """An unmigrated database is an operator error, but to SMTP it is the same: retry later."""

    async def body() -> None:
        async with await Store.open(sqlite_url) as store:
            await store.ping()
            with pytest.raises(StoreUnavailable, match="no such table"):
                await save_raw(store, b"x", source="smtp")

    run(body())


def test_postgresql_going_away_and_coming_back(pg_db_url: str, run: Any) -> None:
    target = make_url(pg_db_url)
    proxy = CuttableProxy((target.host or "127.0.0.1", target.port or 5432))
    url = target.set(port=proxy.port).render_as_string(hide_password=False)

    async def body() -> None:
        async with await Store.open(url) as store:
            before = await save_raw(store, b"before", source="smtp")
            proxy.cut()
            with pytest.raises(StoreUnavailable):
                await save_raw(store, b"during", source="smtp")
            proxy.restore()
            after = await save_raw(store, b"during", source="smtp")  # the MTA's retry
            assert after.is_new and after.id > before.id
            assert len(await store.pending_raw()) == 2

    try:
        run(body())
    finally:
        proxy.close()




class StoppingPostgres:
    """A loopback server that speaks just enough of PostgreSQL's protocol v3
    (https://www.postgresql.org/docs/current/protocol-message-formats.html) to accept a
    session and then do what a server being shut down does: send FATAL 57P01 unasked,
    before the client's first statement, and keep the socket open."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # until close()
            while True:
                conn, _ = self._listener.accept()
                threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            first = self._startup_packet(conn)
            if first[4:8] == (80877103).to_bytes(4, "big"):  # SSLRequest: not here
                conn.sendall(b"N")
                self._startup_packet(conn)
            # AuthenticationOk, the parameters asyncpg reads, BackendKeyData, ReadyForQuery,
            # then the shutdown's ErrorResponse in the same write: the client reads it idle.
            fatal = b"SFATAL\0C57P01\0Mterminating connection due to administrator command\0\0"
            conn.sendall(self._message(b"R", (0).to_bytes(4, "big"))
                         + self._message(b"S", b"server_version\x0016.0\0")
                         + self._message(b"S", b"client_encoding\0UTF8\0")
                         + self._message(b"S", b"integer_datetimes\0on\0")
                         + self._message(b"K", (1).to_bytes(4, "big") * 2)
                         + self._message(b"Z", b"I")
                         + self._message(b"E", fatal))
            while conn.recv(65536):  # until the client gives up on it
                pass

    @staticmethod
    def _startup_packet(conn: socket.socket) -> bytes:
        head = b""
        while len(head) < 4:
            head += conn.recv(4 - len(head))
        size = int.from_bytes(head, "big")
        body = b""
        while len(body) < size - 4:
            body += conn.recv(size - 4 - len(body))
        return head + body

    @staticmethod
    def _message(kind: bytes, body: bytes) -> bytes:
        return kind + (len(body) + 4).to_bytes(4, "big") + body

    def close(self) -> None:
        self._listener.close()


def test_a_server_stopping_under_listen_is_unavailable_not_a_bug(run: Any) -> None:
    """asyncpg answers the LISTEN with InternalClientError ("cannot switch to state 12;
    another operation (2) is in progress"); it is the database going away, which the
    follower waits out, not a bug that ends the daemon."""
    server = StoppingPostgres()

    async def body() -> None:
        async with await Store.open(f"postgresql://postgres@127.0.0.1:{server.port}/test") as store:
            with pytest.raises(StoreUnavailable, match="another operation"):
                await store.listen_changes(lambda: None)
            with pytest.raises(StoreUnavailable):  # the same through the pool and SQLAlchemy
                await save_raw(store, b"during", source="smtp")

    try:
        run(body())
    finally:
        server.close()
