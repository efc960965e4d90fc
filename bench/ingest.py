"""Notices per second acknowledged (SMTP 250) and applied, through a real daemon on durable SQLite.

usage: python bench/ingest.py [--messages 5000] [--connections 32] [--processes 4]

Starts `inbox-daemon serve` on the embedded defaults in a temporary directory, sends distinct
opt-out notices over SMTP from several client processes (each connection sends many messages,
as an MTA does), then waits until the query socket answers BLOCKED for every order. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import DaemonProcess  # noqa: E402
from tests.support.notices import opt_out_notice, order_id, relay_address  # noqa: E402


def _client(args: tuple[tuple[str, int], list[tuple[str, str]], int]) -> int:
    smtp, notices, threads = args
    acked = [0] * threads

    def run(i: int) -> None:
        with smtplib.SMTP(*smtp, timeout=60) as client:
            for order, buyer in notices[i::threads]:
                client.sendmail("fwd@seller.example", ["optout@sellers.example"], opt_out_notice(order, buyer))
                acked[i] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(acked)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--processes", type=int, default=4)
    args = ap.parse_args()
    rng = random.Random(42)
    notices = [(order_id(rng), relay_address(rng)) for _ in range(args.messages)]
    with tempfile.TemporaryDirectory() as tmp:
        daemon = DaemonProcess(Path(tmp), env={"INBOX_DAEMON_LOG_LEVEL": "warning"})
        daemon.env["INBOX_DAEMON_LOG_LEVEL"] = "info"
        daemon.start()
        try:
            per = args.connections // args.processes
            chunks = [(daemon.smtp, notices[i::args.processes], per) for i in range(args.processes)]
            t0 = time.perf_counter()
            with mp.get_context("spawn").Pool(args.processes) as pool:
                acked = sum(pool.map(_client, chunks))
            t_ack = time.perf_counter() - t0
            last = notices[-1][0]
            while True:
                stats = json.loads(daemon.query("STATS")[0].split(" ", 1)[1])
                if stats.get("notices", 0) >= acked:
                    break
                time.sleep(0.05)
            t_applied = time.perf_counter() - t0
            assert daemon.query(f"ORDER {last}")[0].startswith("BLOCKED")
        finally:
            daemon.stop()
    print(f"ingest: {acked} notices over SMTP, {args.connections} connections, SQLite durable (WAL, synchronous=FULL)")
    print(f"  acknowledged (250): {acked / t_ack:8.0f} notices/s  ({t_ack:.2f} s)")
    print(f"  applied (BLOCKED):  {acked / t_applied:8.0f} notices/s  ({t_applied:.2f} s)")


if __name__ == "__main__":
    main()
