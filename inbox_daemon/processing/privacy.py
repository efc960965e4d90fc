"""Retention and sealing in bounded batches: the one loop of each, used by the daemon's
periodic task and by ``inbox-daemon privacy purge`` / ``rotate-key``.

Each batch is one short transaction (``store.retention``, ``store.sealing``), and the daemon
pauses between batches so that intake and the change feed never wait behind a long write on
SQLite's single writer lock: no long transaction, no lock storm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..config import PrivacyConfig
from ..log import get_logger
from ..store import Store
from ..store.engine import is_transient
from ..store.retention import Retention

__all__ = ["BATCH", "retention_rule", "purge", "reseal", "Sealed", "PrivacyTask"]

BATCH = 500  # rows per transaction: a few milliseconds of the write lock
EVERY_S = 3600.0  # the daemon's rounds: retention counts in days, an hour late is nothing
PAUSE_S = 0.01  # between the daemon's batches: other writers get the lock in between


def retention_rule(config: PrivacyConfig, now: datetime | None = None) -> Retention:
    """The configured retention, measured from ``now`` (injectable: tests move the clock)."""
    return Retention(now or datetime.now(UTC), timedelta(days=config.retain_days), timedelta(days=config.retain_days_held))


async def purge(store: Store, rule: Retention, *, batch: int = BATCH, pause: float = 0.0,
                on_batch: Callable[[int], object] | None = None) -> int:
    """Delete the bytes of every due message, ``batch`` at a time; how many."""
    total = 0
    while done := await store.purge_batch(rule, batch):
        total += done
        if on_batch:
            on_batch(done)
        await asyncio.sleep(pause)
    return total


@dataclass
class Sealed:
    """What a sealing pass did: rows sealed under the current key, rows it could not open."""

    resealed: int = 0
    unreadable: int = 0


async def reseal(store: Store, *, plain_only: bool, batch: int = BATCH, pause: float = 0.0,
                 on_batch: Callable[[int], object] | None = None) -> Sealed:
    """Seal every kept message not under the current data key again (``plain_only``: only
    those never sealed), walking the ids once; safe to stop and run again at any point."""
    totals, after = Sealed(), 0
    while (step := await store.reseal_batch(after, batch, plain_only=plain_only)) is not None:
        after = step.last_id
        totals.resealed += step.resealed
        totals.unreadable += step.unreadable
        if on_batch:
            on_batch(step.resealed + step.unreadable)
        await asyncio.sleep(pause)
    return totals


class PrivacyTask:
    """The daemon's periodic pass: seal rows kept plain (written before sealing existed),
    then purge what retention says is due. A database error waits for the next round."""

    def __init__(self, store: Store, config: PrivacyConfig, *, every: float = EVERY_S,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store, self._config, self._every, self._clock = store, config, every, clock
        self._log = get_logger(component="privacy")
        self.rounds = 0
        self.round_done = asyncio.Event()  # set after each round (tests wait on it)
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self._run(), name="privacy")]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._log.warning("privacy_round_deferred", error=str(exc))
            self.rounds += 1
            self.round_done.set()
            await asyncio.sleep(self._every)

    async def round(self) -> None:
        if self._store.keyring is not None:
            sealed = await reseal(self._store, plain_only=True, pause=PAUSE_S)
            if sealed.resealed:
                await self._store.drop_old_pages()
                self._log.info("privacy_sealed", messages=sealed.resealed)
        purged = await purge(self._store, retention_rule(self._config, self._clock()), pause=PAUSE_S)
        if purged:
            self._log.info("privacy_purged", messages=purged, retain_days=self._config.retain_days)
