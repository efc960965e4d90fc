"""The query server over real Unix and TCP sockets, and the blocking client against it.

Every server test runs on both paths (the C loop and pure Python: the ``path`` fixture).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import stat
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop

from inbox_daemon.errors import QueryError
from inbox_daemon.lookup import BlocklistIndex, QueryClient, QueryServer
from inbox_daemon.lookup import connection as connection_module

RELAY = "jxxvbothd0wtflh@marketplace.amazon.com"
ORDER = "114-3941689-8772232"
BLOCKED = b"BLOCKED 2026-11-26T06:17:34Z 3\n"
TIMEOUT = 10


def run(main: Callable[[], Awaitable[None]], *, uv: bool = False, timeout: float = TIMEOUT) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if uv else None) as runner:
        runner.run(asyncio.wait_for(main(), timeout))


def make_index() -> BlocklistIndex:
    index = BlocklistIndex()
    index.set_address(RELAY, 1_795_673_854, 3)
    index.set_order(ORDER, 1_795_673_854, 3)
    return index


NATIVE = {"on": False}


@pytest.fixture(autouse=True)
def path(native: bool) -> Iterator[bool]:
    """Every test here on both paths."""
    NATIVE["on"] = native
    yield native
    NATIVE["on"] = False


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[QueryServer]:
    options.setdefault("unix_path", None)
    options.setdefault("tcp", None)
    options.setdefault("native", NATIVE["on"])
    server = QueryServer(options.pop("index", None) or make_index(), **options)
    assert server.path == ("c" if options["native"] else "python")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the server's own bookkeeping to catch up (bounded by the test's timeout)."""
    while not condition():
        await asyncio.sleep(0.005)


class Peer:
    """A test client on asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: QueryServer, unix_path: str | None = None) -> Peer:
        if unix_path is not None:
            return cls(*await asyncio.open_unix_connection(unix_path))
        address = server.tcp_address
        assert address is not None
        return cls(*await asyncio.open_connection(*address))

    async def ask(self, *lines: str) -> list[bytes]:
        self.writer.write(b"".join(line.encode() + b"\n" for line in lines))
        return [await self.reader.readline() for _ in lines]

    async def eof(self) -> bytes:
        """Everything until the server closes."""
        return await asyncio.wait_for(self.reader.read(), 3)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


# -- both transports ----------------------------------------------------------------------------


@pytest.mark.parametrize("uv", [False, True], ids=["asyncio", "uvloop"])
def test_pipelined_requests_over_unix_and_tcp(sock_path: str, uv: bool) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path, tcp=("127.0.0.1", 0)) as server:
            assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o660
            for unix in (sock_path, None):
                peer = await Peer.connect(server, unix)
                lines = [f"CHECK {RELAY}", "CHECK nobody@marketplace.amazon.com", f"ORDER {ORDER}", "PING", "HUH"] * 40
                replies = await peer.ask(*lines)
                assert replies == [BLOCKED, b"OK\n", BLOCKED, b"PONG\n", b"ERR unknown command\n"] * 40
                await peer.close()
        assert not os.path.exists(sock_path)

    run(main, uv=uv)


def test_blocking_client_over_both_transports(sock_path: str) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path, tcp=("127.0.0.1", 0), stats=lambda: {"notices": 5}) as server:
            await asyncio.to_thread(use_client, QueryClient(sock_path))
            await asyncio.to_thread(use_client, QueryClient(server.tcp_address))

    def use_client(client: QueryClient) -> None:
        with client:
            assert client.ping()
            hit = client.check(f"Jane <{RELAY.upper()}>")
            assert hit.blocked and hit.count == 3 and hit.first_seen is not None
            assert hit.first_seen.isoformat() == "2026-11-26T06:17:34+00:00"
            assert str(hit) == BLOCKED.decode().rstrip("\n")  # the CLI prints replies so
            assert str(client.check("nobody@marketplace.amazon.com")) == "OK"
            assert not client.check("nobody@marketplace.amazon.com").blocked
            assert client.check("nobody@marketplace.amazon.com", ORDER).blocked
            assert client.order(ORDER).blocked and not client.order("111-1111111-1111111").blocked
            assert client.pipeline(["PING", "PING"]) == ["PONG", "PONG"]
            with pytest.raises(QueryError, match="bad address"):
                client.check("nonsense")
            with pytest.raises(QueryError, match="line break"):
                client.raw("PING\nPING")
            figures = client.stats()
            assert figures["entries"] == 2 and figures["notices"] == 5 and figures["connections"] >= 1

    run(main)


# -- bad clients ---------------------------------------------------------------------------------


def test_bad_clients_do_not_disturb_a_good_one(sock_path: str) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path) as server:
            good = await Peer.connect(server, sock_path)
            assert await good.ask(f"CHECK {RELAY}") == [BLOCKED]

            garbage = await Peer.connect(server, sock_path)
            garbage.writer.write(bytes(range(256)) + b"\n\xff\xfe\n")
            half_open = await Peer.connect(server, sock_path)
            half_open.writer.write(b"CHECK jxxvbothd0wt")  # never finished
            too_long = await Peer.connect(server, sock_path)
            too_long.writer.write(b"PING\n" + b"C" * 5000)
            rude = await Peer.connect(server, sock_path)
            rude.writer.transport.abort()  # gone without a word

            assert await good.ask(f"ORDER {ORDER}", "PING") == [BLOCKED, b"PONG\n"]
            assert await too_long.eof() == b"PONG\nERR line too long\n"
            assert (await garbage.reader.readline()).startswith(b"ERR ")
            assert await good.ask(*[f"CHECK {RELAY}"] * 50) == [BLOCKED] * 50
            assert server.connections >= 3  # good, garbage and half-open are still served
            for peer in (garbage, half_open, too_long, good):
                await peer.close()

    run(main)


def test_connection_cap(sock_path: str) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path, max_connections=2) as server:
            first, second = await Peer.connect(server, sock_path), await Peer.connect(server, sock_path)
            assert await first.ask("PING") == await second.ask("PING") == [b"PONG\n"]
            third = await Peer.connect(server, sock_path)
            assert await third.eof() == b"ERR too many connections\n"
            assert await first.ask("PING") == [b"PONG\n"]
            for peer in (first, second, third):
                await peer.close()
            await until(lambda: server.connections == 0)
            again = await Peer.connect(server, sock_path)
            assert await again.ask("PING") == [b"PONG\n"]
            await again.close()

    run(main)


@pytest.mark.parametrize("uv", [False, True], ids=["asyncio", "uvloop"])
def test_idle_connections_time_out(sock_path: str, uv: bool) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path, tcp=("127.0.0.1", 0), idle_timeout=0.2) as server:
            silent = await Peer.connect(server, sock_path)
            half_open = await Peer.connect(server, None)
            half_open.writer.write(b"PI")
            assert await silent.eof() == b""
            assert await half_open.eof() == b""
            for peer in (silent, half_open):
                await peer.close()

    run(main, uv=uv)


def test_client_that_never_reads_is_paused_not_buffered(sock_path: str, monkeypatch: pytest.MonkeyPatch, path: bool) -> None:
    if path:
        pytest.skip("asyncio transports only; the C loop's equivalent is test_client_that_reads_late_gets_every_reply")
    paused = asyncio.Event()
    original = connection_module.Connection.pause_writing

    def pause_writing(self: connection_module.Connection) -> None:
        original(self)
        paused.set()

    monkeypatch.setattr(connection_module.Connection, "pause_writing", pause_writing)
    requests = 20_000  # STATS replies are ~15x their request: 120 kB in, ~2 MB out

    async def main() -> None:
        async with serving(unix_path=sock_path, stats=lambda: {"padding": "x" * 40}) as server:
            peer = await Peer.connect(server, sock_path)
            peer.writer.write(b"STATS\n" * requests)
            await asyncio.wait_for(paused.wait(), 5)
            (connection,) = server._connections
            assert connection._transport is not None
            buffered = connection._transport.get_write_buffer_size()
            assert buffered < 64 * 1024 + 256 * 200  # high-water mark plus one batch
            replies = 0
            while replies < requests:
                line = await peer.reader.readline()
                assert line.startswith(b"STATS {")
                replies += 1
            assert await peer.ask("PING") == [b"PONG\n"]
            await peer.close()

    run(main)


def test_client_that_reads_late_gets_every_reply(sock_path: str) -> None:
    requests = 100_000  # 4.6 MB of requests: far past the kernel's buffers and the high-water mark

    async def main() -> None:
        async with serving(unix_path=sock_path) as server:
            peer = await Peer.connect(server, sock_path)
            peer.writer.write(f"CHECK {RELAY}\nCHECK nobody@marketplace.amazon.com\n".encode() * (requests // 2))
            with pytest.raises(asyncio.TimeoutError):  # the server stopped reading: we cannot write it all
                await asyncio.wait_for(peer.writer.drain(), 0.5)
            for i in range(requests):
                assert await peer.reader.readline() == (BLOCKED if i % 2 == 0 else b"OK\n")
            assert await peer.ask("PING") == [b"PONG\n"]
            await peer.close()

    run(main, timeout=60)


def test_half_closed_client_gets_every_reply(sock_path: str) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path) as server:
            peer = await Peer.connect(server, sock_path)
            peer.writer.write(b"PING\n" * 3000 + f"CHECK {RELAY}\n".encode())
            peer.writer.write_eof()
            assert await peer.eof() == b"PONG\n" * 3000 + BLOCKED
            await peer.close()

    run(main)


# -- hooks, stats, lifecycle -----------------------------------------------------------------------


def test_address_learned_hook_and_its_failure(sock_path: str) -> None:
    learned: list[tuple[str, str, str | None]] = []

    def hook(address: str, order_id: str, client: str | None) -> None:
        learned.append((address, order_id, client))
        raise RuntimeError("database down")

    async def main() -> None:
        async with serving(unix_path=sock_path, on_address_learned=hook, logger=_QuietLogger()) as server:
            peer = await Peer.connect(server, sock_path)
            assert await peer.ask(f"CHECK <New@marketplace.amazon.com> {ORDER}", f"CHECK {RELAY} {ORDER}") == [BLOCKED, BLOCKED]
            await peer.close()

    run(main)
    assert learned == [("new@marketplace.amazon.com", ORDER, f"uid {os.getuid()}")]  # SO_PEERCRED, both paths


def test_stats_json(sock_path: str) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path, stats=lambda: {"notices": 12, "messages": 30}) as server:
            peer = await Peer.connect(server, sock_path)
            await peer.ask(f"CHECK {RELAY}", "CHECK x@y", f"ORDER {ORDER}")
            (line,) = await peer.ask("STATS")
            verb, payload = line.rstrip(b"\n").split(b" ", 1)
            figures = json.loads(payload)
            assert verb == b"STATS"
            assert {k: figures[k] for k in ("entries", "lookups", "hits", "connections", "notices", "messages")} == {
                "entries": 2, "lookups": 3, "hits": 2, "connections": 1, "notices": 12, "messages": 30,
            }
            assert figures["uptime_s"] >= 0
            await peer.close()

    run(main)


def test_socket_file_handling(sock_path: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)  # bound, never listening, closed: a stale file left by a crash
    stale.close()

    async def main() -> None:
        async with serving(unix_path=sock_path) as server:
            peer = await Peer.connect(server, sock_path)
            assert await peer.ask("PING") == [b"PONG\n"]
            with pytest.raises(OSError) as live:
                await QueryServer(make_index(), unix_path=sock_path, tcp=None).start()
            assert live.value.errno == errno.EADDRINUSE
            await peer.close()
        with open(sock_path, "w") as regular:
            regular.write("not a socket")
        with pytest.raises(FileExistsError):
            await QueryServer(make_index(), unix_path=sock_path, tcp=None).start()

    run(main)


def test_client_errors(sock_path: str) -> None:
    with pytest.raises(QueryError, match="cannot reach"):
        QueryClient(sock_path + ".missing", timeout=1).ping()

    def answer_garbage(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(1024)
            connection.sendall(b"MAYBE\n")

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(sock_path)
        listener.listen()
        thread = threading.Thread(target=answer_garbage, args=(listener,))
        thread.start()
        with QueryClient(sock_path, timeout=2) as client, pytest.raises(QueryError, match="unexpected"):
            client.check(RELAY)
        thread.join(TIMEOUT)


class _QuietLogger:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


# -- the protocol tests' conversation, over the socket, on both paths ------------------------------


@pytest.mark.parametrize("chunk", [1, 16, 4096])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_the_protocol_conversation_over_the_socket(sock_path: str, chunk: int, ending: bytes) -> None:
    from tests.lookup.test_lookup_protocol import CONVERSATION

    stream = b"".join(request.encode("latin-1") + ending for request, _ in CONVERSATION)
    expected = b"".join(reply for _, reply in CONVERSATION)

    async def main() -> None:
        async with serving(unix_path=sock_path) as server:
            peer = await Peer.connect(server, sock_path)
            for start in range(0, len(stream), chunk):
                peer.writer.write(stream[start : start + chunk])
                await peer.writer.drain()
            assert await peer.reader.readexactly(len(expected)) == expected
            await peer.close()

    run(main)


@pytest.mark.parametrize("chunk", [1, 16, 4096])
def test_line_limits_over_the_socket(sock_path: str, chunk: int) -> None:
    longest = b"PING" + b" " * 1020  # 1024 bytes before the LF: answered; with a CR, one too many
    stream = longest + b"\n" + longest + b"\r\n" + b"PING\n"

    async def main() -> None:
        async with serving(unix_path=sock_path) as server:
            peer = await Peer.connect(server, sock_path)
            try:
                for start in range(0, len(stream), chunk):
                    peer.writer.write(stream[start : start + chunk])
                    await peer.writer.drain()
            except ConnectionError:
                pass  # closed at the over-long line while we were still sending
            assert await peer.eof() == b"PONG\nERR line too long\n"
            await peer.close()

    run(main)
