"""The client never answers for the wrong request: against a real daemon, through a proxy that
delays, trickles, glues garbage or extra lines to replies and sends lines nobody asked for, a
call either raises QueryError or returns the answer for its own key; interrupted calls
(cancellation, timeouts, KeyboardInterrupt) leave nothing behind for the next call to read."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbox_daemon.client import AsyncClient, Client, Key, Reply, State
from inbox_daemon.errors import QueryError
from tests.support.daemon import DaemonProcess, write_config
from tests.support.proxy import MeddlingProxy
from tests.support.seeding import seed_blocklist, unknown_keys

TIMEOUT = 30


class Daemon:
    """The seeded daemon, its TCP address, and which keys are blocked."""

    def __init__(self, process: DaemonProcess, rows: list[tuple[str, str]]) -> None:
        self.process = process
        host, port = process.wait_event("ready")["query_tcp"].rsplit(":", 1)
        self.tcp = (host, int(port))
        self.blocked = [address for _, address in rows] + [order for order, _ in rows]
        self.clean = [address for _, address in unknown_keys(20)] + [order for order, _ in unknown_keys(5, seed=7)]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("failclosed")
    config = write_config(tmp / "c.toml", {"query": {"tcp": "127.0.0.1:0", "sync_seconds": 0.2}})
    process = DaemonProcess(tmp / "home", config)
    try:
        process.start()
        yield Daemon(process, seed_blocklist(process, tmp, 20))
    finally:
        process.ensure_stopped()


@pytest.fixture
def proxy(daemon: Daemon) -> Iterator[MeddlingProxy]:
    meddler = MeddlingProxy(daemon.tcp, delay=0.6, pace=0.2)
    try:
        yield meddler
    finally:
        meddler.close()


def ask(client: Client, key: str) -> Reply:
    """CHECK for an address, ORDER for an order id."""
    return client.check(key) if "@" in key else client.order(key)


async def ask_async(client: AsyncClient, key: str) -> Reply:
    return await (client.check(key) if "@" in key else client.order(key))


# -- each way a stream falls out of step, shown once ---------------------------------------------


@pytest.mark.parametrize("how", ["wait_for", "asyncio.timeout", "task.cancel"])
def test_a_cancelled_check_leaves_no_reply_for_the_next(daemon: Daemon, how: str) -> None:
    """A caller's own timeout cancels check() after its request went out; the next call on the
    same client must read its own reply, not the cancelled one's."""
    async def cancelled(client: AsyncClient, key: str) -> None:
        if how == "wait_for":
            await asyncio.wait_for(client.check(key), 1e-5)
        elif how == "asyncio.timeout":
            async with asyncio.timeout(1e-5):
                await client.check(key)
        else:
            task = asyncio.create_task(client.check(key))
            await asyncio.sleep(0)  # the request goes out on the task's first step
            task.cancel()
            await task

    async def main() -> list[bool]:
        answers = []
        async with AsyncClient(daemon.process.socket_path, timeout=10) as client:
            for i in range(20):
                try:
                    await cancelled(client, daemon.clean[i])
                except (TimeoutError, asyncio.CancelledError):
                    pass
                answers.append((await client.check(daemon.blocked[i])).blocked)
        return answers

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) == [True] * 20


def test_an_unsolicited_line_between_calls_is_not_an_answer(daemon: Daemon, proxy: MeddlingProxy) -> None:
    with Client(("127.0.0.1", proxy.port), timeout=5) as client:
        assert not client.check(daemon.clean[0]).blocked
        proxy.inject(b"OK\n")
        assert client.check(daemon.blocked[0]).blocked  # on a fresh connection
        assert client.state is State.IDLE

    async def main() -> bool:
        async with AsyncClient(("127.0.0.1", proxy.port), timeout=5) as client:
            assert not (await client.check(daemon.clean[0])).blocked
            proxy.inject(b"OK\n")
            return (await client.check(daemon.blocked[0])).blocked

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT))


@pytest.mark.parametrize("action", ["garbage_before", "garbage_after", "extra_before", "extra_after"])
def test_garbage_or_an_extra_line_glued_to_a_reply_raises(daemon: Daemon, proxy: MeddlingProxy, action: str) -> None:
    """Bytes beyond the replies asked for mean the stream is out of step: the call raises and
    the connection is dropped, the next call answers on a new one."""
    with Client(("127.0.0.1", proxy.port), timeout=5) as client:
        proxy.arm(action)
        with pytest.raises(QueryError):
            client.check(daemon.clean[0])
        assert client.state is State.BROKEN
        assert client.check(daemon.blocked[0]).blocked

    async def main() -> bool:
        async with AsyncClient(("127.0.0.1", proxy.port), timeout=5) as client:
            proxy.arm(action)
            with pytest.raises(QueryError):
                await client.check(daemon.clean[0])
            assert client.state is State.BROKEN
            return (await client.check(daemon.blocked[0])).blocked

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT))


class _Interrupt(BaseException):
    """What gevent.Timeout and Celery's soft time limit are: a BaseException raised anywhere."""


@pytest.mark.parametrize("raised", [KeyboardInterrupt, _Interrupt])
def test_an_interrupt_mid_exchange_discards_the_connection(
    daemon: Daemon, proxy: MeddlingProxy, raised: type[BaseException],
) -> None:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise raised

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with Client(("127.0.0.1", proxy.port), timeout=5) as client:
            proxy.arm("delay")  # the reply to the interrupted call arrives after it gave up
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(raised):
                client.check(daemon.clean[0])
            assert client.state is State.BROKEN
            assert client.check(daemon.blocked[0]).blocked
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("many", [False, True])
def test_the_timeout_is_one_deadline_for_the_whole_call(daemon: Daemon, proxy: MeddlingProxy, many: bool) -> None:
    """A reply trickled a byte at a time (0.2 s apart: about 6 s for a BLOCKED line) does not
    hold a call with timeout=1 past its deadline: it raises instead of answering late."""
    keys: list[Key] = [daemon.blocked[0], daemon.blocked[1]]
    with Client(("127.0.0.1", proxy.port), timeout=1) as client:
        proxy.arm("trickle")
        with pytest.raises(QueryError, match="within 1s"):
            client.check_many(keys) if many else client.check(daemon.blocked[0])

    async def main() -> None:
        async with AsyncClient(("127.0.0.1", proxy.port), timeout=1) as client:
            proxy.arm("trickle")
            await (client.check_many(keys) if many else client.check(daemon.blocked[0]))

    with pytest.raises(QueryError, match="within 1s"):
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))


# -- the property: random interference, every answer still its own ------------------------------

OPS = ["plain", "plain", "cancel", "timeout", "unsolicited", *MeddlingProxy.ACTIONS[:4], "many"]


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[str, int, float]]:
    return draw(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 16), st.floats(0, 0.02)),
                         min_size=1, max_size=12))


def _expected(daemon: Daemon, n: int) -> tuple[str, bool]:
    pool = daemon.blocked if n % 2 else daemon.clean
    return pool[n // 2 % len(pool)], bool(n % 2)


def _prepare(daemon: Daemon, proxy: MeddlingProxy, op: str, n: int) -> tuple[str, list[str]]:
    """Arm the proxy for ``op``; the key for one call and the three keys for ``many``."""
    if op in MeddlingProxy.ACTIONS:
        proxy.arm(op)
    if op == "unsolicited":
        proxy.inject(b"OK\n")
    if op in ("cancel", "timeout"):
        proxy.arm("delay")
    return _expected(daemon, n)[0], [_expected(daemon, n + i)[0] for i in range(3)]


def _check_answer(daemon: Daemon, n: int, reply: Reply) -> None:
    _, blocked = _expected(daemon, n)
    assert reply.blocked == blocked, f"key {n} answered {reply}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=scripts())
def test_property_async_every_answer_belongs_to_its_call(
    daemon: Daemon, proxy: MeddlingProxy, script: list[tuple[str, int, float]],
) -> None:
    async def step(client: AsyncClient, op: str, n: int, wait: float) -> None:
        key, keys = _prepare(daemon, proxy, op, n)
        if op == "many":
            for i, reply in enumerate(await client.check_many(keys)):
                _check_answer(daemon, n + i, reply)
            return
        if op == "cancel":
            reply = await asyncio.wait_for(ask_async(client, key), wait)
        else:
            reply = await ask_async(client, key)
        _check_answer(daemon, n, reply)

    async def main() -> None:
        async with AsyncClient(("127.0.0.1", proxy.port), timeout=0.3) as client:
            for op, n, wait in script:
                try:
                    await step(client, op, n, wait)
                except (QueryError, TimeoutError):
                    pass
            proxy.disarm()
            for n in range(4):  # after all that, the client still answers, and rightly
                _check_answer(daemon, n, await ask_async(client, _expected(daemon, n)[0]))

    proxy.disarm()
    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=scripts())
def test_property_sync_every_answer_belongs_to_its_call(
    daemon: Daemon, proxy: MeddlingProxy, script: list[tuple[str, int, float]],
) -> None:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise _Interrupt

    def step(client: Client, op: str, n: int, wait: float) -> None:
        key, keys = _prepare(daemon, proxy, op, n)
        if op == "many":
            for i, reply in enumerate(client.check_many(keys)):
                _check_answer(daemon, n + i, reply)
            return
        if op == "cancel":  # the sync form of a cancellation: an exception raised mid-call
            signal.setitimer(signal.ITIMER_REAL, wait + 0.001)
        try:
            _check_answer(daemon, n, ask(client, key))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    proxy.disarm()
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with Client(("127.0.0.1", proxy.port), timeout=0.3) as client:
            for op, n, wait in script:
                try:
                    step(client, op, n, wait)
                except (QueryError, _Interrupt):
                    pass
            proxy.disarm()
            for n in range(4):
                _check_answer(daemon, n, ask(client, _expected(daemon, n)[0]))
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_the_proxy_meddles(daemon: Daemon, proxy: MeddlingProxy) -> None:
    """The property tests' interference is real: through the proxy, an armed extra line does
    reach the client glued to the daemon's reply."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        proxy.arm("extra_after")
        sock.sendall(f"CHECK {daemon.blocked[0]}\n".encode())
        data = b""
        while data.count(b"\n") < 2:
            data += sock.recv(1024)
        assert data.startswith(b"BLOCKED ") and data.endswith(b"\nOK\n")


def readme_snippet() -> Callable[..., bool]:
    """The plain-socket ``blocked()`` from the README's "Asking the blocklist", as printed."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("## Asking the blocklist"):]
    code = section[section.index("```python\nimport socket"):].split("```")[1].removeprefix("python\n")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return cast(Callable[..., bool], namespace["blocked"])


def test_the_readme_snippet_answers_and_keeps_one_deadline(daemon: Daemon, tmp_path: Path) -> None:
    blocked = readme_snippet()
    assert blocked(daemon.blocked[0], "", path=daemon.process.socket_path) is True
    assert blocked(daemon.clean[0], "", path=daemon.process.socket_path) is False

    path = str(tmp_path / "trickle.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()

    def trickle() -> None:  # a reply, one byte every 0.5 s: each read comes well within 5 s
        with listener, listener.accept()[0] as conn:
            conn.recv(1024)
            try:
                for byte in b"OK\n":
                    conn.sendall(bytes([byte]))
                    time.sleep(0.5)
            except OSError:
                pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    with pytest.raises((OSError, RuntimeError)):
        blocked(daemon.blocked[0], "", path=path, timeout=0.3)
    thread.join(TIMEOUT)
