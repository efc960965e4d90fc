"""One poller per IMAP mailbox when several daemons share a PostgreSQL database: a lease row.

The holder renews the row (``store.leases``) every third of the lease; a daemon that finds it
held waits and asks again every ``retry_seconds``; one that finds it run out takes it over with a
new fencing token. Its poller then takes everything above the saved position that is not yet
flagged: what the dead holder stored but did not flag is stored again as a no-op (sha256
dedupe), and what it stored but did not process is queued here.

Why a lease row and not a session-level advisory lock (``pg_try_advisory_lock`` on a dedicated
connection), which PostgreSQL releases by itself the moment the holder's connection closes, so
that a takeover after SIGKILL is immediate rather than up to a lease later:

- *The holder's event loop stalls* (a blocking call, swap, a paused VM). An advisory lock stays
  held as long as the kernel keeps the TCP connection open, so a daemon hung for good keeps its
  mailboxes for good: nobody takes over. A lease runs out after ``seconds``, another daemon takes
  over, and the stalled one, once it runs again, finds its local deadline passed and cuts its
  session short. What it may still finish meanwhile is harmless: a store again is a no-op
  (sha256), it flags or moves only what is stored, and its position write is refused by the
  token (LeaseLost), so it cannot move the new holder's position.
- *The network partitions* between the holder and the database. PostgreSQL learns that an idle
  client is gone only through TCP keepalive, after about two hours on Linux defaults
  (``tcp_keepalive_time`` 7200 s) unless every connection tunes it; until then the lock stays
  held and nobody takes over. A lease runs out by the database's clock after ``seconds``
  whatever the network does, and the cut-off holder stops at its local deadline (taken from
  before it sent its last successful renewal, so it always ends before the database's expiry).
- *Connection poolers* (PgBouncer in transaction mode) hand a session's lock to whoever gets
  the server connection next; a lease is a row and works through any pool, and on SQLite too.

The price: after a SIGKILL the mailbox waits until the lease runs out (at most ``seconds`` plus
``retry_seconds``: 20 s on the defaults). A stopping daemon releases its lease, so a planned
restart hands over within ``retry_seconds``. Nothing is lost in either case; mail only waits.
SQLite is one daemon's database: no lease is taken there and polling starts at once.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from ..errors import StoreUnavailable
from ..store import Lease, Store

__all__ = ["MailboxLease", "Progress", "holder_id"]

T = TypeVar("T")

RENEW_RETRY_SECONDS = 1.0  # after a failed renewal, while the local deadline allows
RELEASE_SECONDS = 2.0  # a release that cannot be committed by then runs out by itself


class Progress(Protocol):
    """What the lease reads and mirrors: when the mailbox was last drained (epoch seconds)."""

    last_success: float


def holder_id() -> str:
    """Unique per poller: host and pid for the operator, random so a reused pid is not "us"."""
    return f"{socket.gethostname()[:100]}/{os.getpid()}/{secrets.token_hex(4)}"


class MailboxLease:
    """One mailbox's lease for one poller: wait for it, keep it, notice its loss, give it up."""

    def __init__(
        self, store: Store, account: str, mailbox: str, progress: Progress, *,
        logger: Any, seconds: float = 15.0, retry_seconds: float = 5.0,
    ) -> None:
        self.holder = holder_id()
        self.lease: Lease | None = None  # the tenure in force (None: not holding)
        self.lost = asyncio.Event()  # set once the tenure in force may have ended
        self._store = store
        self._where = (account, mailbox)
        self._progress = progress
        self._log = logger
        self._seconds = seconds
        self._retry = retry_seconds
        self._margin = seconds / 10  # for the local clock's drift against the database's
        self._deadline = 0.0  # monotonic: until then the lease is surely still ours
        self._keeper: asyncio.Task[None] | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()  # calls cut off at the deadline

    @property
    def held(self) -> bool:
        return self.lease is not None and not self.lost.is_set() and time.monotonic() < self._deadline

    async def acquire(self, stop: asyncio.Event) -> Lease | None:
        """Wait until the mailbox is ours (None: ``stop`` came first). While another daemon
        holds it, its last success is mirrored into ``progress`` (the metrics on every daemon)."""
        busy_with: str | None = None
        while not stop.is_set():
            sent = time.monotonic()
            try:
                lease = await self._store.acquire_imap_lease(*self._where, self.holder, self._seconds)
            except StoreUnavailable as exc:
                self._log.warning("imap_lease_unavailable", error=str(exc))
            else:
                if lease.holder == self.holder:
                    self._hold(lease, sent)
                    return lease
                if lease.holder != busy_with:
                    self._log.info("imap_lease_busy", holder=lease.holder, expires_at=lease.expires_at.isoformat())
                    busy_with = lease.holder
                if lease.last_success is not None:
                    self._progress.last_success = lease.last_success.timestamp()
            try:
                await asyncio.wait_for(stop.wait(), self._retry * random.uniform(0.8, 1.0))
            except TimeoutError:
                pass
        return None

    def _hold(self, lease: Lease, sent: float) -> None:
        self.lease = lease
        self._deadline = sent + self._seconds - self._margin
        self.lost.clear()
        if lease.previous is not None:
            self._log.warning("imap_lease_taken_over", holder=self.holder, previous=lease.previous, token=lease.token)
        else:
            self._log.info("imap_lease_acquired", holder=self.holder, token=lease.token)
        self._keeper = asyncio.create_task(self._keep(), name=f"lease:{self._where[0]}")

    def lose(self, reason: str) -> None:
        """The tenure may have ended (once per tenure); the poller stops on ``lost``."""
        if self.lost.is_set():
            return
        self.lost.set()
        self._log.warning("imap_lease_lost", holder=self.holder, reason=reason,
                          token=self.lease.token if self.lease else None)

    async def _keep(self) -> None:
        """Renew every third of the lease (every second after a failure) until the lease is
        lost: taken by another daemon, or not renewed before the local deadline."""
        interval = self._seconds / 3
        while self.lease is not None:
            await asyncio.sleep(max(0.0, min(interval, self._deadline - time.monotonic())))
            if time.monotonic() >= self._deadline:  # also after a stall of this event loop
                self.lose("not renewed in time")
                return
            sent = time.monotonic()
            success = self._progress.last_success
            renewal = self._store.renew_imap_lease(
                self.lease, self._seconds, datetime.fromtimestamp(success, UTC) if success else None
            )
            try:
                renewed = await _by(self._deadline, renewal, self._abandoned)
            except (StoreUnavailable, TimeoutError) as exc:
                self._log.warning("imap_lease_renew_failed", error=str(exc) or type(exc).__name__)
                interval = RENEW_RETRY_SECONDS
                continue
            if renewed is None:
                self.lose("taken by another daemon")
                return
            self.lease, self._deadline, interval = renewed, sent + self._seconds - self._margin, self._seconds / 3

    async def release(self) -> None:
        """Stop renewing and, when the lease is still ours, give the mailbox up at once."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        lease, self.lease = self.lease, None
        if lease is None or self.lost.is_set():
            return
        try:
            released = await _by(time.monotonic() + RELEASE_SECONDS, self._store.release_imap_lease(lease), self._abandoned)
        except (StoreUnavailable, TimeoutError) as exc:
            self._log.warning("imap_lease_release_failed", error=str(exc) or type(exc).__name__)
            return
        finally:
            self.lost.set()  # this tenure is over either way
        if released:
            self._log.info("imap_lease_released", holder=self.holder, token=lease.token)


async def _by(deadline: float, call: Coroutine[Any, Any, T], abandoned: set[asyncio.Task[Any]]) -> T:
    """``call``'s result, or TimeoutError at ``deadline`` (monotonic). A call still running
    then is cancelled and left in ``abandoned``, not awaited: a database that does not answer
    may hang the cancellation too (the connection's rollback waits on the same socket)."""
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
    finally:
        if not task.done():
            task.cancel()
            abandoned.add(task)
            task.add_done_callback(lambda t: _forget(t, abandoned))
    if not done:
        raise TimeoutError("no answer from the database in time")
    return task.result()


def _forget(task: asyncio.Task[Any], abandoned: set[asyncio.Task[Any]]) -> None:
    abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: the caller already counted this call as failed
