"""Client library benchmark: how many keys a sender tool checks per second.

    .venv/bin/python bench/client.py [--entries N] [--rounds R]

Prints figures, asserts nothing: ``check_many`` of 10,000 keys (half blocked) with the sync
client over the Unix socket and TCP and with the asyncio client, and one ``check()`` at a time
for comparison. The server is bench/_serve.py (the daemon's QueryServer on uvloop, in its own
process) holding N blocked relay addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from _serve import blocked_addresses, unknown_addresses  # noqa: E402

from inbox_daemon.client import AsyncClient, Client  # noqa: E402

BATCH = 10_000


def serve(workdir: str, entries: int) -> tuple[subprocess.Popen[str], str, str]:
    path, tcp = f"{workdir}/q.sock", "127.0.0.1:%d" % _free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "_serve.py"), "serve", "--entries", str(entries),
                               "--socket", path, "--tcp", tcp], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    if not server.stdout.readline().startswith("READY"):  # "READY {figures}"
        server.kill()
        raise SystemExit("the bench server did not start")
    return server, path, tcp


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rate(label: str, rounds: int, keys: int, run: Callable[[], object]) -> None:
    run()  # warm: connect, caches
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    print(f"{label:<42} {keys / median:>12,.0f} keys/s (median of {rounds}; best {keys / best:,.0f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    blocked = list(itertools.islice(blocked_addresses(args.entries), BATCH // 2))
    keys = [k for pair in zip(blocked, unknown_addresses(BATCH // 2)) for k in pair]
    with tempfile.TemporaryDirectory(prefix="bench-client-") as workdir:
        server, path, tcp = serve(workdir, args.entries)
        try:
            print(f"{args.entries:,} blocked addresses; batches of {BATCH:,} keys, half blocked")
            with Client(path) as client:
                assert sum(r.blocked for r in client.check_many(keys)) == BATCH // 2
                rate("check_many, sync, Unix socket", args.rounds, BATCH, lambda: client.check_many(keys))
                rate("check() one at a time, sync, Unix socket", 3, 2000, lambda: [client.check(k) for k in keys[:2000]])
            with Client(tcp) as client:
                rate("check_many, sync, TCP", args.rounds, BATCH, lambda: client.check_many(keys))
            asyncio.run(async_rates(path, args.rounds, keys))
        finally:
            server.terminate()
            server.wait(30)


async def async_rates(path: str, rounds: int, keys: list[str]) -> None:
    async with AsyncClient(path) as client:
        loop = asyncio.get_running_loop()
        times = []
        await client.check_many(keys)
        for _ in range(rounds):
            start = loop.time()
            await client.check_many(keys)
            times.append(loop.time() - start)
    median = statistics.median(times)
    print(f"{'check_many, asyncio, Unix socket':<42} {len(keys) / median:>12,.0f} keys/s (median of {rounds}; "
          f"best {len(keys) / min(times):,.0f})")


if __name__ == "__main__":
    main()
