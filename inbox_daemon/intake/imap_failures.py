"""Which UIDs of a mailbox the server failed to give, so that one message it can never give
does not stall the mailbox: a batch whose FETCH fails has its UIDs fetched one by one next
time (the culprit is then known), and a UID that fails alone ``attempts`` times is given up.

Dovecot, for one, ends the session with ``BYE`` at the FETCH of a message file it cannot read
(tests/intake/test_imap_limits.py), so without this every session would end at that message.
Kept in memory per poller: a restart gives a UID its attempts again, which is bounded too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FetchFailures"]

Key = tuple[int, int]  # (uidvalidity, uid): UIDs mean nothing under another UIDVALIDITY


class FetchFailures:
    """Failed fetches per UID of one mailbox."""

    def __init__(self, attempts: int, logger: Any) -> None:
        self.attempts = attempts
        self._counts: dict[Key, int] = {}  # failed fetches of the UID alone
        self._suspects: set[Key] = set()  # in a batch whose fetch failed: fetched alone
        self._log = logger

    @property
    def waiting(self) -> bool:
        """A UID waits for another attempt (the poller polls rather than waiting on IDLE)."""
        return bool(self._counts)

    def given_up(self, uidvalidity: int, uid: int) -> bool:
        return self._counts.get((uidvalidity, uid), 0) >= self.attempts

    def alone(self, uidvalidity: int, uids: list[int]) -> list[int]:
        """Those of ``uids`` to fetch one by one."""
        return [uid for uid in uids if (uidvalidity, uid) in self._suspects]

    def failed(self, uidvalidity: int, uids: list[int], why: str) -> None:
        """A fetch of ``uids`` failed: counted against the UID when alone, else each of them
        becomes a suspect, fetched alone next time."""
        if len(uids) > 1:
            self._suspects.update((uidvalidity, uid) for uid in uids)
            return
        key = (uidvalidity, uids[0])
        self._counts[key] = self._counts.get(key, 0) + 1
        self._log.warning("imap_fetch_failed", uid=uids[0], attempts=self._counts[key], error=why)

    def forget(self, uidvalidity: int, uid: int) -> None:
        """Given by the server, or given up: nothing more to count."""
        self._counts.pop((uidvalidity, uid), None)
        self._suspects.discard((uidvalidity, uid))

    def keep_only(self, uidvalidity: int, uids: list[int]) -> None:
        """UIDs no longer listed (expunged meanwhile) are not held against the mailbox."""
        listed = {(uidvalidity, uid) for uid in uids}
        self._counts = {k: n for k, n in self._counts.items() if k in listed}
        self._suspects &= listed
