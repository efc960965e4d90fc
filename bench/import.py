"""Notices per second through ``import_paths`` from one big mbox into durable SQLite (the aim:
at least 1,000/s on a 2-core machine).

usage: python bench/import.py [--messages 100000] [--corpus DIR] [--whole-corpus] [--keep]
       python bench/import.py --csv 20000,80000,1000000   (the sizes to time, smallest first)
       python bench/import.py --privacy-anchor [--rounds 2] [--messages 20000] [--csv 20000]

Builds an mbox of distinct notices from the repository's own samples (tests/data/notices; with
``--corpus``, any folder with the same ``expected.json`` table, such as the shared corpus): the
opt-out samples, or with ``--whole-corpus`` all of them, look-alikes and damaged mail too. Each
copy gets its own order ids, relay addresses and Message-ID, so every message is new to the store
and most name a new buyer (samples that carry their ids only QP- or base64-encoded repeat their
buyer). Then imports it, as ``inbox-daemon import`` does, into a freshly migrated SQLite database
(WAL, synchronous=FULL: every batch is fsynced) and prints figures; asserts nothing.

Beside it, from the same run, the stdlib floor: a ``mailbox`` loop over the same mbox that
extracts the buyers with the same patterns the builder used and INSERTs them into SQLite (WAL,
synchronous=FULL) in batches of 1,000, and the ratio of the two.

``--csv`` times ``blocklist import`` instead (the path the command takes: read and digested in a
child process, streamed in batches, one transaction each) of lists of each size into a fresh durable SQLite database and
prints rows/s per size and the growth from the smallest to each larger one (the aim: 1,000,000
rows in at most 60 s; 80,000 in at most 5.5x the time of 20,000). Beside each, from the same
run, the stdlib floor: ``csv`` and ``sqlite3`` alone doing the same rows into the same schema
(HMAC pseudonyms of both keys, a look-up of each key, then the opt-out, evidence, change and
audit rows; one durable transaction per 10,000 rows), and the ratio of the two.

``--privacy-anchor`` runs the mbox import (and with ``--csv`` the list import of each size)
with a key ring and with one that seals nothing and digests without a key (bench/_privacy.py),
alternating for ``--rounds`` each, and prints the privacy-on rates as a ratio of the
privacy-off ones.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import hmac
import io
import json
import mailbox
import os
import random
import sqlite3
import re
import string
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inbox_daemon.intake.files import ImportSummary, import_paths
from inbox_daemon.log import configure_logging
from inbox_daemon.notices import parse_notice
from inbox_daemon.privacy import new_keyring
from inbox_daemon.processing import Flow, Processor, auto_workers
from inbox_daemon.processing.processor import tune_collector
from inbox_daemon.store import Store, migrate

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "notices"
ORDER = re.compile(rb"\b\d{3}-\d{7}-\d{7}\b")
RELAY = re.compile(rb"\b[a-zA-Z0-9]{15}(?=@marketplace\.amazon\.)")
MESSAGE_ID = re.compile(rb"^(Message-ID:\s*<)[^>]*", re.IGNORECASE | re.MULTILINE)
QUOTED_FROM = re.compile(rb"^(>*From )", re.MULTILINE)
ALNUM = (string.ascii_lowercase + string.digits).encode()


def variant(template: bytes, n: int, rng: random.Random) -> bytes:
    """The sample with fresh ids; each distinct id in it maps to one new id, so a notice that
    names its order twice still names one order."""
    orders: dict[bytes, bytes] = {}
    relays: dict[bytes, bytes] = {}

    def order(m: re.Match[bytes]) -> bytes:
        return orders.setdefault(
            m.group(0), b"%03d-%07d-%07d" % (rng.randint(100, 999), rng.randrange(10**7), rng.randrange(10**7))
        )

    def relay(m: re.Match[bytes]) -> bytes:
        return relays.setdefault(m.group(0).lower(), bytes(rng.choice(ALNUM) for _ in range(15)))

    raw = RELAY.sub(relay, ORDER.sub(order, template))
    return MESSAGE_ID.sub(lambda m: m.group(1) + b"bench-%d@import.example" % n, raw, count=1)


def templates(corpus: Path, whole: bool) -> list[bytes]:
    """The opt-out samples whose ids ``variant`` can replace everywhere (in some, an id also
    stands QP- or base64-encoded: every copy would name the same buyer, a load no real archive
    has); with ``whole``, every sample as it is apart from that."""
    cases = json.loads((corpus / "expected.json").read_text())
    chosen = []
    for case in cases:
        raw = (corpus / case["file"]).read_bytes()
        if case["kind"] == "opt_out":
            old = {v for b in case["buyers"] for v in (b["email"], b["order_id"]) if v}
            new = {v for b in parse_notice(variant(raw, 0, random.Random(0))).buyers for v in (b.email, b.order_id) if v}
            if old & new:
                print(f"  left out {case['file']}: an id is also encoded")
                continue
        if whole or case["kind"] == "opt_out":
            chosen.append(raw)
    return chosen


def build_mbox(path: Path, count: int, samples: list[bytes]) -> int:
    rng = random.Random(2026)
    with open(path, "wb") as out:
        for n in range(count):
            raw = variant(samples[n % len(samples)], n, rng)
            out.write(b"From bench@import.example Thu Nov 26 06:00:00 2026\n")
            out.write(QUOTED_FROM.sub(rb">\1", raw))  # mboxrd quoting
            out.write(b"\n" if raw.endswith(b"\n") else b"\n\n")
    return path.stat().st_size


async def run_import(db: Path, mbox: Path) -> tuple[ImportSummary, float]:
    """As ``inbox-daemon import`` runs it: a store with a privacy key (raw bytes sealed,
    buyers kept as pseudonyms), one parser worker process, the collector tuned."""
    tune_collector()
    store = await Store.open(f"sqlite:///{db}", keyring=new_keyring())
    flow = Flow(store, Processor(store, workers=auto_workers(-1)), recover=True)
    await flow.start()
    try:
        started = time.perf_counter()
        summary = await import_paths([mbox], flow, progress=sys.stderr.isatty())
        return summary, time.perf_counter() - started
    finally:
        await flow.stop()
        await store.close()


def stdlib_floor(mbox: Path, db: Path) -> tuple[int, int, float]:
    """(messages, buyers, seconds): the same mbox read by ``mailbox`` and its buyers INSERTed in
    batches into durable SQLite, with nothing else."""
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE buyers (id INTEGER PRIMARY KEY, order_id TEXT UNIQUE, email TEXT)")
    messages = buyers = 0
    batch: list[tuple[str, str | None]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO buyers (order_id, email) VALUES (?, ?)", batch)
        conn.execute("COMMIT")
        batch.clear()

    for message in mailbox.mbox(mbox):
        messages += 1
        raw = message.as_bytes()
        relays = [r.decode() + "@marketplace.amazon.com" for r in RELAY.findall(raw)]
        for n, order in enumerate(dict.fromkeys(ORDER.findall(raw))):
            batch.append((order.decode(), relays[n] if n < len(relays) else None))
            buyers += 1
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    conn.close()
    return messages, buyers, time.perf_counter() - started


def csv_floor(data: bytes, db: Path, batch: int = 10_000) -> float:
    """Seconds for ``csv`` + ``sqlite3`` alone to do what the import does with ``data``: the
    durable-write floor of the same rows, schema and indexes (what no import can beat)."""
    started = time.perf_counter()
    secret = os.urandom(32)
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    now = "2026-12-07 00:00:00.000000"
    conn.execute("BEGIN IMMEDIATE")
    raw = conn.execute("INSERT INTO raw_messages (sha256, data, size, source, envelope_to, received_at, times_received, "
                       "outcome) VALUES ('floor', ?, ?, 'csv', '[]', ?, 1, 'opt_out')", (data, len(data), now)).lastrowid
    conn.execute("COMMIT")
    rows = csv.reader(io.StringIO(data.decode()))
    next(rows)

    def flush(keys: list[tuple[str, str, str]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for column, n in (("order_id", 0), ("email", 1)):
            conn.execute(f"SELECT o.id FROM json_each(?) AS k JOIN opt_outs o ON o.{column} = k.value",
                         (json.dumps([k[n] for k in keys]),)).fetchall()
        top = conn.execute("SELECT coalesce(max(id), 0) FROM opt_outs").fetchone()[0]
        conn.executemany("INSERT INTO opt_outs (order_id, email, marketplace, first_seen, last_seen, notice_count, active) "
                         "VALUES (?, ?, ?, ?, ?, 1, 1)", [(o, e, m, now, now) for o, e, m in keys])
        ids = [(i, o) for i, o in conn.execute("SELECT id, order_id FROM opt_outs WHERE id > ?", (top,))]
        conn.executemany("INSERT INTO evidence (raw_message_id, opt_out_id, seen_at) VALUES (?, ?, ?)",
                         [(raw, i, now) for i, _ in ids])
        conn.executemany("INSERT INTO blocklist_changes (opt_out_id, changed_at) VALUES (?, ?)", [(i, now) for i, _ in ids])
        conn.executemany("INSERT INTO audit_log (at, actor, action, subject, opt_out_id, raw_message_id, detail) "
                         "VALUES (?, 'bench', 'block', ?, ?, ?, ?)",
                         [(now, o, i, raw, f"notice in message {raw}") for i, o in ids])
        conn.execute("COMMIT")

    keys: list[tuple[str, str, str]] = []
    for order, email, market in rows:
        keys.append((hmac.digest(secret, f"order:{order}".encode(), hashlib.sha256)[:16].hex(),
                     hmac.digest(secret, f"email:{email.lower()}".encode(), hashlib.sha256)[:16].hex(), market))
        if len(keys) >= batch:
            flush(keys)
            keys = []
    if keys:
        flush(keys)
    conn.close()
    return time.perf_counter() - started


def csv_bench(sizes: list[int]) -> None:
    from inbox_daemon.privacy import new_keyring
    from inbox_daemon.processing.csvfile import DigestingReader
    from inbox_daemon.store import Store

    async def one(db: Path, data: bytes) -> float:
        ring = new_keyring()
        async with await Store.open(f"sqlite:///{db}", keyring=ring) as store:
            started = time.perf_counter()
            with DigestingReader(data, ring.pseudonym_key) as reader:  # as ``blocklist import`` reads
                done = await store.import_batches(data, "bench.csv", reader, who="bench", digested=True)
            assert done.rows == data.count(b"\n") - 1, done
            return time.perf_counter() - started

    first: tuple[int, float] | None = None
    for rows in sizes:
        out = io.StringIO()
        out.write("order_id,email,marketplace\n")
        for n in range(rows):
            out.write(f"{100 + n // 10**10 % 900:03d}-{n // 10**7 % 10**7:07d}-{n % 10**7:07d},"
                      f"b{n:014d}@marketplace.amazon.com,www.amazon.com\n")
        data = out.getvalue().encode()
        work = Path(tempfile.mkdtemp(prefix="bench-csv-"))
        migrate.upgrade(f"sqlite:///{work / 'inbox.db'}")
        elapsed = asyncio.run(one(work / "inbox.db", data))
        growth = f", {elapsed / first[1]:.2f}x the time of {first[0]:,} for {rows / first[0]:.0f}x the rows" if first else ""
        print(f"blocklist import of {rows:,} rows ({len(data) / 2**20:,.1f} MiB): {elapsed:.1f}s, "
              f"{rows / elapsed:,.0f} rows/s{growth}", flush=True)
        migrate.upgrade(f"sqlite:///{work / 'floor.db'}")
        floor = csv_floor(data, work / "floor.db")
        print(f"  stdlib floor (csv + sqlite3, same rows and schema, same run): {floor:.1f}s, {rows / floor:,.0f} rows/s; "
              f"import = {floor / elapsed:.2f}x the floor's rate", flush=True)
        first = first or (rows, elapsed)
        for p in work.iterdir():
            p.unlink()
        work.rmdir()


def privacy_anchor(args: argparse.Namespace) -> None:
    """The imports with a key ring and with ``PlainRing``, alternating, the same input."""
    import contextlib

    from bench._privacy import PlainRing, ratio_line, stores_with
    from inbox_daemon.privacy import new_keyring

    work = Path(tempfile.mkdtemp(prefix="bench-import-anchor-"))
    mbox, ring = work / "notices.mbox", new_keyring()
    build_mbox(mbox, args.messages, templates(args.corpus, args.whole_corpus))
    rings = {"on": ring, "off": PlainRing.of(ring)}
    rates: dict[str, list[float]] = {"on": [], "off": []}
    csv_rates: dict[str, list[list[float]]] = {"on": [], "off": []}
    for n in range(args.rounds):
        for mode in ("on", "off") if n % 2 == 0 else ("off", "on"):
            db = work / f"{mode}-{n}.db"
            migrate.upgrade(f"sqlite:///{db}")
            with stores_with(rings[mode]):
                s, elapsed = asyncio.run(run_import(db, mbox))
                rates[mode].append(s.messages_read / elapsed)
                if args.csv:  # csv_bench as it is: its printed rows/s per size
                    with contextlib.redirect_stdout(io.StringIO()) as printed:
                        csv_bench(args.csv)
                    found = [float(f.replace(",", "")) for f in  # the import's lines, not the floor's
                             re.findall(r"^blocklist import of .*?s, ([\d,]+) rows/s", printed.getvalue(), re.MULTILINE)]
                    assert len(found) == len(args.csv), printed.getvalue()
                    csv_rates[mode].append(found)
    print(f"import, privacy on vs off (bench/_privacy.py): {args.messages:,} messages, {args.rounds} rounds each, "
          "durable SQLite")
    print(ratio_line("mbox import", rates["on"], rates["off"], "messages/s"))
    for i, rows in enumerate(args.csv or []):
        print(ratio_line(f"blocklist import of {rows:,} rows", [r[i] for r in csv_rates["on"]],
                         [r[i] for r in csv_rates["off"]], "rows/s"))
    for p in work.iterdir():
        p.unlink()
    work.rmdir()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", type=lambda v: [int(x) for x in v.split(",")], default=None,
                    help="time blocklist import of lists of these row counts instead")
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--whole-corpus", action="store_true", help="not only the opt-out samples")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--privacy-anchor", action="store_true", help="privacy on vs a key ring that protects nothing")
    ap.add_argument("--rounds", type=int, default=2, help="with --privacy-anchor: runs of each")
    args = ap.parse_args()
    configure_logging("warning")  # as `inbox-daemon import` does
    if args.privacy_anchor:
        privacy_anchor(args)
        return
    if args.csv:
        csv_bench(args.csv)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    mbox, db = work / "notices.mbox", work / "inbox.db"
    t = time.perf_counter()
    samples = templates(args.corpus, args.whole_corpus)
    size = build_mbox(mbox, args.messages, samples)
    print(f"built {args.messages:,} messages from {len(samples)} samples ({size / 2**20:,.0f} MiB mbox) "
          f"in {time.perf_counter() - t:.1f}s")
    migrate.upgrade(f"sqlite:///{db}")
    s, elapsed = asyncio.run(run_import(db, mbox))
    print(f"imported in {elapsed:.1f}s, durable SQLite (WAL, synchronous=FULL)")
    print(f"  messages: {s.messages_read:,} read, {s.messages_read / elapsed:,.0f}/s")
    print(f"  notices:  {s.opt_out_notices:,} opt-out notices, {s.opt_out_notices / elapsed:,.0f}/s (target >= 1,000/s)")
    print(f"  buyers added {s.buyers_added:,}, not notices {s.not_notices:,}, malformed {s.malformed:,}, "
          f"duplicates {s.duplicates:,}, errors {s.errors:,}")
    print(f"  database {db.stat().st_size / 2**20:,.0f} MiB" + (f" in {work}" if args.keep else ""))
    messages, buyers, floor = stdlib_floor(mbox, work / "floor.db")
    print(f"stdlib floor (mailbox + batched INSERTs, same mbox, same run): {messages:,} messages, {buyers:,} buyers "
          f"in {floor:.1f}s, {messages / floor:,.0f} messages/s")
    print(f"  ratio: import {s.messages_read / elapsed:,.0f}/s = {(s.messages_read / elapsed) / (messages / floor):.2f}x "
          "the floor (target >= 0.5x)")
    if not args.keep:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
