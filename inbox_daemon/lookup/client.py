"""The query client lives in ``inbox_daemon.client`` (the public library); this re-exports it."""

from __future__ import annotations

from inbox_daemon.client import AsyncClient, Client, Reply, request_line

QueryClient = Client

__all__ = ["Reply", "QueryClient", "Client", "AsyncClient", "request_line"]
