"""Retention at scale: a real daemon purges ROWS old raw messages with its own periodic task
(bounded batches, a pause between them) while a client keeps asking the query socket; prints
the purge's duration and rate and the lookup latency while it runs and after.

    python bench/purge.py [--rows 1000000] [--blocked 20000]

The raw messages are seeded straight into the embedded SQLite with the stdlib ``sqlite3``
(sealed under the daemon's key file as intake seals them, received two years ago, outcome
``opt_out``), which is much faster than SMTP; the blocked addresses go in as an operator puts
them, with ``blocklist import``. Latency is one unpipelined request at a time from a Python
client on the Unix socket, so it includes the client's own overhead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).with_name("inbox-daemon"))
OLD = "2024-12-01 00:00:00.000000"  # UTCDateTime's SQLite form: naive UTC text


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"{args}: {done.stderr}")
    return done.stdout


def seed_raw(db: Path, key_file: Path, rows: int) -> float:
    from inbox_daemon.privacy import load_keyring

    ring = load_keyring(key_file, create=False)
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    insert = ("INSERT INTO raw_messages (sha256, data, key_id, size, source, envelope_to, received_at, "
              "times_received, outcome, processed_at) VALUES (?, ?, ?, ?, 'smtp', '[]', ?, 1, 'opt_out', ?)")
    chunk = 20_000
    for start in range(0, rows, chunk):
        batch = []
        for n in range(start, min(rows, start + chunk)):
            body = b"Dear Seller, buyer no. %d opted out of unsolicited messages." % n
            digest = hashlib.sha256(body).hexdigest()
            sealed = ring.encrypt(body, context=b"raw_messages.data/" + digest.encode())
            batch.append((digest, sealed, ring.current, len(body), OLD, OLD))
        conn.executemany(insert, batch)
        conn.commit()
    conn.close()
    return time.perf_counter() - started


def seed_blocked(env: dict[str, str], workdir: Path, count: int) -> list[str]:
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    addresses = ["".join(rng.choice(alphabet) for _ in range(15)) + "@marketplace.amazon.com" for _ in range(count)]
    csv = workdir / "blocked.csv"
    csv.write_text("email\n" + "\n".join(addresses) + "\n")
    cli(env, "blocklist", "import", str(csv), "--by", "bench")
    return addresses


class Daemon:
    """``inbox-daemon serve`` with its JSON log read on a thread: events by name, with times."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([EXE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.seen: dict[str, tuple[float, dict[str, Any]]] = {}
        self.ready = threading.Event()
        self.purged = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.seen.setdefault(event.get("event", ""), (time.perf_counter(), event))
            if event.get("event") == "ready":
                self.ready.set()
            if event.get("event") == "privacy_purged":
                self.purged.set()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def lookups(path: str, keys: list[str], until: threading.Event, limit: float) -> list[float]:
    """Latencies (seconds) of one CHECK at a time until ``until`` is set or ``limit`` passes."""
    found: list[float] = []
    rng = random.Random(3)
    deadline = time.perf_counter() + limit
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(path)
        reader = conn.makefile("rb")
        while not until.is_set() and time.perf_counter() < deadline:
            line = f"CHECK {rng.choice(keys)}\n".encode()
            started = time.perf_counter()
            conn.sendall(line)
            reply = reader.readline()
            found.append(time.perf_counter() - started)
            if not reply.startswith(b"BLOCKED"):
                raise SystemExit(f"lookup answered {reply!r}")
    return found


def figures(latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=1000)
    us = [x * 1e6 for x in (statistics.median(latencies), cuts[989], cuts[998], max(latencies))]
    return f"{len(latencies):,} lookups: p50 {us[0]:.0f} us p99 {us[1]:.0f} us p99.9 {us[2]:.0f} us max {us[3]:.0f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--blocked", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-purge-") as tmp:
        workdir = Path(tmp)
        home = workdir / "home"
        env = {**os.environ, "INBOX_DAEMON_HOME": str(home), "INBOX_DAEMON_SMTP_PORT": "0",
               "INBOX_DAEMON_LOG_FORMAT": "json", "INBOX_DAEMON_QUERY_SOCKET": str(workdir / "query.sock")}
        cli(env, "db", "upgrade")
        cli(env, "privacy", "init")
        keys = seed_blocked(env, workdir, args.blocked)
        seconds = seed_raw(home / "inbox-daemon.db", home / "privacy.key", args.rows)
        print(f"seeded {args.rows:,} sealed raw messages in {seconds:.1f} s; {args.blocked:,} blocked addresses", flush=True)

        daemon = Daemon(env)
        try:
            if not daemon.ready.wait(600):
                raise SystemExit("daemon did not start")
            started = time.perf_counter()
            during = lookups(str(workdir / "query.sock"), keys, daemon.purged, 900)
            if not daemon.purged.wait(900):
                raise SystemExit("no privacy_purged event")
            at, event = daemon.seen["privacy_purged"]
            took = at - daemon.seen["ready"][0]
            print(f"daemon purged {event['messages']:,} messages in {took:.1f} s ({event['messages'] / took:,.0f}/s)"
                  f" in batches of 500", flush=True)
            print(f"while purging: {figures(during)}", flush=True)
            after = lookups(str(workdir / "query.sock"), keys, threading.Event(), min(10.0, time.perf_counter() - started))
            print(f"after:         {figures(after)}", flush=True)
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
