"""IMAP intake that whoever can mail the mailbox cannot stall, against a real Dovecot: many
large messages are taken within the byte budget (one reservation per part of a batch), a
message over the SMTP cap is refused, flagged and recorded without being stored, and a UID the
server never gives is given up after a bounded number of fetches while later mail flows
(Dovecot ends the session at it; a scripted server answers OK and leaves it out)."""

from __future__ import annotations

import asyncio
import glob
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog

from inbox_daemon.config import ImapAccount, IntakeConfig
from inbox_daemon.processing import Flow
from inbox_daemon.store import Delivery, SavedRaw
from tests.intake.dovecot import Dovecot
from tests.intake.harness import FAST, account, flagged, processed, query, running_poller, until
from tests.support.notices import opt_out_notice, order_id, relay_address

Run = Callable[..., Any]
MB = 1024 * 1024


def padded(rng: random.Random, size: int, seq: int) -> bytes:
    """An opt-out notice grown to about ``size`` bytes by a trailing text part of filler lines."""
    notice = opt_out_notice(order_id(rng), relay_address(rng), seq=seq)
    filler = (b"x" * 76 + b"\r\n") * (size // 78)
    return notice + b"\r\n" + filler


def refused_rows(db: Path) -> list[tuple[Any, ...]]:
    return query(db, "SELECT actor, subject, detail FROM audit_log WHERE action = 'refused' ORDER BY id")


def test_fifty_3mb_messages_are_all_taken_within_the_byte_budget(
    dovecot: Dovecot, db_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More bytes than the budget in one batch: each is stored once, all flagged, the position
    saved past the last (each message reserving on its own made every session fail Busy). The
    bytes are reserved a part at a time, several messages to a part, and what is reserved
    never passes the budget."""
    rng = random.Random(61)
    mails = [padded(rng, 3 * MB, i) for i in range(50)]
    for at in range(0, 50, 10):
        dovecot.append(*mails[at:at + 10])
    limits = IntakeConfig(bytes_in_flight=16 * MB)
    parts: list[tuple[int, int]] = []  # (bytes in flight while a part is written, its messages)
    accept_reserved = Flow.accept_reserved

    async def counted(flow: Flow, deliveries: Sequence[Delivery]) -> list[SavedRaw]:
        parts.append((flow.bytes_in_flight, len(deliveries)))
        return await accept_reserved(flow, deliveries)

    monkeypatch.setattr(Flow, "accept_reserved", counted)

    async def main() -> dict[str, int]:
        async with running_poller(db_path, account(dovecot), limits=limits) as poller:
            await until(lambda: processed(db_path) == 50, timeout=120, what="all 50 processed")
            await until(lambda: flagged(dovecot.flags()), timeout=30, what="all flagged")
            await until(lambda: query(db_path, "SELECT last_uid FROM imap_state") == [(50,)], what="position")
            return dict(poller.stats)

    stats = run(main(), 240)
    assert query(db_path, "SELECT max(times_received), count(*) FROM raw_messages") == [(1, 50)]
    assert stats["failures"] == 0 and stats["sessions"] == 1
    assert sum(n for _, n in parts) == 50 and max(held for held, _ in parts) <= limits.bytes_in_flight, parts
    assert all(n > 1 for _, n in parts[:-1]), parts  # one reservation per part, not per message


def test_a_message_over_the_cap_is_refused_flagged_and_recorded_not_stored(
    dovecot: Dovecot, db_path: Path, run: Run
) -> None:
    """Over the default cap (``smtp.max_message_bytes``, 10 MiB), as the daemon runs it."""
    rng = random.Random(62)
    small, big, after = padded(rng, 1000, 0), padded(rng, 11 * MB, 1), padded(rng, 1000, 2)
    dovecot.append(small, big, after)

    async def main() -> list[dict[str, Any]]:
        with structlog.testing.capture_logs() as logs:
            async with running_poller(db_path, account(dovecot)):
                await until(lambda: processed(db_path) == 2, what="the two small ones processed")
                await until(lambda: flagged(dovecot.flags()), what="all three flagged")
                await until(lambda: query(db_path, "SELECT last_uid FROM imap_state") == [(3,)], what="position")
        return logs

    logs = run(main())
    assert query(db_path, "SELECT count(*), max(size) FROM raw_messages") == [(2, max(len(small), len(after)))]
    ((actor, subject, detail),) = refused_rows(db_path)
    assert actor == "intake:imap:shop" and subject == "INBOX uid 2" and "over smtp.max_message_bytes" in detail
    refused = [e for e in logs if e["event"] == "imap_refused"]
    assert [e["uid"] for e in refused] == [2]


@pytest.mark.parametrize("size_known", [True, False], ids=["size-in-name", "size-unknown"])
def test_a_uid_the_server_never_gives_is_given_up_and_later_mail_flows(
    dovecot: Dovecot, db_path: Path, run: Run, size_known: bool
) -> None:
    """An unreadable message file makes Dovecot end the session at its FETCH ("Internal error",
    BYE), every time: after ``fetch_attempts`` failed fetches of it alone it is recorded and
    flagged, and the messages around it are stored. Without ``S=`` in the file name even its
    RFC822.SIZE cannot be read."""
    rng = random.Random(63)
    first, broken, later = (padded(rng, 1000, i) for i in range(3))
    dovecot.append(first, broken, later)
    files = sorted(glob.glob(str(dovecot.root / "Maildir" / "new" / "*")))
    assert len(files) == 3
    broken = files[1] if size_known else files[1].split(",S=")[0]  # Maildir: ",S=<size>" spares a read
    os.rename(files[1], broken)  # a new name is a new message to Dovecot: UID 4 (and UID 2 is gone)
    os.chmod(broken, 0)  # the mail user cannot read it
    uid = 2 if size_known else 4

    async def main() -> list[dict[str, Any]]:
        with structlog.testing.capture_logs() as logs:
            async with running_poller(db_path, account(dovecot)):
                await until(lambda: processed(db_path) == 2, timeout=60, what="the readable two processed")
                await until(lambda: query(db_path, "SELECT last_uid FROM imap_state") == [(max(uid, 3),)],
                            what="position")
        return logs

    logs = run(main(), 120)
    assert query(db_path, "SELECT max(times_received), count(*) FROM raw_messages") == [(1, 2)]
    ((_actor, subject, detail),) = refused_rows(db_path)
    assert subject == f"INBOX uid {uid}" and f"not given by the server in {FAST.fetch_attempts} fetches" in detail
    attempts = [e["attempts"] for e in logs if e["event"] == "imap_fetch_failed" and e["uid"] == uid]
    assert attempts == list(range(1, FAST.fetch_attempts + 1))
    assert {"\\Seen", "$OptOutProcessed"} <= dovecot.flags()[uid]


class OmittingServer:
    """Just enough IMAP for a poll without IDLE over a mailbox of UIDs 1 to 3 (UIDVALIDITY 7),
    whose ``UID FETCH`` of the bodies answers OK and leaves UID 2 out, every time (RFC 3501
    6.4.5 lets a server omit a message it cannot give; some do)."""

    def __init__(self, bodies: dict[int, bytes], omitted: int, announced: dict[int, int] | None = None) -> None:
        self.bodies, self.omitted = bodies, omitted
        self.announced = announced or {}  # RFC822.SIZE answers that are not the body's size
        self.flagged: set[int] = set()

    def uids(self, spec: str) -> list[int]:
        """A sequence-set of UIDs (``2``, ``1:3``, ``4:*``, ``1,3``), as far as it exists."""
        found = set()
        for part in spec.split(","):
            low, _, high = part.partition(":")
            top = max(self.bodies) if high == "*" else int(high or low)
            found |= {uid for uid in self.bodies if min(int(low), top) <= uid <= max(int(low), top)}
        return sorted(found)

    def answer(self, tag: str, words: list[str]) -> bytes:
        command = words[0].upper()
        if command == "CAPABILITY":
            return f"* CAPABILITY IMAP4rev1 UIDPLUS\r\n{tag} OK done\r\n".encode()
        if command == "SELECT":
            return f"* 3 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] selected\r\n".encode()
        if command != "UID":
            return f"{tag} OK done\r\n".encode()  # LOGIN, NOOP, LOGOUT
        verb, spec = words[1].upper(), words[3] if words[1].upper() == "SEARCH" else words[2]
        out = b""
        if verb == "SEARCH":
            out = ("* SEARCH " + " ".join(map(str, self.uids(spec))) + "\r\n").encode()
        elif verb == "FETCH" and "RFC822.SIZE" in " ".join(words[3:]).upper():
            out = b"".join(b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (uid, uid, self.announced.get(uid, len(self.bodies[uid])))
                           for uid in self.uids(spec))
        elif verb == "FETCH":
            out = b"".join(b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n" % (uid, uid, len(self.bodies[uid]), self.bodies[uid])
                           for uid in self.uids(spec) if uid != self.omitted)
        elif verb == "STORE":
            self.flagged.update(self.uids(spec))
        return out + f"{tag} OK done\r\n".encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 UIDPLUS] ready\r\n")
        try:
            while line := await reader.readline():
                tag, *words = line.decode().split()
                writer.write(self.answer(tag, words))
                await writer.drain()
        finally:
            writer.close()


def poll_until_two_stored(script: OmittingServer, db_path: Path, run: Run, **poller: Any) -> list[dict[str, Any]]:
    """Poll the scripted mailbox of UIDs 1 to 3 until the position is past UID 3 and two of
    them are processed; what the poller logged meanwhile."""

    async def main() -> list[dict[str, Any]]:
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        acct = ImapAccount(name="shop", host="127.0.0.1", port=server.sockets[0].getsockname()[1], tls="none",
                           username="u", password="p", poll_seconds=0.05, idle=False)
        try:
            with structlog.testing.capture_logs() as logs:
                async with running_poller(db_path, acct, **poller):
                    await until(lambda: query(db_path, "SELECT last_uid FROM imap_state") == [(3,)], what="position")
                    await until(lambda: processed(db_path) == 2, what="the other two processed")
        finally:
            server.close()
        return logs

    return run(main(), 60)


def test_a_uid_the_server_answers_ok_without_is_given_up(db_path: Path, run: Run) -> None:
    rng = random.Random(64)
    script = OmittingServer({uid: padded(rng, 1000, uid) for uid in (1, 2, 3)}, omitted=2)

    logs = poll_until_two_stored(script, db_path, run)
    # UID 3 is taken again (a no-op: the same bytes) at each poll until UID 2 is given up: a bound, not for ever.
    ((most, count),) = query(db_path, "SELECT max(times_received), count(*) FROM raw_messages")
    assert count == 2 and most <= FAST.fetch_attempts + 1
    ((_actor, subject, detail),) = refused_rows(db_path)
    assert subject == "INBOX uid 2" and f"not given by the server in {FAST.fetch_attempts} fetches" in detail
    attempts = [e["attempts"] for e in logs if e["event"] == "imap_fetch_failed" and e["uid"] == 2]
    assert attempts == list(range(1, FAST.fetch_attempts + 1))
    assert script.flagged == {1, 2, 3}


def test_a_body_over_the_cap_though_its_announced_size_was_not_is_refused_not_stored(db_path: Path, run: Run) -> None:
    """RFC822.SIZE is the server's word, not the body: a server announcing 900 bytes for a
    40,000-byte body (Dovecot refuses to serve a Maildir file whose size is wrong, so a
    scripted one) has the body measured once fetched and refused, as if announced so."""
    rng = random.Random(65)
    script = OmittingServer({uid: padded(rng, 40_000 if uid == 2 else 1000, uid) for uid in (1, 2, 3)}, omitted=0,
                            announced={2: 900})

    logs = poll_until_two_stored(script, db_path, run, max_message_bytes=20_000)
    assert query(db_path, "SELECT count(*), max(size) FROM raw_messages") == [(2, len(script.bodies[1]))]
    ((actor, subject, detail),) = refused_rows(db_path)
    assert actor == "intake:imap:shop" and subject == "INBOX uid 2" and f"{len(script.bodies[2])} bytes" in detail
    assert [e["uid"] for e in logs if e["event"] == "imap_refused"] == [2]
    assert script.flagged == {1, 2, 3}
