"""log.Throttled, the one rule for repeated warnings: per kind, the first line at once, then one
summary per interval that counts what was not logged; kinds do not hide each other."""

from __future__ import annotations

import asyncio
from typing import Any

from inbox_daemon.log import Throttled


class Lines:
    """A logger that keeps what it is given and wakes a waiter at each line."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.wrote = asyncio.Event()

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append({"event": event, **fields})
        self.wrote.set()

    async def until(self, count: int) -> None:
        while len(self.lines) < count:
            self.wrote.clear()
            await self.wrote.wait()


def test_a_flood_is_one_line_then_one_summary_per_kind() -> None:
    async def main() -> list[dict[str, Any]]:
        log = Lines()
        warn = Throttled(log, "policy.malformed", interval=0.2)
        for n in range(10_000):
            warn(reason="empty attribute block", n=n)
        warn("other-kind", reason="not name=value")
        warn(occurrences=500, reason="counted by a sweep")
        await asyncio.wait_for(log.until(3), 10)
        return log.lines

    first, other, summary = asyncio.run(main())
    assert first == {"event": "policy.malformed", "suppressed": 0, "reason": "empty attribute block", "n": 0}
    assert other == {"event": "policy.malformed", "suppressed": 0, "reason": "not name=value"}
    assert summary == {"event": "policy.malformed", "suppressed": 9_999 + 500, "summary": True,
                       "reason": "counted by a sweep"}


def test_flush_writes_what_is_pending_and_nothing_else() -> None:
    log = Lines()
    warn = Throttled(log, "smtp_deferred", interval=3600)
    warn(peer="a")
    warn.flush()
    assert len(log.lines) == 1  # nothing was suppressed: no summary
    for _ in range(3):
        warn(peer="b")
    warn.flush()
    assert log.lines[1:] == [{"event": "smtp_deferred", "suppressed": 3, "summary": True, "peer": "b"}]


def test_fields_named_count_and_kind_are_fields() -> None:
    """A caller's own ``count`` (a stored notice count, say) and ``kind`` are logged as given;
    only ``occurrences`` adds to the tally (a string there once crashed the index load) and only
    the positional argument names a stream."""
    log = Lines()
    warn = Throttled(log, "index_count_invalid", interval=3600)
    warn(count="-1", kind="order", length=19)
    warn(count="-1", kind="order", length=19)
    assert log.lines == [{"event": "index_count_invalid", "suppressed": 0, "count": "-1", "kind": "order", "length": 19}]
