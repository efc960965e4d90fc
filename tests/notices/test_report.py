"""The JSON object, the readable line and the body of ``inbox-daemon parse``."""

from __future__ import annotations

import io
import json
from pathlib import Path

from inbox_daemon.notices import (
    PARSER_VERSION,
    Buyer,
    Kind,
    ParseResult,
    format_result_line,
    result_to_json,
    run_parse_cli,
)

from .expectations import OWN_SAMPLES

RESULT = ParseResult(
    Kind.OPT_OUT,
    buyers=(Buyer("q1w2e3r4t5y6u7i@marketplace.amazon.com", "113-1234567-7654321", "marketplace.amazon.com"),),
    forwarder="ops@seller.example",
    forwarded_via="inline",
)


def test_json_object_has_exactly_the_issue_keys() -> None:
    obj = result_to_json("a.eml", RESULT)
    assert list(obj) == ["file", "kind", "buyers", "reason", "forwarder"]
    assert obj["kind"] == "opt_out" and obj["reason"] is None
    assert obj["buyers"] == [{"email": "q1w2e3r4t5y6u7i@marketplace.amazon.com",
                              "order_id": "113-1234567-7654321", "marketplace": "marketplace.amazon.com"}]
    assert isinstance(PARSER_VERSION, str)


def test_readable_line() -> None:
    line = format_result_line("a.eml", RESULT)
    assert line.startswith("a.eml: opt_out") and "ops@seller.example" in line and "\n" not in line


def test_cli_exit_status_and_lines(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    good = str(OWN_SAMPLES / "fwd_gmail_4k.eml")
    assert run_parse_cli([good], as_json=True, out=out, err=err) == 0
    assert json.loads(out.getvalue())["file"] == good
    assert run_parse_cli([good, str(tmp_path / "missing.eml")], as_json=False, out=out, err=err) == 2
    assert "missing.eml" in err.getvalue()
