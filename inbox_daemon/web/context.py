"""What the web layer is given by the daemon: the store, the index, the processor, and a few
callbacks. The web layer decides nothing itself; it calls what the CLI calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..lookup import BlocklistIndex
from ..processing import Processor
from ..store import IndexEntry, Store

__all__ = ["WebContext"]


@dataclass
class WebContext:
    config: Config
    store: Store
    index: BlocklistIndex
    processor: Processor | None  # None: reprocess is not offered (a store without a daemon)
    on_applied: Callable[[Sequence[IndexEntry]], None] | None = None  # the index, updated with a commit
    on_address_learned: Callable[[str, str, str | None], None] | None = None  # CHECK's learning, as the socket
    status: Callable[[], Mapping[str, Any]] | None = None  # backlog, IMAP accounts, connections
