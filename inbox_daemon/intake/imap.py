"""IMAP intake: one poller per configured account takes the messages of one mailbox by UID,
stores their raw bytes durably, and only then flags or moves them.

The order of every batch is: ``UID SEARCH UID n:*`` -> ``UID FETCH (UID BODY.PEEK[])`` (PEEK:
the server must not set ``\\Seen`` before we have stored) -> ``Flow.accept`` (returns once
committed) -> flag or move -> the position is saved. A crash anywhere in there repeats the
batch; the store's sha256 dedupe makes storing it again a no-op. Nothing is ever deleted except
the source copy of a MOVE the operator asked for.

Waiting: IDLE (RFC 2177) when the account allows it and the server has it, re-issued well
before the 29 minutes after which servers may drop us; every wake runs ``UID SEARCH`` again
(a pushed EXISTS is a hint, not a list). Without IDLE, a poll every ``poll_seconds``.
Connections and the aioimaplib pitfalls are in ``imap_client``.

Several daemons on one PostgreSQL: a poller first takes the mailbox's lease (``lease``) and
polls only while it holds it; positions are written under the lease. On SQLite (one daemon) no
lease is taken.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aioimaplib  # type: ignore[import-untyped]

from ..config import ImapAccount, SmtpConfig
from ..errors import LeaseLost, StoreUnavailable
from ..processing import Flow
from ..store import Delivery, Lease, Position, Store
from .imap_client import (
    ImapAuthError,
    ImapConnection,
    ImapSessionError,
    check_ok,
    mailbox_arg,
    response_text,
    uid_set,
)
from .imap_auth import sign_in_for
from .imap_failures import FetchFailures
from .lease import MailboxLease
from .oauth import GrantInvalid, authorize_command

__all__ = ["ImapPoller", "ImapTuning", "ImapSessionError", "ImapAuthError", "backoff", "advanced"]

T = TypeVar("T")


@dataclass(frozen=True)
class ImapTuning:
    """Timings that are not in the config file; tests shorten them."""

    command_timeout: float = 30.0  # aioimaplib restarts it whenever data arrives
    connect_timeout: float = 15.0
    reidle_seconds: float = 25 * 60.0  # RFC 2177 section 3: re-issue IDLE at least every 29 min
    fetch_batch: int = 50  # UIDs per size FETCH; bodies are fetched within the intake byte budget
    fetch_attempts: int = 5  # failed fetches of one UID (fetched alone) before it is given up
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    auth_retry_seconds: float = 600.0  # a wrong password is not fixed by hammering the server
    stop_seconds: float = 3.0  # DONE + LOGOUT budget in stop()
    lease_seconds: float = 15.0  # shared database: a dead holder's mailbox is taken over after this
    lease_retry_seconds: float = 5.0  # how often a daemon without the lease asks again


def backoff(failures: int, tuning: ImapTuning) -> float:
    """Exponential with "equal jitter": between half and all of the capped delay."""
    delay = min(tuning.backoff_max, tuning.backoff_initial * 2.0 ** max(0, failures - 1))
    return delay / 2 + random.uniform(0, delay / 2)


# -- the poller --------------------------------------------------------------------------------


class ImapPoller:
    """Takes one account's mailbox into the intake, for as long as the daemon runs."""

    def __init__(
        self, account: ImapAccount, flow: Flow, store: Store, *,
        logger: Any, tuning: ImapTuning | None = None, max_message_bytes: int = SmtpConfig.max_message_bytes,
    ) -> None:
        self.account = account
        self.tuning = tuning or ImapTuning()
        self.max_message_bytes = max_message_bytes  # the SMTP cap: larger mail is refused, not stored
        self._flow = flow
        self._store = store  # positions live beside the mail they led to
        self._log = logger.bind(component="imap", account=account.name, mailbox=account.mailbox)
        self._failures_of = FetchFailures(self.tuning.fetch_attempts, self._log)
        self._source = f"imap:{account.name}"
        self._peer = f"{account.host}:{account.port}"
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self.stats = {"stored": 0, "sessions": 0, "failures": 0, "idles": 0}
        self.idling = False  # in IDLE right now (the server said "+ idling")
        self.last_success = 0.0  # epoch seconds the mailbox was last drained: the metrics
        self.state = "connecting"  # in a few words, for the operator's overview; a failure stays until a session works
        self._lease = MailboxLease(
            store, account.name, account.mailbox, self, logger=self._log,
            seconds=self.tuning.lease_seconds, retry_seconds=self.tuning.lease_retry_seconds,
        ) if store.shared else None
        self._sign_in = sign_in_for(account, self._log)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The poller's task, for the daemon to watch."""
        return [self._task] if self._task is not None else []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"imap:{self.account.name}")

    async def stop(self) -> None:
        """Leave IDLE with DONE and LOGOUT, within ``tuning.stop_seconds`` (then cancel)."""
        self._stop.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.tuning.stop_seconds + 1)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._log.info("imap_stopped", **self.stats)

    # -- the lease: one poller per mailbox across daemons ---------------------------------------

    async def _run(self) -> None:
        if self._lease is None:
            await self._sessions()
            return
        while not self._stop.is_set():
            self.state = "waiting for the mailbox lease (another daemon may hold it)"
            lease = await self._lease.acquire(self._stop)
            self.state = "connecting"
            if lease is None:
                break
            try:
                await self._while_held(lease)
            finally:
                await self._lease.release()

    async def _while_held(self, lease: Lease) -> None:
        """Poll until stopped, or until the lease is lost: then the session is cut short (what
        it stored and did not flag is taken again, as a no-op, by the next holder)."""
        assert self._lease is not None
        if lease.previous is not None:
            await self._recover_left_behind()
        polling = asyncio.create_task(self._sessions(), name=f"imap-sessions:{self.account.name}")
        lost = asyncio.create_task(self._lease.lost.wait())
        try:
            await asyncio.wait({polling, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (polling, lost):
                task.cancel()
            await asyncio.gather(polling, lost, return_exceptions=True)

    async def _recover_left_behind(self) -> None:
        """Queue what the previous holder stored from this mailbox and did not process (it
        would otherwise wait for the next daemon start)."""
        queued, after = 0, 0
        try:
            while ids := await self._store.pending_raw_ids_from(self._source, after=after):
                for raw_id in ids:
                    self._flow.processor.submit(raw_id)
                queued, after = queued + len(ids), ids[-1]
        except StoreUnavailable as exc:  # a daemon's start recovers them then
            self._log.warning("imap_recover_deferred", error=str(exc))
        self._log.info("imap_recovered_pending", count=queued)

    async def _save_position(self, position: Position) -> None:
        """Commit the position; with a lease, only while it is ours."""
        lease = self._lease.lease if self._lease is not None else None
        try:
            await self._store.save_imap_position(self.account.name, self.account.mailbox, position, lease=lease)
        except LeaseLost:
            if self._lease is not None:
                self._lease.lose("position write refused: another daemon holds the mailbox")
            raise

    # -- sessions and backoff ------------------------------------------------------------------

    async def _sessions(self) -> None:
        while not self._stop.is_set():
            conn = ImapConnection(
                self.account, command_timeout=self.tuning.command_timeout,
                connect_timeout=self.tuning.connect_timeout,
            )
            self.stats["sessions"] += 1
            delay, failed = 0.0, True
            try:
                await self._session(conn)
                failed = False
            except GrantInvalid as exc:  # only the operator can mend it: one line per retry period
                delay = self.tuning.auth_retry_seconds * random.uniform(0.9, 1.1)
                self.state = f"authorization needed: {authorize_command(self.account)}"
                self._log.error(
                    "imap_oauth_grant_invalid", error=str(exc), run=authorize_command(self.account),
                    retry_in=round(delay, 1),
                )
            except ImapAuthError as exc:
                delay = self.tuning.auth_retry_seconds * random.uniform(0.9, 1.1)
                self.state = f"login refused: {exc}"[:200]
                self._log.error(
                    "imap_auth_failed", host=self.account.host, username=self.account.username,
                    error=str(exc), retry_in=round(delay, 1),
                )
            except Exception as exc:  # the poller's unit of work: log, back off, reconnect
                self._failures += 1
                self.stats["failures"] += 1
                delay = backoff(self._failures, self.tuning)
                self.state = f"failing ({self._failures} in a row): {type(exc).__name__}"
                expected = isinstance(exc, (ImapSessionError, StoreUnavailable, OSError, TimeoutError,
                                            aioimaplib.AioImapException, LeaseLost))
                self._log.warning(
                    "imap_session_failed", error=f"{type(exc).__name__}: {exc}",
                    retry_in=round(delay, 2), exc_info=not expected,
                )
            finally:
                await conn.close(logout=not failed, timeout=self.tuning.stop_seconds)
            if delay:
                await self._pause(delay)

    def _idling(self) -> None:
        self.idling = True
        self.stats["idles"] += 1

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _session(self, conn: ImapConnection) -> None:
        """Connect, select, then drain and wait until stopped (or until something breaks)."""
        acct = self.account
        await conn.open()
        await self._sign_in(conn)
        uidvalidity = await conn.select(acct.mailbox)
        position = await self._store.imap_position(acct.name, acct.mailbox)
        if position is not None and position.uidvalidity != uidvalidity:
            self._log.warning("imap_uidvalidity_changed", old=position.uidvalidity, new=uidvalidity)
        if position is None or position.uidvalidity != uidvalidity:
            position = Position(uidvalidity, 0)  # RFC 3501 2.3.1.1: old UIDs mean nothing now
        use_idle = acct.idle and "IDLE" in conn.capabilities
        self.state = "connected, waiting with IDLE" if use_idle else f"connected, polling every {acct.poll_seconds:g} s"
        self._log.info(
            "imap_selected", uidvalidity=uidvalidity, last_uid=position.last_uid,
            wait="idle" if use_idle else "poll", move="MOVE" in conn.capabilities,
        )
        while not self._stop.is_set():
            position = await self._drain(conn, position)
            self.last_success = time.time()
            self._failures = 0  # a full round worked: the next failure starts the backoff anew
            if self._stop.is_set():
                break
            if use_idle and not self._failures_of.waiting:  # a UID to fetch again: poll, do not wait for a push
                try:
                    pushed = await conn.idle(self.tuning.reidle_seconds, self._stop, self._idling)
                finally:
                    self.idling = False
                self._log.debug("imap_wake", pushed=pushed)
            else:
                await self._pause(acct.poll_seconds)
                if not self._stop.is_set():
                    await conn.noop()  # lets the server report new mail before the search

    # -- taking mail -----------------------------------------------------------------------------

    async def _drain(self, conn: ImapConnection, position: Position) -> Position:
        """Take everything above ``position``; search again until a search finds nothing new,
        so mail that arrives while we work is seen before we IDLE."""
        while not self._stop.is_set():
            uids = await conn.uids_after(position.last_uid)
            self._failures_of.keep_only(position.uidvalidity, uids)
            if not uids:
                break
            for start in range(0, len(uids), self.tuning.fetch_batch):
                if self._stop.is_set():
                    break
                batch = uids[start:start + self.tuning.fetch_batch]
                moved = await self._batch(conn, position, batch)
                if moved == position:  # the first UID of the batch was not given: ask again later
                    return position
                position = moved
        return position

    async def _batch(self, conn: ImapConnection, position: Position, batch: list[int]) -> Position:
        """Sizes first (nothing is downloaded that is over the cap or past the byte budget),
        then the bodies in parts that fit the budget, each part stored, marked and its
        position saved before the next is fetched."""
        asked = [uid for uid in batch if not self._failures_of.given_up(position.uidvalidity, uid)]
        sizes = await self._each(position.uidvalidity, asked, conn.sizes, "RFC822.SIZE") if asked else {}
        handled = await self._refuse(conn, position.uidvalidity, batch, sizes)
        wanted = [uid for uid in batch if uid in sizes and uid not in handled]
        while wanted and not self._stop.is_set():
            async with self._flow.room_for([sizes[uid] for uid in wanted]) as count:
                part, wanted = wanted[:count], wanted[count:]
                handled |= await self._take(conn, position.uidvalidity, part)
            moved = advanced(position, batch, handled)
            if moved != position:
                position = moved
                await self._save_position(position)
        return position

    async def _refuse(self, conn: ImapConnection, uidvalidity: int, batch: list[int], sizes: dict[int, int]) -> set[int]:
        """What is handled without being stored: a message over the cap (recorded, flagged,
        never downloaded), and a UID given up after ``tuning.fetch_attempts`` failed fetches."""
        refused: dict[int, str] = {}
        for uid in batch:
            if uid in sizes and sizes[uid] > self.max_message_bytes:
                refused[uid] = f"{sizes[uid]} bytes, over smtp.max_message_bytes ({self.max_message_bytes})"
            elif self._failures_of.given_up(uidvalidity, uid):
                refused[uid] = f"not given by the server in {self.tuning.fetch_attempts} fetches"
        if not refused:
            return set()
        for uid, reason in refused.items():
            await self._store.record_refused(self._source, f"{self.account.mailbox} uid {uid}", reason)
            self._log.warning("imap_refused", uid=uid, uidvalidity=uidvalidity, reason=reason)
            self._failures_of.forget(uidvalidity, uid)
        await self._flag(conn, sorted(refused), best_effort=True)
        return set(refused)

    async def _each(
        self, uidvalidity: int, uids: list[int], call: Callable[[list[int]], Awaitable[dict[int, T]]], what: str,
    ) -> dict[int, T]:
        """``call`` (a UID FETCH) over ``uids``; those under suspicion (a batch with them failed)
        one by one. A UID missing from the answer, or a failure of one alone, is counted
        (``FetchFailures``); a failure is raised: the session starts over."""
        suspects = self._failures_of.alone(uidvalidity, uids)
        rest = [uid for uid in uids if uid not in suspects]
        found: dict[int, T] = {}
        for group in sorted([[uid] for uid in suspects] + ([rest] if rest else [])):
            try:
                got = await call(group)
            except Exception as exc:
                self._failures_of.failed(uidvalidity, group, f"{what}: {type(exc).__name__}: {exc}")
                raise
            for uid in set(group) - set(got):
                self._failures_of.failed(uidvalidity, [uid], f"{what}: missing from the answer")
            found.update(got)
        return found

    async def _take(self, conn: ImapConnection, uidvalidity: int, batch: list[int]) -> set[int]:
        """Fetch (the bytes are reserved by the caller), store durably (one group commit for
        the part), then flag or move. A body over the cap after all (the server's size was
        wrong) is refused like one announced so."""
        messages = await self._each(uidvalidity, batch, conn.fetch, "BODY[]")
        for uid in messages:
            self._failures_of.forget(uidvalidity, uid)
        over = {uid: len(raw) for uid, raw in messages.items() if len(raw) > self.max_message_bytes}
        refused = await self._refuse(conn, uidvalidity, sorted(over), over) if over else set()
        taken = sorted(set(messages) - refused)
        deliveries = [Delivery(messages[uid], self._source, peer=self._peer) for uid in taken]
        saved = await self._flow.accept_reserved(deliveries)
        for uid, s in zip(taken, saved):
            self._log.info("imap_stored", uid=uid, sha256=s.sha256, raw_id=s.id, new=s.is_new)
        self.stats["stored"] += len(saved)
        missing = sorted(set(batch) - set(messages))
        if missing:  # expunged by someone else meanwhile, or a body the server could not give
            self._log.warning("imap_fetch_missing", uids=uid_set(missing))
        if taken:
            await self._mark(conn, taken)
        return set(taken) | refused

    async def _mark(self, conn: ImapConnection, uids: list[int]) -> None:
        """What the operator chose once a message is safe: flag it, or move it."""
        acct, which = self.account, uid_set(uids)
        if acct.on_stored == "flag":
            await self._flag(conn, uids)
        else:
            await self._move(conn, which)
        self._log.info("imap_marked", uids=which, action=acct.on_stored)

    async def _flag(self, conn: ImapConnection, uids: list[int], *, best_effort: bool = False) -> None:
        """``\\Seen`` and the keyword. ``best_effort`` (refused mail, whose position moves on
        anyway): a refusal is logged, not raised, so a message the server cannot flag does not
        stall the mailbox."""
        acct = self.account
        flags = "(\\Seen " + acct.flag_keyword + ")" if acct.flag_keyword else "(\\Seen)"
        response = await conn.uid_command("store", uid_set(uids), "+FLAGS.SILENT", flags)
        if best_effort and response.result != "OK":
            self._log.warning("imap_flag_failed", uids=uid_set(uids), error=response_text(response))
            return
        check_ok(response, "UID STORE")

    async def _move(self, conn: ImapConnection, which: str) -> None:
        target = self.account.move_to
        use_move = "MOVE" in conn.capabilities  # RFC 6851
        for attempt in (1, 2):
            response = await conn.uid_command("move" if use_move else "copy", which, mailbox_arg(target))
            if response.result == "OK":
                break
            if attempt == 1 and "[TRYCREATE]" in response_text(response).upper():
                await conn.create(target)  # RFC 3501 6.4.7: the target folder does not exist yet
                continue
            check_ok(response, "UID MOVE" if use_move else "UID COPY")
        if use_move:
            return
        check_ok(await conn.uid_command("store", which, "+FLAGS.SILENT", "(\\Deleted)"), "UID STORE")
        if "UIDPLUS" in conn.capabilities:  # RFC 4315: expunge these UIDs and nothing else
            check_ok(await conn.uid_command("expunge", which), "UID EXPUNGE")
        else:  # a plain EXPUNGE would also remove what others marked \Deleted: leave it marked
            self._log.warning("imap_move_left_deleted", uids=which, reason="server lacks MOVE and UIDPLUS")


def advanced(position: Position, batch: list[int], taken: set[int]) -> Position:
    """The position after a batch: past every UID of it up to the first one not taken and
    stored, never beyond (a UID missing from a FETCH is asked for again next time; one that
    was expunged meanwhile no longer turns up in the search)."""
    last = position.last_uid
    for uid in sorted(batch):
        if uid not in taken:
            break
        last = uid
    return Position(position.uidvalidity, last)

