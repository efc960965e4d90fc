"""IMAP intake that whoever can mail the mailbox cannot stall, against a real Dovecot: many
large messages are taken within the byte budget (one reservation per part of a batch), a
message over the SMTP cap is refused, flagged and recorded without being stored, and a UID the
server never gives is given up after a bounded number of fetches while later mail flows."""

from __future__ import annotations

import glob
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog

from inbox_daemon.config import IntakeConfig
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
