"""Fair query service, on both paths: caps per peer, the request deadline, descriptor-derived caps,
rate-limited logging, and a flood of 5,000 abusive connections beside a well-behaved client.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inbox_daemon.lookup.limits import derive_limits
from tests.lookup.test_lookup_server import BLOCKED, Peer, path, run, serving, until  # noqa: F401 (path: autouse, both paths)
from tests.support.logs import Recorder

FLOOD = str(Path(__file__).with_name("flood.py"))
TOO_MANY = b"ERR too many connections\n"
COARSE_CLOCK_S = 0.01  # a kernel tick or two: how far behind the C loop's clock may run


def test_a_trickled_byte_does_not_extend_the_request_deadline(sock_path: str) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path, request_timeout=0.3, idle_timeout=30) as server:
            slow = await Peer.connect(server, sock_path)
            good = await Peer.connect(server, sock_path)
            started = time.monotonic()
            closed = asyncio.create_task(slow.reader.read())
            while not closed.done():  # one byte every 20 ms: each would reset an idle timer
                try:
                    slow.writer.write(b"C")
                except ConnectionError:
                    pass  # closed between the check and the write
                assert await good.ask("PING") == [b"PONG\n"]
                await asyncio.wait([closed], timeout=0.02)
            try:
                assert closed.result() == b""  # closed without a word
            except ConnectionError:
                pass  # or our next byte met the closed socket first
            # Not before the deadline, give or take the C loop's clock: CLOCK_MONOTONIC_COARSE,
            # read once per wake-up, runs up to a kernel tick (4 ms at HZ=250) behind.
            assert 0.3 - COARSE_CLOCK_S <= time.monotonic() - started < 5
            assert await good.ask(f"CHECK {'jxxvbothd0wtflh@marketplace.amazon.com'}") == [BLOCKED]
            await until(lambda: server.limit_counts()["closed_deadline"] == 1)
            for peer in (slow, good):
                await peer.close()

    run(main)


def test_whole_lines_in_pieces_within_the_deadline_are_answered(sock_path: str) -> None:
    async def main() -> None:
        async with serving(unix_path=sock_path, request_timeout=5) as server:
            peer = await Peer.connect(server, sock_path)
            for _ in range(3):
                for piece in (b"CHE", b"CK jxxvbothd0wtflh@market", b"place.amazon.com\r", b"\n"):
                    peer.writer.write(piece)
                    await peer.writer.drain()
                assert await peer.reader.readline() == BLOCKED
            assert server.limit_counts()["closed_deadline"] == 0
            await peer.close()

    run(main)


AS_NOBODY = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("python3", path="/usr/bin:/bin") is None,
                               reason="needs root to run a client as nobody")
PING_OVER_TCP = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); s.sendall(b'PING\\n')\n"
    "print(s.makefile('rb').readline().decode(), end='')\n"
)


@AS_NOBODY
def test_loopback_tcp_connections_are_capped_per_user_not_per_address() -> None:
    """Every local user connects from 127.0.0.0/8: there a peer is the user owning the other
    end (sock_diag), so another loopback address is the same peer and another user is not."""
    async def main() -> None:
        async with serving(tcp=("127.0.0.1", 0), max_connections=8, max_connections_per_peer=2) as server:
            address = server.tcp_address
            assert address is not None
            mine = [Peer(*await asyncio.open_connection(*address, local_addr=(source, 0)))
                    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3")]
            assert await mine[2].eof() == TOO_MANY
            python = shutil.which("python3", path="/usr/bin:/bin")
            assert python is not None
            other = await asyncio.to_thread(subprocess.run, [python, "-c", PING_OVER_TCP, *map(str, address)],
                                            user="nobody", capture_output=True, timeout=10)
            assert other.stdout == b"PONG\n", other.stderr
            assert await mine[0].ask("PING") == [b"PONG\n"]
            assert server.limit_counts()["refused_peer"] == 1
            for peer in mine:
                await peer.close()

    run(main)


@AS_NOBODY
def test_unix_connections_are_capped_per_uid(sock_path: str) -> None:
    client = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'PING\\n')\n"
        "print(s.makefile('rb').readline().decode(), end='')\n"
    )

    async def main() -> None:
        async with serving(unix_path=sock_path, max_connections=8, max_connections_per_peer=2) as server:
            os.chmod(os.path.dirname(sock_path), 0o755)
            os.chmod(sock_path, 0o666)  # nobody is not in root's group
            mine = [await Peer.connect(server, sock_path) for _ in range(3)]
            assert await mine[2].eof() == TOO_MANY
            python = shutil.which("python3", path="/usr/bin:/bin")
            assert python is not None
            other = await asyncio.to_thread(
                subprocess.run, [python, "-c", client, sock_path], user="nobody", capture_output=True, timeout=10
            )
            assert other.stdout == b"PONG\n", other.stderr
            assert await mine[0].ask("PING") == [b"PONG\n"]
            for peer in mine:
                await peer.close()

    run(main)


@pytest.mark.slow
def test_limit_hits_are_logged_once_per_interval_with_a_count(sock_path: str) -> None:
    log = Recorder()

    async def main() -> None:
        async with serving(unix_path=sock_path, max_connections=8, max_connections_per_peer=1, log_interval=0.2, logger=log) as server:
            holder = await Peer.connect(server, sock_path)
            assert await holder.ask("PING") == [b"PONG\n"]
            for _ in range(25):
                refused = await Peer.connect(server, sock_path)
                assert await refused.eof() == TOO_MANY
                await refused.close()
            await until(lambda: bool(log.events("query.limits_hit")))
            await asyncio.sleep(0.5)  # two more intervals: nothing new, so no more lines
            await holder.close()

    run(main)
    lines = log.events("query.limits_hit")
    assert len(lines) <= 2 and {line["limit"] for line in lines} == {"refused_peer"}  # the first, a summary
    assert sum(line.get("occurrences", 1) * (not line.get("summary")) + line["suppressed"] for line in lines) == 25
    (limits,) = log.events("query.limits")
    assert limits["max_connections"] == 8 and limits["max_connections_per_peer"] == 1


def test_caps_follow_the_descriptor_limit() -> None:
    # In a child: lower the hard limit to 400 (soft 100); the cap is what 400 leaves.
    code = (
        "import json, resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 400))\n"
        "from inbox_daemon.lookup.limits import derive_limits\n"
        "limits = derive_limits(1024, 256, 150)\n"
        "print(json.dumps([limits.max_connections, limits.max_per_peer, limits.descriptor_limit,"
        " resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30).stdout
    cap, per_peer, limit, soft = json.loads(out)
    assert limit == soft == 400  # the soft limit was raised to the hard one
    assert 200 < cap <= 400 - 150  # less what the process holds already
    assert per_peer == cap - cap // 4 < 256
    assert derive_limits(10, 256, 0).max_per_peer == 8  # three quarters of a small cap


@pytest.mark.slow
@AS_NOBODY
@pytest.mark.timeout(120)
def test_five_thousand_abusive_connections_do_not_starve_another_peer() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < 6000:
        pytest.skip("needs RLIMIT_NOFILE of 6000 for the flood")
    log = Recorder()

    async def main() -> None:
        async with serving(
            tcp=("127.0.0.1", 0), max_connections=1024, max_connections_per_peer=64,
            request_timeout=0.5, idle_timeout=2.0, log_interval=0.5, logger=log,
        ) as server:
            assert server.tcp_address is not None
            port = str(server.tcp_address[1])
            flood = await asyncio.create_subprocess_exec(
                sys.executable, FLOOD, "flood", "127.0.0.1", port, "127.0.0.1", "5000", stdout=subprocess.PIPE
            )
            try:
                assert flood.stdout is not None
                ready = await flood.stdout.readline()
                assert ready.startswith(b"READY ")
                # The slow-byte connections admitted first run out of time; the flood reopens
                # them, so the probe below meets every kind of abuse at once.
                await until(lambda: server.limit_counts()["closed_deadline"] > 0)
                await until(lambda: server.limit_counts()["refused_peer"] >= 5000 - 64)  # every one tried
                probe = await asyncio.to_thread(  # another local user: another peer
                    subprocess.run, [shutil.which("python3", path="/usr/bin:/bin") or "python3", FLOOD, "probe",
                                     "127.0.0.1", port, "127.0.0.2", "2000"], capture_output=True, user="nobody",
                    timeout=60,
                )
                assert probe.returncode == 0, probe.stderr
                figures = json.loads(probe.stdout)
                held, path = server.connections, server.path
            finally:
                flood.terminate()
                flooded = json.loads((await flood.communicate())[0])
            counts = server.limit_counts()
        latencies = sorted(figures["latencies_us"])
        p99 = latencies[int(len(latencies) * 0.99)]
        print(f"good peer beside the flood: p50 {latencies[len(latencies) // 2]} us, p99 {p99} us; "
              f"flood {flooded}; server {counts}; connections held {held}")
        assert figures["errors"] == 0 and len(latencies) == 2000
        assert held <= 64 + 1  # the flood's share, and the good peer
        assert counts["refused_peer"] >= 5000 - 64
        assert counts["closed_deadline"] > 0  # the slow-byte ones, before any idle timeout
        # The C loop, which serves in production, keeps the good peer under 5 ms at p99 (measured
        # 20-60 us); the pure Python reference only has to keep serving it (measured 53-486 us
        # on a quiet machine, over 100 ms on one loaded by other test runs).
        assert p99 < (5_000 if path == "c" else 50_000)
        assert log.events("query.limits_hit")

    run(main, uv=True, timeout=100)  # the daemon's loop (cli/serve.py)
