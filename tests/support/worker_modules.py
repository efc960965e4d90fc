"""What a parser worker process has imported, asked from inside it (``ParsePool.parse_many``'s
companion work): tests/processing/test_parsers.py."""

from __future__ import annotations

import sys
from collections.abc import Sequence

HEAVY = ("sqlalchemy", "aiohttp", "inbox_daemon.cli", "inbox_daemon.store")


def heavy_modules(raws: Sequence[bytes]) -> list[str]:
    """The modules of ``HEAVY`` this process has imported, once per message."""
    return [" ".join(m for m in HEAVY if m in sys.modules) for _ in raws]
