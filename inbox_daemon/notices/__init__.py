"""Pure parsing of Amazon buyer opt-out notices: raw bytes in, one ``ParseResult`` out.

Data flow inside: ``mime`` (bounded MIME walk, charset sniffing, HTML to text) -> ``unwrap``
(candidate notices out of forwards, attachments and digests) -> ``classify`` (Amazon sender,
reason sentence from the ``languages`` tables, buyers) -> ``parser`` (one result per mail, with
the forwarding identity from ``forwarder``). ``report`` prints results for the CLI.
"""

from __future__ import annotations

from .addresses import normalise_relay_address
from .parser import parse_notice
from .report import format_result_line, result_to_json, run_parse_cli
from .result import Buyer, Kind, ParseResult

__all__ = [
    "PARSER_VERSION",
    "Buyer",
    "Kind",
    "ParseResult",
    "format_result_line",
    "normalise_relay_address",
    "parse_notice",
    "result_to_json",
    "run_parse_cli",
]

# Bump when a change alters any result for the same input (stored results can be re-derived).
PARSER_VERSION = "2.0"
