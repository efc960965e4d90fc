"""Notices per second acknowledged (SMTP 250) and applied, through a real daemon on durable SQLite.

usage: python bench/ingest.py [--messages 5000] [--rounds 3] [--connections 32] [--processes 2] [--smtp-inline]
       python bench/ingest.py --privacy-anchor [--rounds 3] [--messages ...]

Starts `inbox-daemon serve` on the embedded defaults in a temporary directory and sends
distinct opt-out notices over SMTP from a lean asyncio client (each connection sends many
messages, as an MTA with a connection cache does; plain RFC 5321 commands, no PIPELINING),
then waits until the daemon reports every notice applied and the last order answers
BLOCKED. The client shares the machine's two cores with the daemon. Prints figures; asserts
nothing. Beside the rates, the CPU each of the daemon's processes (the daemon, the SMTP process,
the parser worker) spent per notice from the first send until all were applied, read from /proc
(Linux; left out elsewhere): where a notice's cost goes.

The anchor, from the same run with the same client and the same notices: a bare aiosmtpd server
(its own process) that INSERTs each message into SQLite (WAL, synchronous=FULL) before its 250,
and nothing else, with a commit per message; the target is 0.9x its rate. Beside it, a stricter
floor: the same server with group commit (the 250s that arrive during a commit wait for the
next one, as the daemon's do), which is the disk's pace with no work done at all. This machine's
pace drifts by a fifth from one minute to the next, so ``--rounds`` daemon runs and anchor runs
take turns (which goes first alternates); each round prints its own ratios, and the ratios of
the medians are the figures.

``--smtp-inline`` runs the daemon with ``[smtp] own_process = false`` (SMTP on the daemon's own
loop, as before the SMTP process), to compare the two in one session.

``--privacy-anchor`` runs the daemon instead with its key ring and with one that seals nothing and
digests without a key (bench/_privacy.py), alternating for ``--rounds`` each, and prints the
privacy-on rates as a ratio of the privacy-off ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import EXE, DaemonProcess
from tests.support.notices import opt_out_notice, order_id, relay_address


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if line[3:4] != b"-":  # the last line of a (multi-line) reply, RFC 5321 4.2.1
            return line


async def _connection(smtp: tuple[str, int], messages: list[bytes]) -> int:
    reader, writer = await asyncio.open_connection(*smtp)
    await _reply(reader)
    writer.write(b"EHLO bench.example\r\n")
    await _reply(reader)
    acked = 0
    for raw in messages:
        for command in (b"MAIL FROM:<fwd@seller.example>\r\n", b"RCPT TO:<optout@sellers.example>\r\n", b"DATA\r\n"):
            writer.write(command)
            await _reply(reader)
        writer.write(raw.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        acked += (await _reply(reader)).startswith(b"250")
    writer.write(b"QUIT\r\n")
    await _reply(reader)
    writer.close()
    return acked


def _client(args: tuple[tuple[str, int], list[tuple[str, str]], int]) -> int:
    smtp, notices, connections = args
    raws = [opt_out_notice(order, buyer) for order, buyer in notices]

    async def main() -> int:
        return sum(await asyncio.gather(*(_connection(smtp, raws[i::connections]) for i in range(connections))))

    return asyncio.run(main())


def _bare_server(db: str, group: bool, ready: Any, stop: Any) -> None:
    """aiosmtpd and a durable INSERT of each message before its 250: the floor of SMTP intake.
    ``group``: the messages that arrive while a commit runs are committed together next (one
    fsync for them, in a thread, as the daemon does); else one commit per message on the loop."""
    from aiosmtpd.smtp import SMTP

    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, sender TEXT, data BLOB)")
    waiting: list[tuple[tuple[str, bytes], asyncio.Future[None]]] = []
    wake = asyncio.Event()

    def commit(rows: list[tuple[str, bytes]]) -> None:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO messages (sender, data) VALUES (?, ?)", rows)
        conn.execute("COMMIT")

    async def writer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            batch = waiting[:]
            waiting.clear()
            await asyncio.to_thread(commit, [row for row, _ in batch])
            for _, done in batch:
                done.set_result(None)

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            row = (envelope.mail_from, envelope.original_content)
            if not group:
                conn.execute("INSERT INTO messages (sender, data) VALUES (?, ?)", row)
                return "250 OK"
            done = asyncio.get_running_loop().create_future()
            waiting.append((row, done))
            wake.set()
            await done
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(writer())
        server = await loop.create_server(lambda: SMTP(Handler(), hostname="bare.example"), "127.0.0.1", 0)
        ready.put(server.sockets[0].getsockname()[:2])
        await loop.run_in_executor(None, stop.wait)
        server.close()
        task.cancel()

    asyncio.run(serve())


def bare_rate(notices: list[tuple[str, str]], args: argparse.Namespace, tmp: str, group: bool) -> float:
    """Notices/s the bare server acknowledges, driven exactly as the daemon is."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_bare_server, args=(str(Path(tmp) / f"bare-{group}.db"), group, ready, stop))
    server.start()
    try:
        smtp = tuple(ready.get(timeout=30))
        per = max(1, args.connections // args.processes)
        chunks = [(smtp, notices[i::args.processes], per) for i in range(args.processes)]
        with ctx.Pool(args.processes) as pool:
            t0 = time.perf_counter()
            acked = sum(pool.map(_client, chunks))
            elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        server.join(10)
    return acked / elapsed


def drive(daemon: DaemonProcess, notices: list[tuple[str, str]], args: argparse.Namespace) -> tuple[int, float, float]:
    """Send ``notices`` to a running daemon from the client processes: (notices acknowledged,
    seconds until the last 250, seconds until the daemon reports them all applied)."""
    per = max(1, args.connections // args.processes)
    chunks = [(daemon.smtp, notices[i::args.processes], per) for i in range(args.processes)]
    with mp.get_context("spawn").Pool(args.processes) as pool:
        before = cpu_by_process(daemon)
        t0 = time.perf_counter()
        acked = sum(pool.map(_client, chunks))
        t_ack = time.perf_counter() - t0
        while json.loads(daemon.query("STATS")[0].split(" ", 1)[1]).get("notices", 0) < acked:
            time.sleep(0.02)
        t_applied = time.perf_counter() - t0
        after = cpu_by_process(daemon)
    if before and after and acked:
        spent = {role: after.get(role, 0.0) - before.get(role, 0.0) for role in after}
        shares = ", ".join(f"{role} {seconds / acked * 1000:.2f}" for role, seconds in spent.items())
        print(f"  CPU per notice (ms, from the first send until applied): {shares}; "
              f"daemon in all {sum(spent.values()) / acked * 1000:.2f}")
    return acked, t_ack, t_applied


def cpu_by_process(daemon: DaemonProcess) -> dict[str, float]:
    """CPU seconds (user + system) so far of the daemon and each of its processes, by role, from
    /proc (empty where there is none): where a notice's cost goes, beside the rates."""
    assert daemon.proc is not None
    ready = next((e for e in daemon.events if e.get("event") == "ready"), {})
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    pids = [daemon.proc.pid]
    try:
        for task in Path(f"/proc/{daemon.proc.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"resource_tracker" in command:
                continue
            role = ("daemon" if pid == daemon.proc.pid else "SMTP process" if pid == ready.get("smtp_pid")
                    else "parser worker")
            found[role] = found.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    except OSError:  # not Linux, or a process ended between the listing and the read
        return {}
    return found


def daemon_rates(notices: list[tuple[str, str]], args: argparse.Namespace, home: Path, exe: str) -> tuple[float, float]:
    """(acknowledged, applied) notices/s of one daemon run with ``exe`` (the privacy anchor)."""
    daemon = DaemonProcess(home, exe=exe)
    daemon.start()
    try:
        acked, t_ack, t_applied = drive(daemon, notices, args)
    finally:
        daemon.stop()
    return acked / t_ack, acked / t_applied


def privacy_anchor(notices: list[tuple[str, str]], args: argparse.Namespace) -> None:
    """The daemon with its key ring and with ``PlainRing``, alternating, the same notices."""
    from bench._privacy import plain_daemon_exe, ratio_line

    rates: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        exes = {"on": EXE, "off": plain_daemon_exe(Path(tmp))}
        for n in range(args.rounds):
            for mode in ("on", "off") if n % 2 == 0 else ("off", "on"):
                rates[mode].append(daemon_rates(notices, args, Path(tmp) / f"{mode}-{n}", exes[mode]))
    print(f"ingest, privacy on vs off (bench/_privacy.py): {len(notices)} notices over SMTP, {args.connections} "
          f"connections from {args.processes} client processes, {args.rounds} rounds each, SQLite durable")
    for i, what in enumerate(("acknowledged (250)", "applied (indexed)")):
        print(ratio_line(what, [r[i] for r in rates["on"]], [r[i] for r in rates["off"]], "notices/s"))


def daemon_round(notices: list[tuple[str, str]], args: argparse.Namespace) -> tuple[float, float, str]:
    """One daemon run on a fresh home: (acknowledged/s, applied/s, what the last order answers)."""
    with tempfile.TemporaryDirectory() as tmp:
        daemon = DaemonProcess(Path(tmp), env={"INBOX_DAEMON_SMTP_OWN_PROCESS": "false"} if args.smtp_inline else None)
        daemon.start()
        try:
            acked, t_ack, t_applied = drive(daemon, notices, args)
            last = daemon.query(f"ORDER {notices[-1][0]}")[0]
        finally:
            daemon.stop()
    if acked != len(notices):
        print(f"  only {acked}/{len(notices)} notices acknowledged")
    return acked / t_ack, acked / t_applied, last


def anchor_rates(notices: list[tuple[str, str]], args: argparse.Namespace) -> tuple[float, float]:
    """The bare server's rates: (one commit per message, group commit)."""
    with tempfile.TemporaryDirectory() as tmp:
        return bare_rate(notices, args, tmp, group=False), bare_rate(notices, args, tmp, group=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--smtp-inline", action="store_true", help="[smtp] own_process = false")
    ap.add_argument("--privacy-anchor", action="store_true", help="privacy on vs a key ring that protects nothing")
    ap.add_argument("--rounds", type=int, default=3,
                    help="daemon runs, each beside its own anchor runs (with --privacy-anchor: runs of each)")
    args = ap.parse_args()
    rng = random.Random(42)
    notices = [(order_id(rng), relay_address(rng)) for _ in range(args.messages)]
    if args.privacy_anchor:
        privacy_anchor(notices, args)
        return
    print(f"ingest: {args.messages} notices over SMTP, {args.connections} connections from {args.processes} client "
          f"processes, SQLite durable (WAL, synchronous=FULL), SMTP "
          f"{'on the daemon loop' if args.smtp_inline else 'in its own process'}; {args.rounds} rounds, the daemon "
          "and a bare aiosmtpd + durable SQLite INSERT before each 250 (same client, same notices) taking turns")
    acked, applied, single, grouped = [], [], [], []
    for n in range(args.rounds):
        if n % 2:  # the machine's pace drifts: alternate which goes first
            one, group = anchor_rates(notices, args)
            ack, done, last = daemon_round(notices, args)
        else:
            ack, done, last = daemon_round(notices, args)
            one, group = anchor_rates(notices, args)
        acked.append(ack)
        applied.append(done)
        single.append(one)
        grouped.append(group)
        print(f"  round {n + 1}: acknowledged (250) {ack:,.0f}/s, applied (indexed) {done:,.0f}/s; bare: one commit "
              f"per message {one:,.0f}/s, group commit {group:,.0f}/s; acknowledged = {ack / one:.2f}x / "
              f"{ack / group:.2f}x; last order: {last}")
    print(f"  medians: acknowledged {statistics.median(acked):,.0f}/s, applied {statistics.median(applied):,.0f}/s; bare one commit per "
          f"message {statistics.median(single):,.0f}/s, group commit {statistics.median(grouped):,.0f}/s")
    print(f"  daemon acknowledged = {statistics.median(acked) / statistics.median(single):.2f}x the anchor, one commit "
          f"per message (target >= 0.9x); {statistics.median(acked) / statistics.median(grouped):.2f}x group commit")


if __name__ == "__main__":
    main()
