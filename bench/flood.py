"""A flood through a real daemon: memory stays bounded, nothing acknowledged is lost, each
message is processed once.

usage: python bench/flood.py [--notices 20000] [--connections 64] [--parse-sleep 0.002]
                             [--big 128] [--big-mib 10] [--no-size]

1. ``--notices`` distinct notices over SMTP from ``--connections`` connections, with a
   deliberately slow parser (``[parser] module = "tests.support.slow_parser"``, sleeping
   ``--parse-sleep`` s per message): the backlog fills, SMTP answers 451 4.3.2, the client
   sends again as an MTA would.
2. ``--big`` concurrent messages of ``--big-mib`` MiB each (one notice padded with headers).

The client declares each message's SIZE= with MAIL FROM (RFC 1870) as Postfix does, so a full
byte budget is a 451 before the transfer; ``--no-size`` sends without it, and the budget then
cuts transfers off with 421 once it is spent.

Prints the peak RSS (VmHWM) and the RSS after each burst of the daemon and of its SMTP process
(``[smtp] own_process``, which holds the DATA buffers), the 4xx replies seen, and
checks that every acknowledged message was processed exactly once (``intake_decision`` events,
one per raw id). Asserts nothing. ``--notices 0`` is allowed (the first burst is then empty).

What holds (each of the daemon and its SMTP process; parser workers are separate processes):
peak RSS under baseline + 3 x ``[intake] bytes_in_flight``, and after a burst RSS back under
baseline + 96 MiB.
Measured on 2 cores with ``--notices 2000 --big 128 --big-mib 10`` and the default 128 MiB
budget, 0 lost and each message processed once in every run:

- with SIZE=: SMTP process baseline 73 MiB, peak 309 MiB, after the burst 110 MiB; daemon
  99 / 213 / 121 MiB; 128 accepted in 41.4 s with 3,692 x 451 before DATA and no 421;
- ``--no-size``: SMTP process peak 357 MiB, after the burst 111 MiB; daemon 100 / 220 / 129
  MiB; 128 accepted in 60.4 s with 405 x 421 (transfers cut off once the budget was spent).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import DaemonProcess, write_config  # noqa: E402
from tests.support.notices import opt_out_notice, order_id  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) // 1024
    return fields["VmRSS"], fields["VmHWM"]


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line or line[3:4] != b"-":
            return line


async def _connection(smtp: tuple[str, int], messages: list[bytes], replies: dict[str, int], declare: bool) -> int:
    """Sends each message until it is accepted (reconnecting after a 421 or a close); with
    ``declare``, MAIL FROM gives its SIZE= (RFC 1870) as Postfix does."""
    acked = 0
    todo = list(messages)
    while todo:
        try:
            reader, writer = await asyncio.open_connection(*smtp, limit=2**20)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        try:
            await _reply(reader)
            writer.write(b"EHLO flood.example\r\n")
            await _reply(reader)
            while todo:
                raw = todo[0]
                code = b""
                size = b" SIZE=%d" % len(raw) if declare else b""
                mail = b"MAIL FROM:<fwd@seller.example>%s\r\n" % size
                for command in (mail, b"RCPT TO:<optout@sellers.example>\r\n", b"DATA\r\n"):
                    writer.write(command)
                    code = (await _reply(reader))[:3]
                    if code[:1] in (b"4", b"5", b""):
                        break
                if code == b"354":
                    writer.write(raw.replace(b"\r\n.", b"\r\n..") + b".\r\n")
                    code = (await _reply(reader))[:3]
                replies[code.decode() or "closed"] = replies.get(code.decode() or "closed", 0) + 1
                if code == b"250":
                    todo.pop(0)
                    acked += 1
                    continue
                if code in (b"421", b""):
                    break  # the server closes: reconnect
                if code[:1] == b"5":
                    todo.pop(0)  # refused for good: an MTA would bounce it
                    continue
                writer.write(b"RSET\r\n")
                await _reply(reader)
                await asyncio.sleep(0.2)  # an MTA's retry, shortened
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    return acked


async def burst(smtp: tuple[str, int], raws: list[bytes], connections: int, declare: bool) -> tuple[int, dict[str, int]]:
    replies: dict[str, int] = {}
    jobs = (_connection(smtp, raws[i::connections], replies, declare) for i in range(connections))
    acked = await asyncio.gather(*jobs)
    return sum(acked), replies


def memory(pids: dict[str, int]) -> str:
    """RSS now and peak of each named process."""
    return "; ".join(f"{name} RSS {now} MiB, peak {peak} MiB" for name, (now, peak) in
                     ((name, rss(pid)) for name, pid in pids.items()))


def settle(daemon: DaemonProcess, expected: int, pid: int, timeout: float = 600) -> tuple[int, int]:
    """Wait until ``expected`` decisions are logged; (decisions, distinct raw ids)."""
    decisions = daemon.wait_count("intake_decision", expected, timeout=timeout)
    time.sleep(2)  # let the heap settle before reading RSS after the burst
    return len(decisions), len({d["raw_id"] for d in decisions})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notices", type=int, default=20_000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--parse-sleep", type=float, default=0.002)
    ap.add_argument("--big", type=int, default=128)
    ap.add_argument("--big-mib", type=int, default=10)
    ap.add_argument("--no-size", action="store_true", help="send MAIL FROM without SIZE= (a client that declares nothing)")
    args = ap.parse_args()
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp) / "c.toml", {
            "parser": {"module": "tests.support.slow_parser", "workers": 1},
            "smtp": {"max_connections": 1024, "max_message_bytes": (args.big_mib + 1) * 2**20},
        })
        daemon = DaemonProcess(Path(tmp) / "home", config, env={
            "PYTHONPATH": str(ROOT), "SLOW_PARSER_SLEEP": str(args.parse_sleep), "INBOX_DAEMON_LOG_LEVEL": "info"})
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        ready = daemon.wait_event("ready")
        pids = {"daemon": pid} | ({"smtp process": ready["smtp_pid"]} if ready.get("smtp_pid") else {})
        try:
            print(f"flood: {pids}; baseline {memory(pids)}")
            raws = [opt_out_notice(order_id(rng), None, seq=n) for n in range(args.notices)]
            t0 = time.perf_counter()
            acked, replies = asyncio.run(burst(daemon.smtp, raws, args.connections, not args.no_size))
            t_ack = time.perf_counter() - t0
            done, distinct = settle(daemon, acked, pid)
            after = memory(pids)
            print(f"1. {args.notices} notices, {args.connections} connections, parser sleeping {args.parse_sleep}s each:")
            print(f"   acknowledged {acked} in {t_ack:.1f}s; replies {replies}")
            print(f"   processed {done} decisions for {distinct} distinct messages (each once: {done == distinct == acked})")
            print(f"   after the burst: {after}")
            padding = b"X-Padding: " + b"p" * 900 + b"\r\n"  # under RFC 5321's 1000-octet line
            lines = args.big_mib * 2**20 // len(padding)
            bigs = [padding * lines + opt_out_notice(order_id(rng), None, seq=n) for n in range(args.big)]
            t0 = time.perf_counter()
            acked_big, replies_big = asyncio.run(burst(daemon.smtp, bigs, args.big, not args.no_size))
            t_big = time.perf_counter() - t0
            del bigs
            done_big, distinct_big = settle(daemon, acked + acked_big, pid)
            after_big = memory(pids)
            print(f"2. {args.big} concurrent messages of {args.big_mib} MiB:")
            print(f"   acknowledged {acked_big} in {t_big:.1f}s; replies {replies_big}")
            print(f"   processed {done_big - done} (each once: {done_big == distinct_big == acked + acked_big})")
            print(f"   after the burst: {after_big}")
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
