"""Propagation between two daemons on one PostgreSQL: from one daemon's SMTP 250 to BLOCKED on
the other (remote) and on itself (local, the anchor from the same run), p50/p99 over N notices.

usage: python bench/propagation.py [--notices 200] [--sync-seconds 1.0] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Creates a throwaway database, starts two real ``inbox-daemon serve`` processes on it, sends each
notice to the first with smtplib and, once its 250 is in, asks both daemons' query sockets in
turn until each answers BLOCKED; drops the database at the end. The target is a remote p99
under 100 ms; ``--sync-seconds`` is the pull interval behind the notifications (with a large
one, only LISTEN/NOTIFY can be fast). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import DaemonProcess, write_config
from tests.support.notices import opt_out_notice, order_id, relay_address

GIVE_UP_S = 30.0


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Asker:
    """One query-socket connection kept open (a connection per question would meet the
    listener's per-peer limits long before the bench ends)."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(10)
        self._sock.connect(path)
        self._file = self._sock.makefile("rb")

    def blocked(self, key: str) -> bool:
        self._sock.sendall(f"CHECK {key}\n".encode())
        return self._file.readline().startswith(b"BLOCKED ")

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def measure(first: DaemonProcess, second: DaemonProcess, count: int) -> tuple[list[float], list[float]]:
    """Seconds from each 250 to BLOCKED on the daemon that took it and on the other."""
    rng = random.Random(2026)
    local: list[float] = []
    remote: list[float] = []
    askers = {"local": Asker(first.socket_path), "remote": Asker(second.socket_path)}
    for n in range(count):
        buyer = relay_address(rng)
        code, _ = first.send(opt_out_notice(order_id(rng), buyer, seq=n))
        acknowledged = time.perf_counter()
        assert code == 250, code
        seen: dict[str, float] = {}
        while len(seen) < 2:
            for name, asker in askers.items():
                if name not in seen and asker.blocked(buyer):
                    seen[name] = time.perf_counter() - acknowledged
            if time.perf_counter() - acknowledged > GIVE_UP_S:
                raise SystemExit(f"notice {n}: not BLOCKED everywhere after {GIVE_UP_S}s: {seen}")
        local.append(seen["local"])
        remote.append(seen["remote"])
    for asker in askers.values():
        asker.close()
    return local, remote


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notices", type=int, default=200)
    ap.add_argument("--sync-seconds", type=float, default=1.0)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    name = f"bench_propagation_{secrets.token_hex(4)}"
    asyncio.run(_admin(args.pg, f'CREATE DATABASE "{name}"'))
    url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="bench-propagation-"))
    sections = {"database": {"url": url}, "query": {"sync_seconds": args.sync_seconds}}
    first = DaemonProcess(work / "a", write_config(work / "a.toml", sections))
    second = DaemonProcess(work / "b", write_config(work / "b.toml", sections))
    try:
        assert first.cli("db", "upgrade").returncode == 0
        first.start()
        second.start()
        second.wait_event("follow_listening")
        local, remote = measure(first, second, args.notices)
    finally:
        first.ensure_stopped()
        second.ensure_stopped()
        asyncio.run(_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    ms = 1000.0
    print(f"{args.notices} notices, two daemons on one PostgreSQL, query.sync_seconds {args.sync_seconds}")
    print(f"  local  (the daemon that sent the 250): p50 {statistics.median(local) * ms:.1f} ms, "
          f"p99 {_percentile(local, 0.99) * ms:.1f} ms, max {max(local) * ms:.1f} ms")
    print(f"  remote (the other daemon):             p50 {statistics.median(remote) * ms:.1f} ms, "
          f"p99 {_percentile(remote, 0.99) * ms:.1f} ms, max {max(remote) * ms:.1f} ms (target p99 < 100 ms)")
    gap = [r - loc for r, loc in zip(remote, local)]
    print(f"  remote - local, per notice:            p50 {statistics.median(gap) * ms:.1f} ms, "
          f"p99 {_percentile(gap, 0.99) * ms:.1f} ms")


if __name__ == "__main__":
    main()
