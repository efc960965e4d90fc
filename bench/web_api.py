"""HTTP API benchmark: 100 concurrent API clients on /v1/check while the query socket is timed.

    .venv/bin/python bench/web_api.py [--seconds 15] [--clients 100] [--batch 100]

Prints figures, asserts nothing: a real daemon (``inbox-daemon serve``, embedded SQLite, its
blocklist filled with 20,000 keys by ``blocklist import``) answers ``--clients`` aiohttp clients,
each POSTing batches of ``--batch`` keys (half blocked) as fast as it is answered, for
``--seconds``. Meanwhile a separate process sends one ``CHECK`` at a time on one Unix-socket
connection and times each answer; its p50/p99/max are printed for a quiet daemon first, then
under the API load. The API answers on the daemon's event loop; the query socket's C loop runs
in a thread of its own, so the API load should barely move the socket's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def probe(path: str, seconds: float, keys: list[str]) -> None:
    """One connection, one request at a time; print the latencies in microseconds as JSON."""
    latencies = []
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        reader = sock.makefile("rb")
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            line = f"CHECK {keys[i % len(keys)]}\n".encode()
            start = time.perf_counter_ns()
            sock.sendall(line)
            reader.readline()
            latencies.append((time.perf_counter_ns() - start) / 1000)
            i += 1
    print(json.dumps(latencies))


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99)]
    return (f"{len(ordered)} requests, p50 {statistics.median(ordered):.0f} us, p99 {p99:.0f} us, "
            f"max {ordered[-1]:.0f} us")


def timed(path: str, seconds: float, keys_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--probe", path, str(seconds), str(keys_file)],
                            stdout=subprocess.PIPE, text=True)


async def load(url: str, token: str, keys: list[str], clients: int, batch: int, seconds: float) -> tuple[int, int, int]:
    import aiohttp

    done = [0, 0, 0]  # requests, keys, errors
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}

    async def client(n: int) -> None:
        rng = random.Random(n)
        async with aiohttp.ClientSession(headers=headers) as session:
            while time.monotonic() < deadline:
                body = rng.sample(keys, batch)
                async with session.post(url + "/v1/check", json=body) as response:
                    answers = (await response.json())["answers"] if response.status == 200 else None
                if answers is None or len(answers) != batch:
                    done[2] += 1
                    continue
                done[0] += 1
                done[1] += batch

    await asyncio.gather(*(client(n) for n in range(clients)))
    return done[0], done[1], done[2]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        probe(sys.argv[2], float(sys.argv[3]), Path(sys.argv[4]).read_text().split())
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    from tests.support.daemon import DaemonProcess
    from tests.support.notices import order_id, relay_address

    rng = random.Random(1)
    blocked = [(order_id(rng), relay_address(rng)) for _ in range(10_000)]
    keys = [a for _, a in blocked] + [relay_address(rng) for _ in range(10_000)]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "rows.csv").write_text("order_id,email\n" + "".join(f"{o},{a}\n" for o, a in blocked))
        (home / "keys.txt").write_text("\n".join(keys))
        daemon = DaemonProcess(home / "home")
        daemon.cli("db", "upgrade", check=True)
        daemon.cli("blocklist", "import", str(home / "rows.csv"), check=True)
        token = daemon.cli("tokens", "add", "bench", check=True).stdout.strip()
        daemon.start()
        try:
            assert daemon.web is not None
            url = "http://%s:%d" % daemon.web
            quiet = timed(daemon.socket_path, min(5.0, args.seconds), home / "keys.txt").communicate()[0]
            print(f"query socket, quiet daemon:        {summary(json.loads(quiet))}")
            under = timed(daemon.socket_path, args.seconds, home / "keys.txt")
            started = time.monotonic()
            requests, answered, errors = asyncio.run(load(url, token, keys, args.clients, args.batch, args.seconds))
            elapsed = time.monotonic() - started
            print(f"query socket, under the API load:  {summary(json.loads(under.communicate()[0]))}")
            print(f"HTTP API: {args.clients} clients, batches of {args.batch}: {requests / elapsed:.0f} requests/s, "
                  f"{answered / elapsed:.0f} keys/s, {errors} errors, in {elapsed:.1f} s")
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
