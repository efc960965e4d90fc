"""Presenting results: the JSON object of ``inbox-daemon parse --json`` (the shape the shared
corpus scorer reads), a readable line, and the body of the ``parse`` command.

Exit status: 0 when every file was read, whatever its kind; 2 otherwise (a file that cannot be
read is the caller's error, a damaged message is a result).
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from .parser import parse_notice
from .result import ParseResult

__all__ = ["result_to_json", "format_result_line", "run_parse_cli"]


def result_to_json(path: str, result: ParseResult) -> dict[str, Any]:
    """Exactly ``{"file","kind","buyers":[{"email","order_id","marketplace"}],"reason","forwarder"}``."""
    return {
        "file": path,
        "kind": result.kind.value,
        "buyers": [
            {"email": b.email, "order_id": b.order_id, "marketplace": b.marketplace}
            for b in result.buyers
        ],
        "reason": result.reason,
        "forwarder": result.forwarder,
    }


def format_result_line(path: str, result: ParseResult) -> str:
    """One human-readable line, e.g. ``a.eml: opt_out x@marketplace.amazon.com 113-… (via inline)``."""
    words = [f"{path}: {result.kind.value}"]
    for b in result.buyers:
        words.append(f"[{b.email or '-'} order {b.order_id or '-'}]")
    if result.reason:
        words.append(f"- {result.reason}")
    if result.forwarder:
        words.append(f"(forwarded by {result.forwarder} via {result.forwarded_via})")
    return " ".join(words)


def run_parse_cli(
    paths: list[str], as_json: bool, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Parse each file, print one line per file; 0 if all were read, 2 if any could not be."""
    out = out or sys.stdout
    err = err or sys.stderr
    status = 0
    for path in paths:
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            print(f"inbox-daemon parse: cannot read {path}: {exc.strerror or exc}", file=err)
            status = 2
            continue
        result = parse_notice(raw)
        if as_json:
            print(json.dumps(result_to_json(path, result), ensure_ascii=False), file=out)
        else:
            print(format_result_line(path, result), file=out)
    out.flush()
    return status
