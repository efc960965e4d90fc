"""The operator pages and the HTTP API, served on the daemon's loop (``[web] listen``).

Handlers read through the store and decide through ``processing``, as the CLI does; the API
answers through the query socket's own ``Responder``. No business rule lives here. May import
processing, store, lookup, config, log, errors and keys; never intake, daemon or cli."""

from __future__ import annotations

from .app import WebServer, build_app
from .context import WebContext

__all__ = ["WebServer", "WebContext", "build_app"]
