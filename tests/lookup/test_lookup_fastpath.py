"""The C accelerator (lookup/_fastpath.c) against the pure-Python Responder, its reference.

Same bytes and same counters for every kind of line, base and delta entries, removed keys, and an
index that changes in the middle of a pipelined read. Skipped when the extension is not built,
except under CI (``CI`` set), whose install builds it: there its absence fails.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.lookup import BlocklistIndex, QueryServer, protocol
from inbox_daemon.lookup import index as index_module
from inbox_daemon.lookup.protocol import MAX_LINE, Counters, Responder

from .wire import serve_lines

FIRST_SEEN = 1_795_673_854  # 2026-11-26T06:17:34Z
ORDER = "114-3941689-8772232"
BASE = [f"base{i}@marketplace.amazon.com" for i in range(40)]  # built into the sorted arrays
DELTA = [f"delta{i}@marketplace.amazon.com" for i in range(8)]  # set afterwards: the delta dict
REMOVED = BASE[:5] + DELTA[-2:]  # base tombstones and keys popped from the delta
UNKNOWN = ["nobody@marketplace.amazon.com", "a_b.c-d@e.f", "x@y", "x@y.", "-@-"]
ADDRESSES = BASE + DELTA + UNKNOWN


@pytest.fixture(autouse=True)
def fastpath() -> Iterator[object]:
    module = protocol.FASTPATH
    if module is None:
        if os.environ.get("CI"):
            pytest.fail("inbox_daemon.lookup._fastpath is not built (CI's install builds it)")
        pytest.skip("inbox_daemon.lookup._fastpath is not built")
    yield module
    protocol.FASTPATH = module


def make_index() -> BlocklistIndex:
    index = BlocklistIndex.build([], delta_limit=1 << 20)  # no merge: base and delta stay apart
    for i, address in enumerate(BASE):
        index.set_address(address, FIRST_SEEN + i * 86_399, i + 1)
    index.merge()
    for i, address in enumerate(DELTA):
        index.set_address(address, (1 << 32) - 1 - i, (1 << 32) - 1 - i)  # the extremes of both fields
    index.set_address("a_b.c-d@e.f", 0, 1)  # first seen unknown: 1970-01-01T00:00:00Z
    index.set_order(ORDER, FIRST_SEEN, 2)
    for address in REMOVED:
        index.set_address(address, 0, 0)
    assert index._delta and index._keys
    return index


def both(index: BlocklistIndex, lines: list[bytes], start: int = 0, stop: int | None = None) -> tuple[bytes, tuple[int, int]]:
    """respond_lines with the current FASTPATH; a STATS after it shows the counters on the wire too."""
    counters = Counters()
    responder = Responder(index, counters=counters, stats=dict)
    replies = responder.respond_lines(lines, start, stop) + responder.respond(b"STATS")
    return replies, (counters.lookups, counters.hits)


def compare(index: BlocklistIndex, lines: list[bytes], start: int = 0, stop: int | None = None) -> bytes:
    module = protocol.FASTPATH
    fast = both(index, lines, start, stop)
    protocol.FASTPATH = None
    try:
        reference = both(index, lines, start, stop)
    finally:
        protocol.FASTPATH = module
    assert fast == reference
    return fast[0]


def forms(address: str) -> list[bytes]:
    """Lines about one address: the fast-path form and near misses that must take Python's path."""
    local, _, domain = address.partition("@")
    plain = f"CHECK {address}"
    return [
        text.encode("latin-1")
        for text in (
            plain, plain, plain, f"{plain}\r", f"check {address}", f"CHECK {address.upper()}",
            f"CHECK  {address}", f" {plain}", f"{plain} ", f"CHECK\t{address}", f"CHECK <{address}>",
            f"CHECK {local}+tag@{domain}", f"{plain} {ORDER}", f"{plain} 12-3", f"CHECK @{address}",
            f"{plain}@", f"CHECK {local}@@{domain}", f"CHECK {local}\xe9@{domain}", f"CHECK {local}\x00@{domain}",
            f"CHECK {local}", f"CHECK {local}@", f"CHECK {local}+@{domain}", f"CHECK {local}/@{domain}",
        )
    ]


OTHER_LINES = [b"", b" ", b"\r", b"PING", b"STATS", b"ping", f"ORDER {ORDER}".encode(), b"ORDER 999-9999999-9999999",
               b"CHECK", b"CHECK ", b"CHECK @", b"CHECK a@", b"CHECK @b", b"CHECK a@b", b"HUH", b"\xff\xfe",
               b"CHECK " + b"a" * (MAX_LINE - 8) + b"@b", b"CHECK " + b"a" * (2 * MAX_LINE) + b"@b"]
LINE = st.one_of(
    st.sampled_from(ADDRESSES).flatmap(lambda address: st.sampled_from(forms(address))),
    st.sampled_from(OTHER_LINES),
    st.binary(max_size=40),
    st.binary(max_size=12).map(lambda tail: b"CHECK x" + tail + b"@y"),
)


@settings(max_examples=400)
@given(st.lists(LINE, max_size=60), st.data())
def test_c_and_python_paths_agree_on_any_mix_of_lines(lines: list[bytes], data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(lines)))
    stop = data.draw(st.integers(start, len(lines)))
    compare(make_index(), lines, start, stop)


def test_every_kind_of_entry_and_line() -> None:
    index = make_index()
    lines = [line for address in ADDRESSES + REMOVED for line in forms(address)] + OTHER_LINES
    replies = compare(index, lines)
    assert compare(index, [f"CHECK {a}".encode() for a in ADDRESSES]).count(b"BLOCKED") == 40 + 8 - 7 + 1
    assert b"BLOCKED 2106-02-07T06:28:15Z 4294967295\n" in replies  # uint32 extremes, from the delta
    assert b"BLOCKED 1970-01-01T00:00:00Z 1\n" in replies


def test_a_large_index_and_a_long_read() -> None:
    addresses = [f"{i:015x}@marketplace.amazon.com" for i in range(50_000)]
    index = BlocklistIndex()
    for i, address in enumerate(addresses[::2]):
        index.set_address(address, FIRST_SEEN + i, 1 + i % 7)  # merges along the way (delta limit)
    lines = [f"CHECK {address}".encode() for address in addresses[:3000]]
    replies = compare(index, lines)
    assert replies.count(b"BLOCKED") == 1500
    assert compare(BlocklistIndex(), lines).startswith(b"OK\n" * 3000)  # the empty index


def test_an_index_changed_by_a_line_in_the_middle_of_a_read() -> None:
    """A learned address (CHECK address order) changes the index; later lines must see it."""
    module = protocol.FASTPATH
    for fast in (module, None):
        index = BlocklistIndex()
        index.set_order(ORDER, FIRST_SEEN, 1)
        index.merge()  # one key in the base: the directory is the smallest there is

        def learned(address: str, order_id: str, client: str | None) -> None:
            index.set_address(address, FIRST_SEEN, 9)
            index.merge()  # new arrays' contents and a new directory

        responder = Responder(index, on_address_learned=learned)
        lines = [b"CHECK new@x.y", f"CHECK new@x.y {ORDER}".encode(), b"CHECK new@x.y", b"CHECK old@x.y"]
        protocol.FASTPATH = fast
        try:
            replies = responder.respond_lines(lines)
        finally:
            protocol.FASTPATH = module
        assert replies == b"OK\nBLOCKED 2026-11-26T06:17:34Z 1\nBLOCKED 2026-11-26T06:17:34Z 9\nOK\n"


def test_bad_arguments_raise_rather_than_read_out_of_bounds(fastpath: object) -> None:
    tables = make_index().shared_tables()
    answer_lines = fastpath.answer_lines
    with pytest.raises(IndexError):
        answer_lines([b"PING"], 0, 2, tables)
    with pytest.raises(TypeError):
        answer_lines([b"PING"], 0, 1, (bytearray(8), tables))
    with pytest.raises(RuntimeError):  # tables without a key cannot digest a query
        answer_lines([b"CHECK a@b"], 0, 1, type(tables).__new__(type(tables)))
    assert answer_lines([b"PING", b"CHECK a@b"], 1, 2, tables)[1:] == (2, 1, 0)
    with pytest.raises(ValueError):
        fastpath.Tables(b"short")


@pytest.mark.parametrize("native, fast", [(True, True), (False, True), (False, False)], ids=["c-loop", "python+c", "python"])
def test_pipelined_reads_through_the_server(native: bool, fast: bool) -> None:
    index = make_index()
    lines = [line for address in ADDRESSES for line in forms(address)[:6]] * 3 + [b"PING"]
    expected, _ = both(index, lines)
    expected = expected[: expected.rindex(b"STATS ")]
    module = protocol.FASTPATH
    protocol.FASTPATH = module if fast else None

    try:
        assert serve_lines(index, lines, len(expected), native=native) == expected
    finally:
        protocol.FASTPATH = module


# -- the C query loop (lookup/_loop.c) and the tables it reads ------------------------------------


def test_the_c_loop_is_the_one_serving_when_built() -> None:
    index = make_index()
    handed_over: list[bytes] = []

    async def main() -> list[bytes]:
        server = QueryServer(index, unix_path=None, tcp=("127.0.0.1", 0))
        assert server.path == "c"  # the default wherever the module is built
        await server.start()
        assert server._native is not None
        respond = server._native._respond

        def spy(line: bytes, client: str | None = None) -> bytes:
            handed_over.append(line)
            return respond(line, client)

        server._native._respond = spy
        try:
            address = server.tcp_address
            assert address is not None
            reader, writer = await asyncio.open_connection(*address)
            lines = [f"CHECK {BASE[10]}".encode(), b"CHECK nobody@marketplace.amazon.com", b"PING", f"ORDER {ORDER}".encode()]
            writer.write(b"".join(line + b"\n" for line in lines * 50))
            replies = [await reader.readline() for _ in range(200)]
            writer.close()
            assert server._native is not None and server._native.counters()["lookups"] == 100
            return replies
        finally:
            await server.stop()

    replies = asyncio.run(asyncio.wait_for(main(), 10))
    reference = Responder(index)
    lines = [f"CHECK {BASE[10]}".encode(), b"CHECK nobody@marketplace.amazon.com", b"PING", f"ORDER {ORDER}".encode()]
    assert replies == [reference.respond(line) for line in lines] * 50
    assert handed_over == [f"ORDER {ORDER}".encode()] * 50  # only the line the C loop leaves to Python


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 3)), min_size=1, max_size=400))
def test_the_tables_the_c_loop_reads_follow_every_change(changes: list[tuple[int, int]]) -> None:
    index = BlocklistIndex.build([], delta_limit=16)  # merges often, into new arrays once shared
    shared = index.shared_tables()
    addresses = [f"a{i}@marketplace.amazon.com" for i in range(301)]
    model: dict[str, int] = {}
    for step, (i, count) in enumerate(changes):
        index.set_address(addresses[i], FIRST_SEEN + step, count)
        model[addresses[i]] = FIRST_SEEN + step if count else 0
        if i % 7 == 0:
            index.set_order(f"114-3941689-{i:07d}", FIRST_SEEN, count)
            model[f"114-3941689-{i:07d}"] = FIRST_SEEN if count else 0
    for address in addresses:
        key = index.address_bytes_key(address.encode())
        assert shared.lookup(key) == index.lookup_key(key)
        hit = index.check_address(address)
        assert (hit.first_seen if hit else 0) == model.get(address, 0)
    for order, first_seen in model.items():
        if "@" not in order:
            hit = index.check_order(order)
            assert (hit.first_seen if hit else 0) == first_seen
    assert len(index) == sum(1 for v in model.values() if v)
    assert index.memory_bytes() >= shared.memory_bytes()


def test_the_c_tables_find_keys_sharing_their_high_half() -> None:
    """The side table (two pseudonyms with one high half) is mirrored for the C loop, through
    changes and a merge into new arrays."""
    high = "0123456789abcdef"
    first, second, third = (f"{high}{low:016x}" for low in (1, 2, 3))
    entry = type("Entry", (), {})

    def make(value: str, count: int) -> object:
        e = entry()
        e.kind, e.value, e.first_seen, e.count = "email", value, None, count  # type: ignore[attr-defined]
        return e

    index = BlocklistIndex.build([make(first, 1), make(second, 2)], delta_limit=1)
    shared = index.shared_tables()
    index.apply([make(third, 3), make(f"{1:032x}", 1), make(f"{2:032x}", 1)])
    index.merge()
    assert [shared.lookup(int(k, 16)) & 0xFFFFFFFF for k in (first, second, third)] == [1, 2, 3]
    index.apply([make(second, 0)])
    assert shared.lookup(int(second, 16)) == 0 and shared.lookup(int(f"{high}{4:016x}", 16)) == 0


def test_a_failure_to_answer_ends_that_session_only() -> None:
    index = make_index()

    async def main() -> None:
        server = QueryServer(index, unix_path=None, tcp=("127.0.0.1", 0), logger=_Quiet())
        await server.start()
        assert server._native is not None

        def broken(line: bytes) -> bytes:
            raise RuntimeError("a bug")

        server._native._respond = broken
        try:
            address = server.tcp_address
            assert address is not None
            reader, writer = await asyncio.open_connection(*address)
            other_reader, other_writer = await asyncio.open_connection(*address)
            writer.write(f"CHECK {BASE[10]}\nSTATS\nPING\n".encode())
            assert await reader.readline() == Responder(index).respond(f"CHECK {BASE[10]}".encode())
            assert await reader.read() == b""  # closed at the line Python could not answer
            other_writer.write(b"PING\n")
            assert await other_reader.readline() == b"PONG\n"
            for w in (writer, other_writer):
                w.close()
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 10))


class _Quiet:
    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


@pytest.mark.parametrize("size", [0, 1, 17, 5000, 70_000])
def test_the_c_directory_is_the_python_one(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    index = BlocklistIndex.build([])
    for i in range(size):
        if i % 3:
            index.set_address(f"d{i}@marketplace.amazon.com", FIRST_SEEN, 1)
        else:
            index.set_order(f"{i % 1000:03d}-{i:07d}-{i * 7 % 10**7:07d}", FIRST_SEEN, 1)
    index.merge()
    in_c = index._directory
    monkeypatch.setattr(index_module, "_fastpath", None)
    index._index_directory()
    assert index._directory == in_c and len(in_c) >= 2
