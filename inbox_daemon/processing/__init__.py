"""Processing: what happens to a message after its raw bytes are committed.

claim -> parse (``parsers``) -> admit (``admission``: attribution, DKIM, the trust decision)
-> apply (one store transaction) -> index. ``Processor`` runs it by message id; ``Flow`` puts
the durable write in front; ``build_flow`` wires both once from the configuration, for the
daemon and the CLI. Imports notices, trust and the store; never intake or lookup.
"""

from __future__ import annotations

from .flow import Flow, build_flow
from .parsers import BUILTIN, Parser, auto_workers, load_parser
from .processor import Processed, Processor

__all__ = ["BUILTIN", "Flow", "Parser", "Processed", "Processor", "auto_workers", "build_flow", "load_parser"]
