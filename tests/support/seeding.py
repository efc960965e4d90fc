"""Puts known opt-outs into a running daemon the way an operator would: ``blocklist import``."""

from __future__ import annotations

import random
from pathlib import Path

from tests.support.daemon import DaemonProcess, wait_until
from tests.support.notices import order_id, relay_address


def seed_blocklist(daemon: DaemonProcess, directory: Path, count: int, seed: int = 12) -> list[tuple[str, str]]:
    """Import ``count`` (order id, relay address) rows; return once the daemon answers for all."""
    rng = random.Random(seed)
    rows = [(order_id(rng), relay_address(rng)) for _ in range(count)]
    csv_file = directory / f"seed-{seed}.csv"
    csv_file.write_text("order_id,email\n" + "".join(f"{o},{e}\n" for o, e in rows))
    out = daemon.cli("blocklist", "import", str(csv_file), "--by", "test")
    assert out.returncode == 0, out.stderr
    last_order, last_address = rows[-1]
    wait_until(lambda: daemon.query(f"ORDER {last_order}", f"CHECK {last_address}")[1].startswith("BLOCKED"))
    return rows


def unknown_keys(count: int, seed: int = 99) -> list[tuple[str, str]]:
    """(order id, relay address) pairs nobody imported (another seed: no overlap in practice)."""
    rng = random.Random(seed)
    return [(order_id(rng), relay_address(rng)) for _ in range(count)]
