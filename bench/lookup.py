"""Lookup benchmark: the query socket against Redis, same load, same load generator, same set.

    .venv/bin/python bench/lookup.py [--quick]

Prints figures, asserts nothing (issue 3, "What it must show"):
  * lookups/s and p50/p99 latency at 1 and 50 connections, unpipelined and pipelined (depth 16),
    against 1,000,000 blocked relay addresses: our daemon over its Unix socket (and over TCP, for
    a like-for-like look at Redis, which listens on TCP here), Redis answering SISMEMBER sent as
    RESP arrays. Runs alternate ours/Redis within each cell; the ratio is ours / Redis.
  * memory for 10,000,000 entries: memory_bytes() and the RSS growth of a fresh process, beside
    Redis's used_memory growth for the same set (loaded with pipelined SADD, then deleted).
The load generator is bench/loadgen.c (epoll, one thread), compiled here with ``cc -O2``; the
server runs in its own process on uvloop (bench/_serve.py). Half the queries are blocked.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import blocked_addresses, unknown_addresses  # noqa: E402

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
REDIS = ("127.0.0.1", 6379)
REDIS_KEY = "inbox-bench:blocklist"
CELLS = [(1, 1), (1, 16), (50, 1), (50, 16)]  # (connections, depth)


# -- Redis over a raw socket (RESP, pipelined) ----------------------------------------------------


def resp(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Redis:
    def __init__(self) -> None:
        self.sock = socket.create_connection(REDIS, timeout=60)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def reply(self) -> bytes | int:
        line = self.file.readline()
        if line[:1] == b"$":
            data = self.file.read(int(line[1:]) + 2)
            return data[:-2]
        if line[:1] == b":":
            return int(line[1:])
        if line[:1] == b"-":
            raise RuntimeError(line.decode())
        return line.rstrip(b"\r\n")

    def pipeline(self, commands: Iterable[bytes], batch: int = 200) -> None:
        pending: list[bytes] = []
        for command in commands:
            pending.append(command)
            if len(pending) == batch:
                self._flush(pending)
        self._flush(pending)

    def _flush(self, pending: list[bytes]) -> None:
        self.sock.sendall(b"".join(pending))
        for _ in pending:
            self.reply()
        pending.clear()

    def used_memory(self) -> int:
        self.sock.sendall(resp("INFO", "memory"))
        info = self.reply()
        assert isinstance(info, bytes)
        for line in info.decode().splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise RuntimeError("no used_memory in INFO")


def sadd_commands(key: str, members: Iterable[str], per_command: int = 1000) -> Iterable[bytes]:
    chunk: list[str] = []
    for member in members:
        chunk.append(member)
        if len(chunk) == per_command:
            yield resp("SADD", key, *chunk)
            chunk = []
    if chunk:
        yield resp("SADD", key, *chunk)


# -- load generation -------------------------------------------------------------------------------


def build_loadgen(workdir: Path) -> Path:
    binary = workdir / "loadgen"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(HERE / "loadgen.c")], check=True)
    return binary


def write_requests(workdir: Path, entries: int, count: int) -> tuple[Path, Path]:
    """The same queries twice: CHECK lines for us, SISMEMBER arrays for Redis; half blocked."""
    rng = random.Random(7)
    blocked = list(blocked_addresses(entries))
    queries = rng.sample(blocked, count // 2) + list(unknown_addresses(count - count // 2))
    rng.shuffle(queries)
    ours, theirs = workdir / "ours.txt", workdir / "redis.txt"
    ours.write_bytes(b"".join(f"CHECK {q}\n".encode() for q in queries))
    theirs.write_bytes(b"".join(resp("SISMEMBER", REDIS_KEY, q) for q in queries))
    return ours, theirs


def run_load(binary: Path, target: str, requests: Path, lines: int, conns: int, depth: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [str(binary), target, str(requests), str(lines), str(conns), str(depth), str(seconds), "0.5"],
        check=True, capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    return {k: float(v) for k, v in (pair.split("=") for pair in out.split())}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(workdir: Path, entries: int, tcp_port: int) -> tuple[subprocess.Popen[str], str]:
    path = str(workdir / "query.sock")
    server = subprocess.Popen(
        [PYTHON, str(HERE / "_serve.py"), "serve", "--entries", str(entries), "--socket", path, "--tcp", f"127.0.0.1:{tcp_port}"],
        stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None
    if server.stdout.readline().strip() != "READY":
        server.kill()
        raise RuntimeError("the benchmark server did not start")
    return server, path


# -- the two parts ---------------------------------------------------------------------------------


def throughput(binary: Path, sock: str, tcp_port: int, ours: Path, theirs: Path, seconds: float, rounds: int) -> None:
    targets = [("ours/unix", sock, ours, 1), ("redis/tcp", f"{REDIS[0]}:{REDIS[1]}", theirs, 7), ("ours/tcp", f"127.0.0.1:{tcp_port}", ours, 1)]
    print(f"\n{'conns':>5} {'depth':>5}  {'target':<10} {'lookups/s':>10} {'p50 us':>7} {'p99 us':>7} {'p99.9 us':>8} {'hit %':>6}  ours/redis")
    for conns, depth in CELLS:
        results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in targets}
        for _ in range(rounds):  # alternate within the cell: ours, Redis, ours over TCP, again
            for name, target, requests, lines in targets:
                results[name].append(run_load(binary, target, requests, lines, conns, depth, seconds))
        redis_rps = statistics.mean(r["rps"] for r in results["redis/tcp"])
        for name, *_ in targets:
            runs = results[name]
            rps = statistics.mean(r["rps"] for r in runs)
            ratio = "" if name == "redis/tcp" else f"{rps / redis_rps:.2f}x"
            hit = 100 * sum(r["hits"] for r in runs) / max(1, sum(r["count"] for r in runs))
            print(
                f"{conns:>5} {depth:>5}  {name:<10} {rps:>10,.0f} {statistics.mean(r['p50_us'] for r in runs):>7.0f}"
                f" {max(r['p99_us'] for r in runs):>7.0f} {max(r['p999_us'] for r in runs):>8.0f} {hit:>6.1f}  {ratio}",
                flush=True,
            )


def memory(entries: int) -> None:
    started = time.monotonic()
    out = subprocess.run([PYTHON, str(HERE / "_serve.py"), "memory", "--entries", str(entries)], check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)
    build_s = time.monotonic() - started
    redis = Redis()
    try:
        redis.pipeline([resp("DEL", REDIS_KEY + ":memory")])
        before = redis.used_memory()
        redis.pipeline(sadd_commands(REDIS_KEY + ":memory", blocked_addresses(entries)))
        theirs = redis.used_memory() - before
        redis.pipeline([resp("DEL", REDIS_KEY + ":memory")])
    finally:
        redis.close()
    n = ours["entries"]
    print(f"\nmemory for {n:,} entries (index built in {build_s:.0f} s, in a fresh process)")
    print(f"  ours  memory_bytes() {ours['memory_bytes'] / 2**20:8.1f} MiB  {ours['memory_bytes'] / n:6.1f} B/entry")
    print(f"  ours  RSS growth     {ours['rss_delta'] / 2**20:8.1f} MiB  {ours['rss_delta'] / n:6.1f} B/entry")
    print(f"  redis used_memory    {theirs / 2**20:8.1f} MiB  {theirs / n:6.1f} B/entry")
    print(f"  ratio ours/redis     {ours['memory_bytes'] / theirs:.3f} (memory_bytes), {ours['rss_delta'] / theirs:.3f} (RSS)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller set, shorter runs: a smoke test")
    args = parser.parse_args()
    entries, memory_entries = (100_000, 1_000_000) if args.quick else (1_000_000, 10_000_000)
    seconds, rounds = (1.0, 1) if args.quick else (3.0, 2)
    workdir = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    redis = Redis()
    server = None
    try:
        binary = build_loadgen(workdir)
        ours, theirs = write_requests(workdir, entries, 100_000)
        redis.pipeline([resp("DEL", REDIS_KEY)])
        redis.pipeline(sadd_commands(REDIS_KEY, blocked_addresses(entries)))
        tcp_port = free_port()
        server, sock = start_server(workdir, entries, tcp_port)
        print(f"lookup benchmark: {entries:,} blocked addresses, {seconds:.0f} s per run, {rounds} round(s), "
              f"{os.cpu_count()} CPUs; server: uvloop, one process; load generator: bench/loadgen.c")
        throughput(binary, sock, tcp_port, ours, theirs, seconds, rounds)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        redis.pipeline([resp("DEL", REDIS_KEY)])
        redis.close()
        shutil.rmtree(workdir, ignore_errors=True)
    memory(memory_entries)


if __name__ == "__main__":
    main()
