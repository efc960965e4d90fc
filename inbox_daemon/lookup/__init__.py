"""The in-memory blocklist index, the query protocol (sans-IO), its socket server and a client.

Data flow: the store applies a change -> ``BlocklistIndex`` -> ``QueryServer`` answers sender
tools over a Unix socket (and optionally TCP). The wire format is docs/query-protocol.md.
"""

from __future__ import annotations

from inbox_daemon.lookup.client import QueryClient, Reply
from inbox_daemon.lookup.index import (
    BlocklistIndex,
    Hit,
    IndexEntryLike,
)
from inbox_daemon.lookup.server import QueryServer

__all__ = [
    "BlocklistIndex",
    "Hit",
    "IndexEntryLike",
    "QueryClient",
    "QueryServer",
    "Reply",
]
