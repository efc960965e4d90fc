"""Lookup benchmark: the query socket against Redis, like for like: same transport, same load.

    .venv/bin/python bench/lookup.py [--quick] [--runs N] [--rounds N] [--cells 1x1,...] [--python] [--large] [--apply]

Prints figures, asserts nothing:
  * per cell (connections x pipeline depth: 1x1, 1x16, 50x1, 50x16) and per transport (Unix
    socket, TCP loopback): lookups/s, p50/p99 latency and server CPU seconds per million lookups
    for our daemon and for a Redis started here on the same two transports (SISMEMBER sent as
    RESP arrays), against the same 1,000,000 blocked relay addresses, half the queries blocked.
    Runs alternate ours/Redis within each cell (the first side swaps every round), so both see
    the same load from whatever else runs on the machine; the ratio is ours / Redis.
  * ``--large``: the daemon alone at 10,000,000 entries: memory per entry, and 50x1 on the Unix
    socket (p50/p99).
  * ``--apply``: 50x1 on the Unix socket while 1,000,000-row change batches are applied to the
    index on the server's event loop, one after the other (add, then remove, again);
    ``--apply-entries 10000000`` with an index of that size.
  * memory for 10,000,000 entries beside Redis's used_memory for the same set (not with --quick).
The load generator is bench/loadgen.c (epoll, one thread), compiled here with ``cc -O2``; the
server runs in its own process on uvloop (bench/_serve.py); ``--python`` serves on the pure
Python path instead of the C loop. Redis runs with ``--save '' --appendonly no`` on a free port
and a socket in a temporary directory: never the system's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import blocked_addresses, unknown_addresses

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
REDIS_KEY = "inbox-bench:blocklist"
CELLS = [(1, 1), (1, 16), (50, 1), (50, 16)]  # (connections, depth)
TRANSPORTS = ("unix", "tcp")
TICK = os.sysconf("SC_CLK_TCK")


# -- Redis: our own server, and a raw RESP client to fill it ---------------------------------------


def resp(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Redis:
    """A blocking RESP client on the Unix socket of the Redis we started."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(path)
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


def start_redis(workdir: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    path = str(workdir / "redis.sock")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--unixsocket", path, "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            Redis(path).close()
            return redis, path
        except OSError:
            time.sleep(0.05)  # a separate process: no readiness signal but its socket
    redis.kill()
    raise RuntimeError("redis-server did not start")


def sadd_commands(key: str, members: Iterable[str], per_command: int = 1000) -> Iterator[bytes]:
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
    """The same queries twice: CHECK lines for us, SISMEMBER arrays for Redis; every other blocked."""
    step = max(1, entries // (count // 2))
    blocked = list(islice(blocked_addresses(entries), 0, None, step))[: count // 2]
    unknown = list(unknown_addresses(count - len(blocked)))
    queries = [q for pair in zip(blocked, unknown) for q in pair] + unknown[len(blocked):]
    ours, theirs = workdir / "ours.txt", workdir / "redis.txt"
    ours.write_bytes(b"".join(f"CHECK {q}\n".encode() for q in queries))
    theirs.write_bytes(b"".join(resp("SISMEMBER", REDIS_KEY, q) for q in queries))
    return ours, theirs


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (proc(5): fields 14 and 15 of stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_load(binary: Path, target: str, requests: Path, lines: int, conns: int, depth: int, seconds: float, pid: int) -> dict[str, float]:
    before = cpu_seconds(pid)
    out = subprocess.run(
        [str(binary), target, str(requests), str(lines), str(conns), str(depth), str(seconds), "0.5"],
        check=True, capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    figures = {k: float(v) for k, v in (pair.split("=") for pair in out.split())}
    figures["cpu_per_m"] = (cpu_seconds(pid) - before) / max(1.0, figures["total"]) * 1e6
    return figures


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(workdir: Path, entries: int, tcp_port: int, python: bool) -> tuple[subprocess.Popen[str], str, dict[str, object]]:
    path = str(workdir / "query.sock")
    command = [PYTHON, str(HERE / "_serve.py"), "serve", "--entries", str(entries), "--socket", path, "--tcp", f"127.0.0.1:{tcp_port}"]
    server = subprocess.Popen(command + (["--python"] if python else []), stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("READY "):
        server.kill()
        raise RuntimeError("the benchmark server did not start")
    return server, path, json.loads(line[6:])


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(30)


# -- the parts -------------------------------------------------------------------------------------


def throughput(binary: Path, targets: dict[str, dict[str, tuple[str, Path, int, int]]], seconds: float, rounds: int, run: int,
               cells: list[tuple[int, ...]] = CELLS) -> None:
    """One table: every cell on both transports, ours and Redis alternating within the cell."""
    print(f"\nrun {run}: mean lookups/s of {rounds} alternating round(s); p50/p99 in us; CPU s per 1M lookups", flush=True)
    print(f"{'cell':>6} {'transport':<5} | {'ours/s':>9} {'p50':>5} {'p99':>5} {'cpu':>5} | {'redis/s':>9} {'p50':>5} {'p99':>5} {'cpu':>5} | ratio")
    for conns, depth in cells:
        for transport in TRANSPORTS:
            results: dict[str, list[dict[str, float]]] = {"ours": [], "redis": []}
            for round_ in range(rounds):
                for side in (("ours", "redis") if round_ % 2 == 0 else ("redis", "ours")):
                    target, requests, lines, pid = targets[side][transport]
                    results[side].append(run_load(binary, target, requests, lines, conns, depth, seconds, pid))
            row = [f"{conns}x{depth}".rjust(6), f"{transport:<5}"]
            for side in ("ours", "redis"):
                runs = results[side]
                row.append(
                    f"| {statistics.mean(r['rps'] for r in runs):>9,.0f} {statistics.mean(r['p50_us'] for r in runs):>5.0f}"
                    f" {max(r['p99_us'] for r in runs):>5.0f} {statistics.mean(r['cpu_per_m'] for r in runs):>5.2f}"
                )
                if any(r["errors"] for r in runs):
                    row.append("(errors!)")
            ratio = statistics.mean(r["rps"] for r in results["ours"]) / statistics.mean(r["rps"] for r in results["redis"])
            print(" ".join(row) + f" | {ratio:.2f}x", flush=True)


def large(binary: Path, workdir: Path, entries: int, seconds: float, python: bool) -> None:
    """p50/p99 at 50 connections unpipelined with a big index, and its memory per entry."""
    ours, _ = write_requests(workdir, entries, 100_000)
    started = time.monotonic()
    server, path, info = start_server(workdir, entries, free_port(), python)
    try:
        built = time.monotonic() - started
        figures = run_load(binary, path, ours, 1, 50, 1, seconds, server.pid)
    finally:
        stop(server)
    n = int(str(info["entries"]))
    print(f"\n{n:,} entries (built in {built:.0f} s): memory_bytes() {int(str(info['memory_bytes'])) / n:.1f} B/entry;"
          f" 50x1 unix: {figures['rps']:,.0f}/s p50 {figures['p50_us']:.0f} us p99 {figures['p99_us']:.0f} us"
          f" p99.9 {figures['p999_us']:.0f} us", flush=True)


def during_apply(binary: Path, workdir: Path, entries: int, seconds: float, python: bool) -> None:
    """50x1 on the Unix socket, measured only while the server applies change batches."""
    ours, _ = write_requests(workdir, entries, 100_000)
    server, path, _ = start_server(workdir, entries, free_port(), python)
    try:
        quiet = run_load(binary, path, ours, 1, 50, 1, seconds, server.pid)
        server.send_signal(signal.SIGUSR1)  # start applying
        assert server.stdout is not None
        if server.stdout.readline().strip() != "APPLYING":
            raise RuntimeError("the benchmark server did not start applying")
        busy = run_load(binary, path, ours, 1, 50, 1, seconds, server.pid)
        server.send_signal(signal.SIGUSR2)
        applied = json.loads(server.stdout.readline())
    finally:
        stop(server)
    print(f"\n50x1 unix, index {entries:,}: quiet p50 {quiet['p50_us']:.0f} us p99 {quiet['p99_us']:.0f} us"
          f" ({quiet['rps']:,.0f}/s); while applying {applied['rows']:,} rows in {applied['seconds']:.1f} s"
          f" (batches of {applied['batch']:,}): p50 {busy['p50_us']:.0f} us p99 {busy['p99_us']:.0f} us"
          f" p99.9 {busy['p999_us']:.0f} us max {busy['max_us']:.0f} us ({busy['rps']:,.0f}/s)", flush=True)


def memory(entries: int, redis_path: str) -> None:
    started = time.monotonic()
    out = subprocess.run([PYTHON, str(HERE / "_serve.py"), "memory", "--entries", str(entries)], check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)
    build_s = time.monotonic() - started
    redis = Redis(redis_path)
    try:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller set, shorter runs: a smoke test")
    parser.add_argument("--runs", type=int, default=3, help="independent tables (default 3)")
    parser.add_argument("--python", action="store_true", help="serve on the pure Python path, not the C loop")
    parser.add_argument("--large", action="store_true", help="also 50x1 at 10,000,000 entries")
    parser.add_argument("--apply", action="store_true", help="also 50x1 while 1M-row change batches are applied")
    parser.add_argument("--apply-entries", type=int, default=0, help="the index size for --apply (default: the set's)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="alternating rounds per cell and side (default 2; 1 with --quick): the 1x1 cells are"
                             " round-trip bound and swing ±20%% from round to round on a small VM")
    parser.add_argument("--cells", type=lambda v: [tuple(int(n) for n in c.split("x")) for c in v.split(",")],
                        default=CELLS, help="which cells, e.g. 1x1,50x16 (default all four)")
    parser.add_argument("--no-redis-memory", action="store_true", help="skip the 10M-entry memory comparison")
    args = parser.parse_args()
    entries = 100_000 if args.quick else 1_000_000
    seconds, rounds = (1.0, 1) if args.quick else (2.0, 2)
    rounds = args.rounds or rounds
    workdir = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    redis_proc = server = None
    try:
        binary = build_loadgen(workdir)
        ours, theirs = write_requests(workdir, entries, 100_000)
        redis_port, tcp_port = free_port(), free_port()
        redis_proc, redis_path = start_redis(workdir, redis_port)
        client = Redis(redis_path)
        client.pipeline(sadd_commands(REDIS_KEY, blocked_addresses(entries)))
        client.close()
        server, sock, info = start_server(workdir, entries, tcp_port, args.python)
        print(f"lookup benchmark: {entries:,} blocked addresses, {seconds:.0f} s per run, {os.cpu_count()} CPUs; "
              f"server: {info['path']} path, one process; load generator: bench/loadgen.c")
        targets = {
            "ours": {"unix": (sock, ours, 1, server.pid), "tcp": (f"127.0.0.1:{tcp_port}", ours, 1, server.pid)},
            "redis": {"unix": (redis_path, theirs, 7, redis_proc.pid), "tcp": (f"127.0.0.1:{redis_port}", theirs, 7, redis_proc.pid)},
        }
        for run in range(1, args.runs + 1):
            throughput(binary, targets, seconds, rounds, run, args.cells)
        stop(server)
        server = None
        if args.apply:
            during_apply(binary, workdir, args.apply_entries or entries, seconds * 2, args.python)
        if args.large:
            large(binary, workdir, 10_000_000, seconds * 2, args.python)
        if not args.quick and not args.no_redis_memory:
            memory(10_000_000, redis_path)
    finally:
        stop(server)
        stop(redis_proc)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
