"""Store code written against ``AsyncSession`` run whole in one thread on a synchronous session.

The functions of this package take an ``AsyncSession`` and await only the database. Given an
``ImmediateSession`` instead, every await completes at once, so ``run_now`` runs such a
coroutine to its end without an event loop: on SQLite a transaction runs in a lane's thread
(``engine.Lane``) as one hand-off, where through aiosqlite each of its statements took several
turns of the event loop, and a write held the database's one write lock all the while.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

__all__ = ["ImmediateSession", "run_now"]

T = TypeVar("T")


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result; RuntimeError if it awaits anything that does not complete at
    once (it must await only an ``ImmediateSession``)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a store function awaited something other than its session")


class ImmediateConnection:
    """``AsyncConnection``'s methods the store uses, on a synchronous connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._connection.execute(*args, **kwargs)

    async def exec_driver_sql(self, *args: Any, **kwargs: Any) -> Any:
        return self._connection.exec_driver_sql(*args, **kwargs)


class ImmediateSession:
    """``AsyncSession``'s methods the store uses, on a ``Session`` joined to the caller's
    transaction (the caller commits)."""

    def __init__(self, connection: Connection, info: dict[str, Any]) -> None:
        self._session = Session(bind=connection, expire_on_commit=False)
        self._session.info.update(info)
        self.info = self._session.info

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.get_bind(*args, **kwargs)

    async def connection(self, *args: Any, **kwargs: Any) -> ImmediateConnection:
        return ImmediateConnection(self._session.connection(*args, **kwargs))

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.execute(*args, **kwargs)

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.scalars(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.scalar(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.get(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        self._session.flush(*args, **kwargs)

    def add(self, instance: Any) -> None:
        self._session.add(instance)

    async def delete(self, instance: Any) -> None:
        self._session.delete(instance)

    def flush_now(self) -> None:
        """Write what the ORM still holds, before the caller commits."""
        self._session.flush()

    def close(self) -> None:
        self._session.close()
