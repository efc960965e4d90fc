"""The client library against a real daemon process (sync and asyncio, Unix and TCP), and its
refusal to answer "not blocked" when it cannot get an answer (a sender must not send then)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inbox_daemon.client import AsyncClient, Client, Key, Reply
from inbox_daemon.errors import QueryError
from tests.support.daemon import EXE, DaemonProcess, wait_until, write_config
from tests.support.seeding import seed_blocklist, unknown_keys

TIMEOUT = 30


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, list[tuple[str, str]]]]:
    """One daemon for the read-only tests, with 1,000 opt-outs imported and TCP on."""
    tmp = tmp_path_factory.mktemp("client")
    config = write_config(tmp / "c.toml", {"query": {"tcp": "127.0.0.1:0", "sync_seconds": 0.2}})
    daemon = DaemonProcess(tmp / "home", config)
    try:
        daemon.start()
        yield daemon, seed_blocklist(daemon, tmp, 1000)
    finally:
        daemon.ensure_stopped()


def tcp_of(daemon: DaemonProcess) -> tuple[str, int]:
    host, port = daemon.wait_event("ready")["query_tcp"].rsplit(":", 1)
    return host, int(port)


def campaign(rows: list[tuple[str, str]]) -> tuple[list[Key], list[bool]]:
    """10,000 keys in every form check_many takes, and whether each is blocked."""
    keys: list[Key] = []
    expected: list[bool] = []
    for i, (order, address) in enumerate(unknown_keys(9000)):
        keys.append((address, order) if i % 2 else address)
        expected.append(False)
    for i, (order, address) in enumerate(rows):
        forms: list[Key] = [order, address, (address, None), ("nobody@marketplace.amazon.com", order)]
        keys.insert(i * 10, forms[i % 4])
        expected.insert(i * 10, True)
    return keys, expected


def test_sync_client_over_unix_and_tcp(seeded: tuple[DaemonProcess, list[tuple[str, str]]]) -> None:
    daemon, rows = seeded
    order, address = rows[0]
    for target in (daemon.socket_path, tcp_of(daemon), "%s:%d" % tcp_of(daemon)):
        with Client(target, timeout=10) as client:
            hit = client.check(address.upper())
            assert hit.blocked and hit.count == 1 and hit.first_seen is not None
            assert client.order(order).blocked
            assert client.check("someone-else@marketplace.amazon.com", order).blocked
            assert client.check("someone-else@marketplace.amazon.com") == Reply(False)
            assert client.ping()
            assert client.stats()["entries"] >= 2000


def test_check_many_ten_thousand_keys_in_order(seeded: tuple[DaemonProcess, list[tuple[str, str]]]) -> None:
    daemon, rows = seeded
    keys, expected = campaign(rows)
    assert len(keys) == 10_000
    with Client(daemon.socket_path, timeout=10) as client:
        replies = client.check_many(keys)
        assert [r.blocked for r in replies] == expected
        assert client.check_many(keys[:3]) == replies[:3]  # the connection is still in step
    with Client(tcp_of(daemon), timeout=10) as client:
        assert [r.blocked for r in client.check_many(keys)] == expected


def test_async_client(seeded: tuple[DaemonProcess, list[tuple[str, str]]]) -> None:
    daemon, rows = seeded
    keys, expected = campaign(rows)

    async def main() -> None:
        for target in (daemon.socket_path, tcp_of(daemon)):
            async with AsyncClient(target, timeout=10) as client:
                assert (await client.check(rows[1][1])).blocked
                assert not (await client.check("someone-else@marketplace.amazon.com")).blocked
                assert (await client.order(rows[1][0])).blocked
                assert await client.ping()
                # concurrent callers take turns on the one connection and get their own replies
                many, one, two = await asyncio.gather(
                    client.check_many(keys), client.check(rows[2][1]), client.order("111-1111111-1111111"))
                assert [r.blocked for r in many] == expected and one.blocked and not two.blocked
                with pytest.raises(QueryError, match="bad address"):
                    await client.check("no-at-sign")
                assert (await client.stats())["entries"] >= 2000

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_an_err_reply_in_a_pipeline_raises_and_the_connection_stays_in_step(
    seeded: tuple[DaemonProcess, list[tuple[str, str]]],
) -> None:
    daemon, rows = seeded
    with Client(daemon.socket_path, timeout=10) as client:
        with pytest.raises(QueryError, match="ERR bad address"):
            client.check_many([rows[0][1], "no-at-sign", rows[1][1]])
        assert client.check(rows[2][1]).blocked
        with pytest.raises(QueryError, match="line break"):
            client.check("a@b.example\nORDER 111-1111111-1111111")
        with pytest.raises(QueryError, match="ASCII"):
            client.check("jörg@example.org")


def test_reconnects_once_across_a_daemon_restart(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "home")
    try:
        daemon.start()
        rows = seed_blocklist(daemon, tmp_path, 3)
        client, aclient = Client(daemon.socket_path, timeout=10), AsyncClient(daemon.socket_path, timeout=10)

        async def ask() -> bool:
            return (await aclient.check(rows[0][1])).blocked

        loop = asyncio.new_event_loop()
        try:
            assert client.check(rows[0][1]).blocked and loop.run_until_complete(ask())
            assert daemon.stop() == 0
            with pytest.raises(QueryError):  # down: an error, never "not blocked"
                client.check(rows[0][1])
            with pytest.raises(QueryError):
                loop.run_until_complete(ask())
            daemon.start()
            assert client.check(rows[0][1]).blocked
            assert loop.run_until_complete(ask())
            daemon.stop()
            daemon.start()  # the async client still holds the old connection: one reconnect
            assert loop.run_until_complete(ask())
        finally:
            client.close()
            loop.run_until_complete(aclient.close())
            loop.close()
    finally:
        daemon.ensure_stopped()


def test_digital_orders_imported_from_csv_are_blocked_for_the_client(tmp_path: Path) -> None:
    """``blocklist import`` of a CSV with digital order ids (D01-..., in either case, alone or
    with a relay address), then the daemon's index answers the sync and asyncio clients for
    them: ORDER, CHECK <address> <order> and check_many."""
    alone, paired, relay = "D01-8203116-4457221", "D02-3390417-6128853", "h3n8v2c6t0y5b1f@marketplace.amazon.de"
    never = "D01-8203116-4457222"
    daemon = DaemonProcess(tmp_path / "home")
    try:
        daemon.start()
        csv_file = tmp_path / "digital.csv"
        csv_file.write_text(f"order_id,email\n{alone.lower()},\n{paired},{relay}\n")
        out = daemon.cli("blocklist", "import", str(csv_file), "--by", "test")
        assert out.returncode == 0, out.stderr
        wait_until(lambda: all(r.startswith("BLOCKED") for r in daemon.query(f"ORDER {alone}", f"ORDER {paired}")))
        with Client(daemon.socket_path, timeout=10) as client:
            assert client.order(alone).blocked and client.order(alone.lower()).blocked
            assert client.check("someone-else@marketplace.amazon.com", paired.lower()).blocked
            assert client.check(relay).blocked
            assert client.order(never) == Reply(False)
            keys: list[Key] = [alone, ("nobody@marketplace.amazon.de", paired), never, paired.lower()]
            assert [r.blocked for r in client.check_many(keys)] == [True, True, False, True]

        async def main() -> None:
            async with AsyncClient(daemon.socket_path, timeout=10) as client:
                assert (await client.order(alone.lower())).blocked
                assert (await client.check("someone-else@marketplace.amazon.com", paired)).blocked
                assert not (await client.order(never)).blocked

        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    finally:
        daemon.ensure_stopped()


def test_too_many_connections_raises(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "home", env={"INBOX_DAEMON_QUERY_MAX_CONNECTIONS": "1"})
    try:
        daemon.start()
        with Client(daemon.socket_path, timeout=10) as first:
            assert first.ping()
            with Client(daemon.socket_path, timeout=10) as second, pytest.raises(QueryError, match="too many connections"):
                second.check("a@marketplace.amazon.com")

            async def second_async() -> None:
                async with AsyncClient(daemon.socket_path, timeout=10) as client:
                    await client.check("a@marketplace.amazon.com")

            with pytest.raises(QueryError, match="too many connections|closed"):
                asyncio.run(asyncio.wait_for(second_async(), TIMEOUT))
    finally:
        daemon.ensure_stopped()


# -- a broken daemon: what no real one should do, but what a sender must survive ---------------


def serve_once(path: str, behave: Callable[[socket.socket], None]) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()

    def run() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                behave(connection)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _garbage(c: socket.socket) -> None:
    c.recv(1024)
    c.sendall(b"MAYBE\n")


def _silent(c: socket.socket) -> None:
    c.recv(1024)
    c.recv(1024)  # until the client gives up and closes


def _half_reply(c: socket.socket) -> None:
    c.recv(1024)
    c.sendall(b"BLOCKED 2026-11-")


def _close_at_once(c: socket.socket) -> None:
    pass


def _binary(c: socket.socket) -> None:
    c.recv(1024)
    c.sendall(b"\xff\xfe\x00\n")


def _endless(c: socket.socket) -> None:
    c.recv(1024)
    try:
        c.sendall(b"B" * (1 << 20))
    except OSError:
        pass


@pytest.mark.parametrize("behave, message", [
    (_garbage, "unexpected reply"), (_silent, "no reply .* within"), (_half_reply, "mid-reply"),
    (_close_at_once, "closed the connection|cannot reach"), (_binary, "not ASCII"), (_endless, "too long"),
])
def test_any_unexpected_answer_raises(tmp_path: Path, behave: Callable[[socket.socket], None], message: str) -> None:
    path = str(tmp_path / "broken.sock")
    thread = serve_once(path, behave)
    with Client(path, timeout=0.5) as client, pytest.raises(QueryError, match=message):
        client.check("jxxvbothd0wtflh@marketplace.amazon.com")
    thread.join(TIMEOUT)
    path2 = str(tmp_path / "broken2.sock")
    thread = serve_once(path2, behave)

    async def ask() -> None:
        async with AsyncClient(path2, timeout=0.5) as client:
            await client.check("jxxvbothd0wtflh@marketplace.amazon.com")

    with pytest.raises(QueryError, match=message):
        asyncio.run(asyncio.wait_for(ask(), TIMEOUT))
    thread.join(TIMEOUT)


def test_nobody_listening_raises(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="cannot reach"):
        Client(str(tmp_path / "none.sock")).check("a@marketplace.amazon.com")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(QueryError, match="cannot reach"):
            asyncio.run(AsyncClient(("127.0.0.1", port)).check("a@marketplace.amazon.com"))


def test_cli_check_reads_keys_from_stdin(seeded: tuple[DaemonProcess, list[tuple[str, str]]]) -> None:
    daemon, rows = seeded
    keys = [rows[0][0], "nobody@marketplace.amazon.com", "", rows[1][1], f"nobody@marketplace.amazon.com {rows[2][0]}"]
    out = subprocess.run(daemon_cli(daemon, "check", "-"), input="\n".join(keys) + "\n",
                         capture_output=True, text=True, timeout=60, env=daemon.env)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [k for k in keys if k]
    assert [line.split("\t")[1].split(" ")[0] for line in lines] == ["BLOCKED", "OK", "BLOCKED", "BLOCKED"]
    clean = subprocess.run(daemon_cli(daemon, "check", "-"), input="nobody@marketplace.amazon.com\n",
                           capture_output=True, text=True, timeout=60, env=daemon.env)
    assert clean.returncode == 0 and clean.stdout == "nobody@marketplace.amazon.com\tOK\n"


def daemon_cli(daemon: DaemonProcess, *args: str) -> list[str]:
    return [EXE, *args] + (["--config", str(daemon.config)] if daemon.config else [])
