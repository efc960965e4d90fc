"""Shared helpers: load an expectation table (expected.json) and compare a result with a case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inbox_daemon.notices import ParseResult, parse_notice, result_to_json

REPO = Path(__file__).resolve().parents[2]
SHARED_CORPUS = Path(__file__).parents[3] / "shared" / "corpus"
OWN_SAMPLES = REPO / "tests" / "data" / "notices"


def load_cases(folder: Path) -> list[dict[str, Any]]:
    """The cases of an expected.json, or none when the folder is absent."""
    table = folder / "expected.json"
    if not table.exists():
        return []
    cases: list[dict[str, Any]] = json.loads(table.read_text(encoding="utf-8"))
    return cases


def buyer_set(buyers: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(((b["email"] or "", b["order_id"] or "", b["marketplace"] or "") for b in buyers))


def check_case(folder: Path, case: dict[str, Any]) -> ParseResult:
    """Parse the case's file and assert kind, buyers (or an also_ok alternative) and forwarder."""
    result = parse_notice((folder / case["file"]).read_bytes())
    got = result_to_json(case["file"], result)
    wanted = [(case["kind"], buyer_set(case["buyers"]))]
    wanted += [(alt["kind"], buyer_set(alt["buyers"])) for alt in case.get("also_ok", [])]
    assert (got["kind"], buyer_set(got["buyers"])) in wanted, (got, case.get("note"))
    if "forwarder" in case:
        assert got["forwarder"] == case["forwarder"]
    if got["kind"] != "opt_out":
        assert got["reason"], "every not_opt_out/malformed result carries a reason"
        assert got["buyers"] == []
    return result
