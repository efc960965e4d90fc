"""The IMAP mailbox lease: the rows (``store.leases``) on both engines, and the keeper
(``intake.lease``) on a real PostgreSQL when the holder is stopped, cut off, frozen or stalled.

The invariant every keeper test checks: the holder knows it lost the mailbox before another
daemon takes it, so two pollers never both believe they hold it.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy.engine import make_url

from inbox_daemon.errors import LeaseLost
from inbox_daemon.intake.lease import MailboxLease
from inbox_daemon.log import get_logger
from inbox_daemon.store import Position, Store, migrate
from tests.support.proxy import CuttableProxy

Run = Callable[..., Any]
SECONDS = 2.0  # the keeper tests' lease
RETRY = 0.1


@pytest.fixture(params=["sqlite", "postgresql"])
def lease_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url = str(request.getfixturevalue("pg_url"))
        migrate.upgrade(url)  # the migration tests may have walked the session database down
        return url
    path = tmp_path / "inbox.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg(pg_url: str) -> str:
    migrate.upgrade(pg_url)
    return pg_url


def mailbox() -> tuple[str, str]:
    """An account of the test's own: tests share the session's PostgreSQL database."""
    return f"shop-{secrets.token_hex(4)}", "INBOX"


# -- the rows ---------------------------------------------------------------------------------


def test_one_holder_at_a_time_until_released(lease_url: str, run: Run) -> None:
    account, box = mailbox()

    async def body() -> None:
        async with await Store.open(lease_url) as store:
            first = await store.acquire_imap_lease(account, box, "a", 30)
            assert (first.holder, first.token, first.previous) == ("a", 1, None)
            refused = await store.acquire_imap_lease(account, box, "b", 30)
            assert (refused.holder, refused.token) == ("a", 1)  # b is told who has it
            again = await store.acquire_imap_lease(account, box, "a", 30)
            assert (again.holder, again.token) == ("a", 1)  # the same tenure goes on
            renewed = await store.renew_imap_lease(first, 30, None)
            assert renewed is not None and renewed.expires_at >= first.expires_at
            await store.save_imap_position(account, box, Position(7, 3), lease=renewed)

            assert await store.release_imap_lease(renewed)
            second = await store.acquire_imap_lease(account, box, "b", 30)
            assert (second.holder, second.token, second.previous) == ("b", 2, None)  # released: not a takeover
            assert await store.renew_imap_lease(renewed, 30, None) is None
            assert not await store.release_imap_lease(renewed)
            with pytest.raises(LeaseLost):
                await store.save_imap_position(account, box, Position(7, 99), lease=renewed)
            assert await store.imap_position(account, box) == Position(7, 3)  # the refused write left nothing
            await store.save_imap_position(account, box, Position(7, 4), lease=second)
            assert await store.imap_position(account, box) == Position(7, 4)

    run(body())


def test_a_lease_that_ran_out_is_taken_over_with_a_new_token(lease_url: str, run: Run) -> None:
    account, box = mailbox()

    async def body() -> None:
        async with await Store.open(lease_url) as store:
            first = await store.acquire_imap_lease(account, box, "a", 30)
            success = first.expires_at  # any aware time: the holder's last drained round
            stalled = await store.renew_imap_lease(first, 0, success)  # as if "a" stopped renewing
            assert stalled is not None
            taken = await store.acquire_imap_lease(account, box, "b", 30)
            assert (taken.holder, taken.token, taken.previous) == ("b", 2, "a")
            assert taken.last_success == success  # the standby learns when the mailbox was last drained
            assert await store.renew_imap_lease(stalled, 30, None) is None  # "a" wakes up: not its any more
            with pytest.raises(LeaseLost):
                await store.save_imap_position(account, box, Position(1, 1), lease=stalled)
            back = await store.acquire_imap_lease(account, box, "a", 30)
            assert (back.holder, back.token) == ("b", 2)

    run(body())


def test_claims_racing_for_a_new_mailbox_give_it_to_exactly_one(pg: str, run: Run) -> None:
    account, box = mailbox()

    async def body() -> None:
        stores = [await Store.open(pg) for _ in range(6)]
        try:
            leases = await asyncio.gather(*(s.acquire_imap_lease(account, box, f"h{i}", 30) for i, s in enumerate(stores)))
        finally:
            for store in stores:
                await store.close()
        assert len({lease.holder for lease in leases}) == 1
        assert {lease.token for lease in leases} == {1}

    run(body())


# -- the keeper -------------------------------------------------------------------------------


class Seen:
    """What a poller exposes to the lease: its last drained round."""

    last_success = 0.0


def keeper(store: Store, account: str, box: str, progress: Seen | None = None) -> MailboxLease:
    return MailboxLease(store, account, box, progress or Seen(), logger=get_logger(),
                        seconds=SECONDS, retry_seconds=RETRY)


async def acquired_at(lease: MailboxLease, stop: asyncio.Event) -> float:
    assert await lease.acquire(stop) is not None
    return time.monotonic()


async def lost_at(lease: MailboxLease) -> float:
    await lease.lost.wait()
    return time.monotonic()


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


@pytest.mark.slow
def test_keeper_renews_refuses_a_second_and_hands_over_on_release(pg: str, run: Run) -> None:
    account, box = mailbox()

    async def body() -> None:
        async with await Store.open(pg) as store:
            drained, seen = Seen(), Seen()
            first, second = keeper(store, account, box, drained), keeper(store, account, box, seen)
            stop = asyncio.Event()
            await first.acquire(stop)
            drained.last_success = 1_700_000_000.0  # the holder's poller drained the mailbox then
            waiting = asyncio.create_task(acquired_at(second, stop))
            # Three lease lengths: the first keeps renewing, the second keeps being refused.
            done, _ = await asyncio.wait({waiting}, timeout=3 * SECONDS)
            assert not done and first.held and not first.lost.is_set()
            assert seen.last_success == 1_700_000_000.0  # mirrored from the holder's renewals
            await first.release()
            await asyncio.wait_for(waiting, 5 * RETRY + 5)
            assert second.held and second.lease is not None and second.lease.previous is None
            await second.release()

    with structlog.testing.capture_logs() as logs:
        run(body())
    assert len(events(logs, "imap_lease_acquired")) == 2
    assert len(events(logs, "imap_lease_released")) == 2
    assert len(events(logs, "imap_lease_busy")) == 1  # once per holder seen, not once per retry
    assert not events(logs, "imap_lease_lost") and not events(logs, "imap_lease_taken_over")


def via(url: str, proxy: CuttableProxy) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["cut", "freeze"])
def test_holder_cut_off_from_the_database_stops_before_the_other_takes_over(
    pg: str, run: Run, failure: str
) -> None:
    """``cut``: the holder's connections die and new ones are refused. ``freeze``: they stay
    open and carry nothing (a partition), so the renewal hangs instead of failing."""
    account, box = mailbox()
    target = make_url(pg)
    proxy = CuttableProxy((target.host or "127.0.0.1", target.port or 5432))

    async def body() -> tuple[float, float, MailboxLease]:
        async with await Store.open(via(pg, proxy)) as far, await Store.open(pg) as near:
            holder, standby = keeper(far, account, box), keeper(near, account, box)
            stop = asyncio.Event()
            await holder.acquire(stop)
            if failure == "cut":
                proxy.cut()
            else:
                proxy.freeze()
            lost, taken = await asyncio.gather(lost_at(holder), acquired_at(standby, stop))
            assert standby.lease is not None and standby.lease.previous == holder.holder
            await standby.release()
            proxy.close()  # before closing ``far``: a frozen socket would hold its dispose up
            await holder.release()
            return lost, taken, holder

    try:
        with structlog.testing.capture_logs() as logs:
            lost, taken, holder = run(body(), timeout=30)
    finally:
        proxy.close()
    assert lost < taken  # never two holders
    assert not holder.held
    (gone,) = events(logs, "imap_lease_lost")
    assert gone["reason"] == "not renewed in time" and gone["holder"] == holder.holder
    assert events(logs, "imap_lease_renew_failed")
    assert len(events(logs, "imap_lease_taken_over")) == 1


@pytest.mark.slow
def test_holder_whose_event_loop_stalls_finds_the_lease_gone_when_it_wakes(pg: str, run: Run) -> None:
    """The holder's loop is blocked (as by a blocking call or a paused VM) while another
    daemon, in another thread with its own loop, takes the mailbox over."""
    account, box = mailbox()
    taken = threading.Event()

    def other_daemon() -> None:
        async def body() -> None:
            async with await Store.open(pg) as store:
                lease = keeper(store, account, box)
                await lease.acquire(asyncio.Event())
                taken.set()
                await lease.release()

        asyncio.run(asyncio.wait_for(body(), 20))

    async def body() -> None:
        async with await Store.open(pg) as store:
            holder = keeper(store, account, box)
            await holder.acquire(asyncio.Event())
            assert holder.lease is not None
            thread = threading.Thread(target=other_daemon)
            thread.start()
            assert taken.wait(20)  # the stall: this loop runs nothing until the takeover
            assert not holder.held  # known at once from the local deadline
            await asyncio.wait_for(holder.lost.wait(), 5)
            with pytest.raises(LeaseLost):
                await store.save_imap_position(account, box, Position(1, 1), lease=holder.lease)
            await holder.release()
            thread.join(20)

    with structlog.testing.capture_logs() as logs:
        run(body())
    assert [e["reason"] for e in events(logs, "imap_lease_lost")] == ["not renewed in time"]
    assert len(events(logs, "imap_lease_taken_over")) == 1
