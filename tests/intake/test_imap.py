"""IMAP intake against a real Dovecot, plus the pure parsing of
aioimaplib's answers. Mail is put in with real IMAP APPENDs and looked at through IMAP too."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from inbox_daemon.config import ImapAccount
from inbox_daemon.intake.imap import ImapTuning, backoff
from inbox_daemon.intake.imap_client import mailbox_arg, parse_fetch, parse_search, uid_set
from tests.intake.dovecot import Dovecot
from tests.intake.harness import FAST, account, flagged, processed, query, raw_counts, running_poller, until
from tests.support.daemon import EXE, DaemonProcess, wait_until
from tests.support.notices import content_policy_notice, opt_out_notice, order_id, relay_address
from tests.support.proxy import HoldingProxy

Run = Callable[..., Any]


def outcomes(db: Path) -> dict[str, int]:
    """opt_out vs everything else (the parser may call a look-alike not_opt_out or malformed)."""
    counts = raw_counts(db)
    return {"opt_out": counts.pop("opt_out", 0), "other": sum(counts.values())}


def notices(rng: random.Random, n: int) -> list[bytes]:
    return [opt_out_notice(order_id(rng), relay_address(rng), seq=i) for i in range(n)]


def test_fetch_literals_uid_either_side_and_unsolicited_fetches() -> None:
    lines: list[bytes | bytearray] = [
        b"1 FETCH (UID 7 BODY[] {5}", bytearray(b"hello"), b")",
        b"2 FETCH (FLAGS (\\Seen))",  # another client's flag change: no literal, skipped
        b"3 FETCH (BODY[] {3}", bytearray(b"a)b"), b" UID 9)",  # UID after the body
        b"4 FETCH (UID 10 BODY[] {0}", bytearray(b""), b")",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    assert parse_fetch(lines) == {7: b"hello", 9: b"a)b", 10: b""}


def test_search_uid_set_mailbox_and_backoff() -> None:
    assert parse_search([b"4 2 17", b"Search completed (0.001 secs)."]) == [2, 4, 17]
    assert parse_search([b"", b"Search completed."]) == []
    assert uid_set([9, 1, 2, 3, 7, 10]) == "1:3,7,9:10"
    assert mailbox_arg('Amazon "Notices"') == '"Amazon \\"Notices\\""'
    assert mailbox_arg("Größe & Co") == '"Gr&APYA3w-e &- Co"'  # RFC 3501 5.1.3 example style
    tuning = ImapTuning(backoff_initial=1.0, backoff_max=8.0)
    for failures, top in [(1, 1.0), (2, 2.0), (4, 8.0), (30, 8.0)]:
        assert top / 2 <= backoff(failures, tuning) <= top


def test_present_before_start_and_appended_while_idling_are_taken_once(dovecot: Dovecot, db_path: Path, run: Run) -> None:
    rng = random.Random(41)
    before = notices(rng, 2) + [content_policy_notice(order_id(rng), relay_address(rng))]
    later = notices(rng, 2)
    dovecot.append(*before)

    async def main() -> dict[str, int]:
        async with running_poller(db_path, account(dovecot)) as poller:
            await until(lambda: processed(db_path) == 3, what="backlog processed")
            for i, raw in enumerate(later):  # one at a time, each while the poller idles
                await until(lambda: poller.idling, what="IDLE")
                await asyncio.to_thread(dovecot.append, raw)
                await until(lambda: processed(db_path) == 4 + i, what="appended mail processed")
            await until(lambda: flagged(dovecot.flags()), what="all flagged")
            assert poller.state == "connected, waiting with IDLE"  # what the web overview shows
            return dict(poller.stats)

    stats = run(main())
    assert outcomes(db_path) == {"opt_out": 4, "other": 1}
    # Each message fetched and stored once: a second store would count times_received up.
    assert query(db_path, "SELECT max(times_received), count(*) FROM raw_messages") == [(1, 5)]
    assert query(db_path, "SELECT count(*) FROM evidence") == [(4,)]
    assert stats["stored"] == 5 and stats["sessions"] == 1
    assert len(dovecot.flags()) == 5  # nothing removed from the mailbox


def test_reidles_before_the_interval_ends(dovecot: Dovecot, db_path: Path, run: Run) -> None:
    tuning = dataclasses.replace(FAST, reidle_seconds=0.3)

    async def main() -> int:
        async with running_poller(db_path, account(dovecot), tuning) as poller:
            await until(lambda: poller.stats["idles"] >= 3, what="three IDLEs")
            return poller.stats["sessions"]

    assert run(main()) == 1  # re-IDLE on the same connection, no reconnect


def test_dovecot_restarted_mid_session_reconnects_and_carries_on(dovecot: Dovecot, db_path: Path, run: Run) -> None:
    rng = random.Random(42)
    first, second = notices(rng, 2)
    dovecot.append(first)

    async def main() -> dict[str, int]:
        async with running_poller(db_path, account(dovecot)) as poller:
            await until(lambda: poller.stats["idles"] >= 1 and processed(db_path) == 1, what="first taken")
            await asyncio.to_thread(dovecot.stop)  # SIGTERM: the server says BYE and goes away
            await until(lambda: poller.stats["failures"] >= 1, what="loss noticed")
            await asyncio.to_thread(dovecot.start)
            await asyncio.to_thread(dovecot.append, second)
            await until(lambda: processed(db_path) == 2, what="second taken after the restart")
            await until(lambda: flagged(dovecot.flags()), what="both flagged")
            return dict(poller.stats)

    stats = run(main())
    assert stats["sessions"] >= 2
    assert query(db_path, "SELECT max(times_received), count(*) FROM raw_messages") == [(1, 2)]


def test_mailbox_recreated_with_new_uidvalidity_adds_no_duplicates(dovecot: Dovecot, db_path: Path, run: Run) -> None:
    rng = random.Random(43)
    old = notices(rng, 2)
    new = notices(rng, 1)
    dovecot.create("Notices")
    dovecot.append(*old, mailbox="Notices")
    first_validity = dovecot.uidvalidity("Notices")
    acct = account(dovecot, mailbox="Notices")

    async def main() -> None:
        async with running_poller(db_path, acct) as poller:
            await until(lambda: processed(db_path) == 2 and poller.stats["idles"] >= 1, what="old mail taken")
            await asyncio.to_thread(dovecot.delete, "Notices")
            await until(lambda: poller.stats["failures"] >= 1, what="deletion noticed")
            await asyncio.to_thread(dovecot.create, "Notices")
            # The same two messages again (same bytes, new UIDs) and one new one.
            await asyncio.to_thread(dovecot.append, *old, *new, mailbox="Notices")
            await until(lambda: processed(db_path) == 3, what="new mail taken")
            await until(lambda: len(dovecot.flags("Notices")) == 3 and flagged(dovecot.flags("Notices")),
                        what="all three flagged in the new mailbox")

    run(main())
    assert dovecot.uidvalidity("Notices") != first_validity
    assert query(db_path, "SELECT count(*) FROM raw_messages") == [(3,)]
    assert query(db_path, "SELECT count(*), count(DISTINCT opt_out_id) FROM evidence") == [(3, 3)]
    assert query(db_path, "SELECT sum(notice_count) FROM opt_outs") == [(3,)]
    assert query(db_path, "SELECT uidvalidity, last_uid FROM imap_state") == [(dovecot.uidvalidity("Notices"), 3)]


def test_backlog_of_500_is_drained_and_non_notices_stay(dovecot: Dovecot, db_path: Path, run: Run) -> None:
    rng = random.Random(44)
    mail = notices(rng, 400) + [content_policy_notice(order_id(rng), relay_address(rng)) for _ in range(100)]
    rng.shuffle(mail)
    dovecot.append(*mail)

    async def main() -> None:
        async with running_poller(db_path, account(dovecot)) as poller:
            await until(lambda: processed(db_path) == 500, timeout=40, what="500 processed")
            await until(lambda: poller.stats["idles"] >= 1, what="idle after the backlog")

    started = time.monotonic()
    run(main(), 60)
    elapsed = time.monotonic() - started
    assert outcomes(db_path) == {"opt_out": 400, "other": 100}
    assert query(db_path, "SELECT max(times_received) FROM raw_messages") == [(1,)]
    flags = dovecot.flags()
    assert len(flags) == 500 and flagged(flags)  # all still there, not-notices included
    print(f"500-message backlog drained in {elapsed:.1f}s")


@pytest.mark.parametrize("capability", [None, "IMAP4rev1 IDLE UIDPLUS"], ids=["MOVE", "COPY+UID-EXPUNGE"])
def test_move_mode_moves_what_was_stored_and_nothing_else(
    dovecot_factory: type[Dovecot], capability: str | None, db_path: Path, run: Run,
) -> None:
    rng = random.Random(45)
    with dovecot_factory.running(capability=capability) as server:
        # UID 1 was taken in an earlier run (the saved position says so) and the user has
        # marked it \Deleted without expunging: our expunge must not take it with it.
        server.append(content_policy_notice(order_id(rng), relay_address(rng)), *notices(rng, 3))
        with server.client() as imap:
            imap.select("INBOX")
            imap.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
        query(db_path, "INSERT INTO imap_state VALUES ('shop', 'INBOX', ?, 1, '2026-01-01 00:00:00')",
              server.uidvalidity())
        acct = account(server, on_stored="move", move_to="Processed")  # does not exist yet: TRYCREATE

        async def main() -> None:
            async with running_poller(db_path, acct):
                await until(lambda: server.count("Processed") == 3, what="three moved")

        run(main())
        assert list(server.flags("INBOX")) == [1] and "\\Deleted" in server.flags("INBOX")[1]
        assert server.count("Processed") == 3
    assert query(db_path, "SELECT count(*) FROM raw_messages") == [(3,)]


def test_without_idle_it_polls(dovecot_factory: type[Dovecot], db_path: Path, run: Run) -> None:
    rng = random.Random(46)
    with dovecot_factory.running(capability="IMAP4rev1 MOVE UIDPLUS") as server:
        server.append(*notices(rng, 1))

        async def main() -> dict[str, int]:
            async with running_poller(db_path, account(server, poll_seconds=0.1)) as poller:
                await until(lambda: processed(db_path) == 1, what="first")
                await asyncio.to_thread(server.append, *notices(rng, 1))
                await until(lambda: processed(db_path) == 2, what="second, by polling")
                return dict(poller.stats)

        stats = run(main())
    assert stats["idles"] == 0 and stats["sessions"] == 1


def test_wrong_password_is_logged_clearly_and_retried_slowly(dovecot: Dovecot, db_path: Path, run: Run) -> None:
    acct = account(dovecot, password="wrong")

    async def main() -> tuple[list[dict[str, Any]], dict[str, int]]:
        with structlog.testing.capture_logs() as logs:
            async with running_poller(db_path, acct) as poller:
                await until(lambda: any(e["event"] == "imap_auth_failed" for e in logs), what="auth failure logged")
                assert poller.state.startswith("login refused: ") and "wrong" not in poller.state
                return logs, dict(poller.stats)

    logs, stats = run(main())
    (event,) = [e for e in logs if e["event"] == "imap_auth_failed"]
    assert event["username"] == dovecot.user and event["log_level"] == "error"
    assert "wrong" not in repr(event)  # no secret in the log
    assert event["retry_in"] >= 0.9 * FAST.auth_retry_seconds
    assert stats["sessions"] == 1  # not hammering the server


def test_stop_while_idling_is_prompt(dovecot: Dovecot, db_path: Path, run: Run) -> None:
    async def main() -> float:
        async with running_poller(db_path, account(dovecot)) as poller:
            await until(lambda: poller.stats["idles"] >= 1, what="idling")
            started = time.monotonic()
        return time.monotonic() - started

    assert run(main()) < 1.0  # DONE + LOGOUT, not a timeout
    # Dovecot logs the logout after answering it: wait for the line, do not race it.
    wait_until(lambda: "Logged out" in dovecot.log_tail(), timeout=10)


def test_sigkill_between_store_and_flag_leaves_no_duplicate_and_ends_flagged(
    dovecot: Dovecot, tmp_path: Path,
) -> None:
    """Real ``inbox-daemon serve`` processes. A proxy holds the first one's flag command (UID
    STORE) after its durable store; the test then kills it with SIGKILL. The second finishes."""
    rng = random.Random(47)
    dovecot.append(*notices(rng, 3))
    db = tmp_path / "inbox.db"
    (tmp_path / "imap.pass").write_text(dovecot.password + "\n")
    proxy = HoldingProxy(("127.0.0.1", dovecot.port), b" STORE ")

    def config(port: int) -> Path:
        path = tmp_path / f"inbox-daemon-{port}.toml"
        path.write_text(
            f'[database]\nurl = "sqlite:///{db}"\n\n'
            "[[imap.accounts]]\n"
            f'name = "shop"\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\n'
            f'username = "{dovecot.user}"\npassword_file = "{tmp_path / "imap.pass"}"\n'
        )
        return path

    first = DaemonProcess(tmp_path / "home", config(proxy.port))
    try:
        first.start()
        assert proxy.held.wait(30)
        first.wait_count("imap_stored", 3)
        first.kill()  # SIGKILL from outside, between the durable store and the flag
    finally:
        first.ensure_stopped()
        proxy.close()
    events = [e.get("event") for e in first.events]
    assert "imap_stored" in events and "imap_marked" not in events
    assert query(db, "SELECT count(*) FROM raw_messages") == [(3,)]  # durable before the kill
    assert not any("\\Seen" in f for f in dovecot.flags().values())  # and not flagged

    daemon = DaemonProcess(tmp_path / "home", config(dovecot.port))
    try:
        daemon.start()
        wait_until(lambda: len(dovecot.flags()) == 3 and flagged(dovecot.flags()), timeout=20)
        wait_until(lambda: processed(db) == 3, timeout=20)
        assert daemon.stop() == 0
    finally:
        daemon.ensure_stopped()
    assert query(db, "SELECT count(*), min(times_received), max(times_received) FROM raw_messages") == [(3, 2, 2)]
    assert query(db, "SELECT count(*), count(DISTINCT opt_out_id) FROM evidence") == [(3, 3)]
    assert query(db, "SELECT max(notice_count) FROM opt_outs") == [(1,)]
    assert query(db, "SELECT last_uid FROM imap_state") == [(3,)]


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_tls_implicit_and_starttls_verify_the_server(
    dovecot_factory: type[Dovecot], tls: str, db_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(48)
    with dovecot_factory.running(tls=True) as server:
        assert server.cert is not None
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))  # trust the throwaway certificate
        server.append(*notices(rng, 2))
        port = server.tls_port if tls == "implicit" else server.port
        acct = account(server, tls=tls, port=port)

        async def main() -> None:
            async with running_poller(db_path, acct) as poller:
                await until(lambda: processed(db_path) == 2 and poller.idling, what="taken over TLS")

        run(main())
        assert flagged(server.flags())
        assert "TLS" in server.log_tail()  # the login really was on an encrypted connection


def test_tls_refuses_an_untrusted_certificate(dovecot_factory: type[Dovecot], db_path: Path, run: Run) -> None:
    with dovecot_factory.running(tls=True) as server:
        acct = account(server, tls="implicit", port=server.tls_port)

        async def main() -> list[dict[str, Any]]:
            with structlog.testing.capture_logs() as logs:
                async with running_poller(db_path, acct):
                    await until(lambda: any(e["event"] == "imap_session_failed" for e in logs), what="refused")
            return logs

        failed = [e for e in run(main()) if e["event"] == "imap_session_failed"]
        assert "CERTIFICATE_VERIFY_FAILED" in failed[0]["error"]


class ScriptedServer:
    """Just enough IMAP to reach IDLE, then misbehave there as real servers do: ``bye`` says
    BYE instead of "+ idling" and hangs up; ``silent`` never answers (a dead network path)."""

    def __init__(self, at_idle: str) -> None:
        self.at_idle = at_idle
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n")
        replies = {
            "CAPABILITY": "* CAPABILITY IMAP4rev1 IDLE UIDPLUS MOVE\r\n{tag} OK done\r\n",
            "LOGIN": "{tag} OK logged in\r\n",
            "SELECT": "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] selected\r\n",
            "UID": "* SEARCH\r\n{tag} OK searched\r\n",
            "LOGOUT": "* BYE bye\r\n{tag} OK\r\n",
        }
        try:
            while line := await reader.readline():
                tag, _, rest = line.decode().partition(" ")
                command = rest.split()[0].upper() if rest.split() else ""
                if command == "IDLE":
                    if self.at_idle == "bye":
                        writer.write(b"* BYE server going down\r\n")
                        break
                    await reader.read()  # silent: swallow everything until the client leaves
                    break
                writer.write(replies.get(command, "{tag} BAD what\r\n").format(tag=tag).encode())
                await writer.drain()
        finally:
            writer.close()


@pytest.mark.parametrize("at_idle", ["bye", "silent"])
def test_misbehaving_server_at_idle_gets_a_new_connection_not_a_hang(at_idle: str, db_path: Path, run: Run) -> None:
    """aioimaplib pitfalls: idle_start waits forever on BYE; a timed-out client is not reused."""
    script = ScriptedServer(at_idle)
    tuning = dataclasses.replace(FAST, command_timeout=0.3, connect_timeout=1.0)

    async def main() -> list[str]:
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        acct = ImapAccount(name="fake", host="127.0.0.1", port=port, tls="none", username="u", password="p")
        with structlog.testing.capture_logs() as logs:
            async with running_poller(db_path, acct, tuning):
                await until(lambda: script.connections >= 3, timeout=10, what="reconnects")
        server.close()
        return [e["error"] for e in logs if e["event"] == "imap_session_failed"]

    errors = run(main())
    expected = "command timed out" if at_idle == "silent" else "connection lost"
    assert len(errors) >= 2 and all(expected in e for e in errors), errors



def test_the_position_advances_only_past_uids_taken_and_stored() -> None:
    from inbox_daemon.intake.imap import advanced
    from inbox_daemon.store import Position

    start = Position(7, 10)
    assert advanced(start, [11, 12, 13], {11, 12, 13}) == Position(7, 13)
    assert advanced(start, [11, 12, 13], {11, 13}) == Position(7, 11)  # 12 missing: asked again
    assert advanced(start, [11, 12, 13], {12, 13}) == start  # nothing before the gap
    assert advanced(start, [11, 12], set()) == start
