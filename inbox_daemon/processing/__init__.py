"""Processing: what happens to a message after its raw bytes are committed.

claim -> parse (``parsers``) -> admit (``admission``: attribution, DKIM, the trust decision)
-> apply (one store transaction) -> index. ``Processor`` runs it by message id; ``Flow`` puts
the durable write in front; ``build_flow`` wires both once from the configuration, for the
daemon and the CLI. Imports notices, trust and the store; never intake or lookup.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .flow import Flow, build_flow
    from .parsers import BUILTIN, Parser, auto_workers, load_parser
    from .processor import Processed, Processor

__all__ = ["BUILTIN", "Flow", "Parser", "Processed", "Processor", "auto_workers", "build_flow", "load_parser"]

_MODULE_OF = {"Flow": "flow", "build_flow": "flow", "BUILTIN": "parsers", "Parser": "parsers", "auto_workers": "parsers",
              "load_parser": "parsers", "Processed": "processor", "Processor": "processor"}


def __getattr__(name: str) -> Any:
    """The names above, each imported on first use (PEP 562): a parser worker process imports
    ``parsers`` through this package, and must not import the store and SQLAlchemy with it."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
