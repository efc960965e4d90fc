"""DATA read in chunks: the sans-IO ``DataBody`` over piece sizes 1, 7, 16 and 4096, then the real
listener (real Store and Flow on SQLite) and a raw asyncio client writing the bytes as it likes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from inbox_daemon.config import IntakeConfig, SmtpConfig
from inbox_daemon.intake.smtp import SmtpListener
from inbox_daemon.intake.smtp_data import END, DataBody, Refusal
from inbox_daemon.processing import Flow, Processor
from inbox_daemon.store import Store
from inbox_daemon.store.sealing import open_raw
from tests.conftest import TEST_KEYRING
from tests.intake.harness import query, until

Run = Callable[..., Any]
SIZES = [1, 7, 16, 4096]


def decode(stream: bytes, size: int, max_bytes: int | None = None, max_line: int = 1001) -> tuple[bytes | Refusal, bytes]:
    """Feed ``stream`` as ``read_body`` does with ``size`` bytes buffered: up to an END found in
    them (``readuntil``), or only the rest of an END once one began; (the message or the
    refusal, what was left unread)."""
    body, at = DataBody(max_bytes, max_line), 0
    while not body.ended:
        piece = stream[at:at + (len(END) - body.end_started if body.end_started else size)]
        found = piece.find(END)
        piece = piece if found == -1 else piece[:found + len(END)]
        body.feed(piece)
        at += len(piece)
    return (body.finish() if body.refusal is None else body.refusal), stream[at:]


@pytest.mark.parametrize("size", SIZES)
def test_dot_unstuffing_and_the_end_of_data(size: int) -> None:
    assert decode(b".\r\nQUIT\r\n", size) == (b"", b"QUIT\r\n")  # empty message; the rest stays unread
    assert decode(b"..\r\n.\r\n", size)[0] == b".\r\n"  # a stuffed lone dot
    assert decode(b".x\r\n..y\r\n\r\n...\r\n.\r\nMAIL", size) == (b"x\r\n.y\r\n\r\n..\r\n", b"MAIL")
    assert decode(b"a.\r\nb\r\n.\r\n", size)[0] == b"a.\r\nb\r\n"  # a period not at a line start stays
    # Bare LFs never end DATA or unstuff (RFC 5321 4.1.1.4: only CRLF . CRLF).
    assert decode(b"a\n.\nb\r\n.\n\n.\r\nc\r\n.\r\n", size)[0] == b"a\n.\nb\r\n\n\n.\r\nc\r\n"


@pytest.mark.parametrize("size", SIZES)
def test_line_and_message_limits(size: int) -> None:
    assert decode(b"x" * 999 + b"\r\n.\r\n", size)[0] == b"x" * 999 + b"\r\n"  # 1001 octets with CRLF
    assert decode(b"x" * 1000 + b"\r\n.\r\n", size)[0] is Refusal.LINE_TOO_LONG
    assert decode(b"x" * 5000 + b".\r\n.\r\nNOOP\r\n", size) == (Refusal.LINE_TOO_LONG, b"NOOP\r\n")
    assert decode(b"abc\r\n..\r\n.\r\n", size, max_bytes=8)[0] == b"abc\r\n.\r\n"  # unstuffed size counts
    assert decode(b"abcd\r\n..\r\n.\r\n", size, max_bytes=8)[0] is Refusal.TOO_MUCH


# -- the real listener -------------------------------------------------------------------------


@asynccontextmanager
async def listening(db: Path, budget: int = 128 * 2**20, **smtp: Any) -> AsyncIterator[tuple[SmtpListener, Flow]]:
    store = await Store.open(f"sqlite:///{db}")
    flow = Flow(store, Processor(store), limits=IntakeConfig(bytes_in_flight=budget))
    await flow.start()
    listener = SmtpListener(flow, SmtpConfig(port=0, **smtp))
    await listener.start()
    try:
        yield listener, flow
    finally:
        await listener.stop()
        await flow.stop()
        await store.close()


class Client:
    """A raw SMTP client on asyncio streams: writes bytes as given, reads reply lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, address: tuple[str, int]) -> Client:
        client = cls(*await asyncio.open_connection(*address))
        assert (await client.reply()).startswith(b"220")
        await client.write(b"EHLO client.example\r\n")
        assert (await client.reply()).startswith(b"250")
        return client

    async def reply(self) -> bytes:
        while True:
            line = await self.reader.readline()
            if line[3:4] != b"-":
                return line

    async def write(self, data: bytes, size: int = 0) -> None:
        for at in range(0, len(data), size or len(data) or 1):
            self.writer.write(data[at:at + (size or len(data))])
            await self.writer.drain()

    async def transaction(self, content: bytes, size: int = 0) -> bytes:
        """MAIL, RCPT, DATA (pipelined, RFC 2920), then the content dot-stuffed."""
        await self.write(b"MAIL FROM:<fwd@seller.example>\r\nRCPT TO:<optout@sellers.example>\r\nDATA\r\n")
        assert [(await self.reply())[:3] for _ in range(3)] == [b"250", b"250", b"354"]
        await self.write(stuffed(content) + b".\r\n", size)
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def stuffed(content: bytes) -> bytes:
    """RFC 5321 4.5.2 as a client does it: a period that begins a line is doubled."""
    return (b"\r\n" + content).replace(b"\r\n.", b"\r\n..")[2:]


async def stored(db: Path) -> list[bytes]:
    """The stored messages, opened from their seal under the tests' key ring."""
    rows = await asyncio.to_thread(query, db, "SELECT data, key_id, sha256 FROM raw_messages ORDER BY id")
    opened = [open_raw(TEST_KEYRING, bytes(data), key_id, sha256) for data, key_id, sha256 in rows]
    assert all(why is None for _, why in opened), opened
    return [data for data, _ in opened]


def test_content_is_stored_byte_exact_whatever_the_tcp_writes(db_path: Path, run: Run) -> None:
    content = b".first\r\n..\r\nNUL \x00 and not UTF-8 \xff\xfe\xc3\r\n.\r\n\r\nlast line\r\n"

    async def main() -> list[bytes]:
        async with listening(db_path) as (listener, _flow):
            client = await Client.open(listener.address)
            replies = [await client.transaction(content.replace(b"last", tag), size)
                       for tag, size in ((b"one", 1), (b"odd", 7), (b"whole", 0))]
            await client.close()
            assert all(r.startswith(b"250 2.0.0") for r in replies), replies
            return await stored(db_path)

    assert run(main()) == [content.replace(b"last", tag) for tag in (b"one", b"odd", b"whole")]


def test_max_message_bytes_exactly_is_taken_one_more_is_552(db_path: Path, run: Run) -> None:
    at_limit = b"Subject: x\r\n\r\n" + b".y" * 300 + b"\r\n"  # stuffed on the wire: larger than the limit

    async def main() -> None:
        async with listening(db_path, max_message_bytes=len(at_limit)) as (listener, flow):
            client = await Client.open(listener.address)
            assert (await client.transaction(at_limit)).startswith(b"250")
            assert (await client.transaction(at_limit[:-2] + b"z\r\n")).startswith(b"552")
            await client.write(b"NOOP\r\n")
            assert (await client.reply()).startswith(b"250")  # the session lives on
            await client.close()
            assert await stored(db_path) == [at_limit]
            assert flow.bytes_in_flight == 0

    run(main())


def test_a_10_mb_line_without_crlf_is_refused_and_freed(db_path: Path, run: Run) -> None:
    async def main() -> None:
        async with listening(db_path, max_message_bytes=20 * 2**20) as (listener, flow):
            client = await Client.open(listener.address)
            assert (await client.transaction(b"x" * (10 * 2**20) + b"\r\n", 65_537)).startswith(b"500")
            assert (await client.transaction(b"Subject: next\r\n\r\nbody\r\n")).startswith(b"250")
            await client.close()
            assert await stored(db_path) == [b"Subject: next\r\n\r\nbody\r\n"]
            assert flow.bytes_in_flight == 0

    run(main())


def test_a_client_gone_mid_data_stores_nothing_and_releases_the_budget(db_path: Path, run: Run) -> None:
    async def main() -> None:
        async with listening(db_path) as (listener, flow):
            client = await Client.open(listener.address)
            await client.write(b"MAIL FROM:<fwd@seller.example>\r\nRCPT TO:<optout@sellers.example>\r\nDATA\r\n")
            assert [(await client.reply())[:3] for _ in range(3)] == [b"250", b"250", b"354"]
            await client.write(b"Subject: cut\r\n\r\n" + b"z" * 900_000)
            await until(lambda: flow.bytes_in_flight > 0, what="DATA counted")
            client.writer.transport.abort()
            await until(lambda: flow.bytes_in_flight == 0 and not listener.connections, what="budget released")
            assert await stored(db_path) == []

    run(main())


def test_pipelined_commands_after_the_end_of_data_are_answered(db_path: Path, run: Run) -> None:
    """RFC 2920: a client may send the next transaction's MAIL and RCPT (and DATA, last of a
    group) right behind the end of data; nothing of them is read as content."""
    async def main() -> None:
        async with listening(db_path) as (listener, _flow):
            client = await Client.open(listener.address)
            await client.write(b"MAIL FROM:<fwd@seller.example>\r\nRCPT TO:<optout@sellers.example>\r\nDATA\r\n")
            assert [(await client.reply())[:3] for _ in range(3)] == [b"250", b"250", b"354"]
            await client.write(b"Subject: one\r\n\r\n.\r\nMAIL FROM:<fwd@seller.example>\r\n"
                               b"RCPT TO:<optout@sellers.example>\r\nDATA\r\n")
            assert [(await client.reply())[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
            await client.write(b"Subject: two\r\n\r\n.\r\nQUIT\r\n")
            assert [(await client.reply())[:3] for _ in range(2)] == [b"250", b"221"]
            await client.close()
            assert await stored(db_path) == [b"Subject: one\r\n\r\n", b"Subject: two\r\n\r\n"]

    run(main())


def test_bare_lf_variants_are_still_seen_and_kept_inside(db_path: Path, run: Run) -> None:
    content = b"Subject: s\r\n\r\nbody\n.\nMAIL FROM:<x@evil.example>\r\n"

    async def main() -> None:
        async with listening(db_path) as (listener, _flow):
            client = await Client.open(listener.address)
            assert (await client.transaction(content, 3)).startswith(b"250")
            await client.close()
            assert listener.bare_lf.seen == 1
            assert await stored(db_path) == [content]

    run(main())


def test_the_byte_budget_still_closes_with_421(db_path: Path, run: Run) -> None:
    async def main() -> None:
        async with listening(db_path, budget=100_000) as (listener, flow):
            client = await Client.open(listener.address)
            reply = await client.transaction(b"Subject: big\r\n\r\n" + b"p" * 900 * 400 + b"\r\n")
            assert reply.startswith(b"421 4.3.2")
            await until(lambda: flow.bytes_in_flight == 0 and not listener.connections, what="budget released")
            assert await stored(db_path) == []

    run(main())


def sized(n: int) -> bytes:
    """A message of exactly ``n`` bytes (n >= 100) in 100-byte lines."""
    head = b"Subject: sized\r\n\r\n"
    line = b"s" * 98 + b"\r\n"
    body = line * ((n - len(head)) // 100)
    return head + body + b"t" * (n - len(head) - len(body) - 2) + b"\r\n"


def test_a_declared_size_is_reserved_before_354_and_a_full_budget_is_a_451(db_path: Path, run: Run) -> None:
    """RFC 1870: a client that gives SIZE= has it counted before the 354, so when the budget
    cannot hold it the answer is 451 4.3.2 before any content is sent; a smaller one still
    fits beside a transfer in progress, and everything reserved is given back."""
    mail = b"MAIL FROM:<fwd@seller.example> SIZE=%d\r\nRCPT TO:<optout@sellers.example>\r\nDATA\r\n"

    async def main() -> None:
        async with listening(db_path, budget=300_000) as (listener, flow):
            first = await Client.open(listener.address)
            await first.write(mail % 200_000)
            assert [(await first.reply())[:3] for _ in range(3)] == [b"250", b"250", b"354"]
            assert flow.bytes_in_flight == 200_000  # reserved, not a byte of content sent yet

            second = await Client.open(listener.address)
            await second.write(mail % 150_000)
            replies = [await second.reply() for _ in range(3)]
            assert [r[:3] for r in replies[:2]] == [b"250", b"250"] and replies[2].startswith(b"451 4.3.2"), replies
            assert flow.bytes_in_flight == 200_000
            await second.write(b"RSET\r\n" + mail % 50_000)
            assert [(await second.reply())[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
            await second.write(stuffed(sized(50_000)) + b".\r\n")
            assert (await second.reply()).startswith(b"250")

            await first.write(stuffed(sized(200_000)) + b".\r\n", 4096)
            assert (await first.reply()).startswith(b"250")
            await until(lambda: flow.bytes_in_flight == 0, what="reservations given back")
            for client in (first, second):
                await client.close()
            assert sorted(len(m) for m in await stored(db_path)) == [50_000, 200_000]

    run(main())


def test_a_client_that_sends_more_than_it_declared_is_held_to_the_budget(db_path: Path, run: Run) -> None:
    """SIZE= is a promise, not a limit the daemon trusts: bytes beyond it are counted as they
    come, and past the budget the transfer is cut off (421 4.3.2) and everything given back."""
    async def main() -> None:
        async with listening(db_path, budget=100_000) as (listener, flow):
            client = await Client.open(listener.address)
            await client.write(b"MAIL FROM:<fwd@seller.example> SIZE=1000\r\nRCPT TO:<optout@sellers.example>\r\nDATA\r\n")
            assert [(await client.reply())[:3] for _ in range(3)] == [b"250", b"250", b"354"]
            try:
                await client.write(stuffed(sized(400_000)) + b".\r\n", 8192)
            except ConnectionError:
                pass  # closed while we were still sending: the reply was written first
            assert (await client.reply()).startswith(b"421 4.3.2")
            await until(lambda: flow.bytes_in_flight == 0 and not listener.connections, what="budget released")
            assert await stored(db_path) == []

    run(main())
