"""The benchmark's other process: serve a generated blocklist, or measure the index's memory.

    python bench/_serve.py serve --entries N --socket PATH [--tcp HOST:PORT] [--python]
    python bench/_serve.py memory --entries N

``serve`` builds the index, answers on uvloop (the C loop, or the pure Python path with
``--python``), prints ``READY {json}`` and runs until SIGTERM. On SIGUSR1 it prints APPLYING and
applies 1,000,000-row change batches (new addresses, then their removal, again) on its event
loop, in slices of 10,000 with a loop turn between, as the daemon applies an import; SIGUSR2
stops that and prints ``{"rows": ..., "seconds": ..., "batch": ...}``.
``memory`` builds the index and prints one JSON line: memory_bytes() and the RSS growth.
Both use ``blocked_addresses`` so that bench/lookup.py can give Redis the very same set.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

SEED = 20261126
_ALPHABET = bytes(b"abcdefghijklmnopqrstuvwxyz012345"[i % 32] for i in range(256))  # byte -> 32 symbols
_CHUNK = 100_000


@dataclass(slots=True)
class Entry:
    """The store's IndexEntry shape."""

    kind: str
    value: str
    first_seen: datetime | None
    count: int


def addresses(count: int, seed: int) -> Iterator[str]:
    """``count`` relay-like addresses (15 letters/digits @ marketplace.amazon.com), reproducibly."""
    rng = random.Random(seed)
    for start in range(0, count, _CHUNK):
        n = min(_CHUNK, count - start)
        text = rng.randbytes(15 * n).translate(_ALPHABET).decode("ascii")
        for i in range(0, 15 * n, 15):
            yield f"{text[i:i + 15]}@marketplace.amazon.com"


def blocked_addresses(count: int) -> Iterator[str]:
    return addresses(count, SEED)


def unknown_addresses(count: int) -> Iterator[str]:
    return addresses(count, SEED + 1)


def entries(count: int) -> Iterator[Entry]:
    first_seen = datetime(2026, 11, 26, 6, 17, 34, tzinfo=timezone.utc)
    for address in blocked_addresses(count):
        yield Entry("email", address, first_seen, 1)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def measure_memory(count: int) -> dict[str, Any]:
    from inbox_daemon.lookup import BlocklistIndex

    gc.collect()
    before = rss_bytes()
    index = BlocklistIndex.build(entries(count))
    gc.collect()
    after = rss_bytes()
    return {"entries": len(index), "memory_bytes": index.memory_bytes(), "rss_delta": after - before}


APPLY_ROWS = 1_000_000
APPLY_SLICE = 10_000


async def serve(count: int, socket_path: str, tcp: tuple[str, int] | None, python: bool) -> None:
    from inbox_daemon.lookup import BlocklistIndex, QueryServer

    index = BlocklistIndex.build(entries(count))
    server = QueryServer(index, unix_path=socket_path, tcp=tcp, logger=_Silent(), native=False if python else None)
    await server.start()
    stop, applying, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, applying.set)
    loop.add_signal_handler(signal.SIGUSR2, done.set)
    info = {"entries": len(index), "memory_bytes": index.memory_bytes(), "path": server.path}
    print("READY " + json.dumps(info), flush=True)
    applier = asyncio.create_task(apply_batches(index, applying, done))
    await stop.wait()
    applier.cancel()
    await server.stop()


async def apply_batches(index: Any, applying: asyncio.Event, done: asyncio.Event) -> None:
    """Apply 1M-row batches in slices, on the event loop, from SIGUSR1 until SIGUSR2."""
    await applying.wait()
    print("APPLYING", flush=True)
    first_seen = datetime(2026, 11, 27, tzinfo=timezone.utc)
    rows, started, count = 0, time.monotonic(), 1
    while not done.is_set():
        batch: list[Entry] = []
        for address in addresses(APPLY_ROWS, SEED + 2):
            batch.append(Entry("email", address, first_seen, count))
            if len(batch) == APPLY_SLICE:
                index.apply(batch)
                rows += len(batch)
                batch = []
                await asyncio.sleep(0)
                if done.is_set():
                    break
        count = 1 - count  # add the batch, then remove it
    print(json.dumps({"rows": rows, "seconds": time.monotonic() - started, "batch": APPLY_ROWS}), flush=True)


class _Silent:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve", "memory"])
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--socket")
    parser.add_argument("--tcp")
    parser.add_argument("--python", action="store_true")
    args = parser.parse_args()
    if args.mode == "memory":
        print(json.dumps(measure_memory(args.entries)), flush=True)
        return
    import uvloop

    host, _, port = (args.tcp or "").rpartition(":")
    uvloop.run(serve(args.entries, args.socket, (host, int(port)) if args.tcp else None, args.python))


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    main()
