"""``blocklist import`` at scale: the work of applying a list grows with its length, not its
square, and a list is read and applied in bounded batches, each committed before the next is
read; on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from inbox_daemon.notices import Buyer
from inbox_daemon.processing.csvfile import batches, check, read_buyers, text
from inbox_daemon.store import Store, applying


def _csv(rows: int, start: int = 0) -> bytes:
    lines = ["order_id,email"] + [f"{100 + n // 10_000_000:03d}-{n // 10_000 % 1000:07d}-{n % 10_000:07d},"
                                  f"buyer{n}@marketplace.amazon.com" for n in range(start, start + rows)]
    return ("\n".join(lines) + "\n").encode()


def test_the_work_of_applying_a_list_grows_linearly(with_store: Any, monkeypatch: Any) -> None:
    """One batch of 1,200 buyers against one of 300: statements and row comparisons at most
    4.4 times as many (a scan per buyer over the rows already named made it 16 times), and the
    new rows inserted in bulk (the unit of work sent one INSERT per buyer)."""
    compared = [0]

    def counting_eq(self: object, other: object) -> bool:
        compared[0] += 1
        return self is other

    monkeypatch.setattr(applying._Row, "__eq__", counting_eq)

    async def body(store: Store) -> None:
        statements = [0]

        def count(*_: object) -> None:
            statements[0] += 1

        event.listen(store.engine.sync_engine, "before_cursor_execute", count)
        work = []
        for size, start in ((300, 0), (1200, 1000)):
            statements[0] = compared[0] = 0
            buyers, skipped = read_buyers(_csv(size, start))
            done = await store.import_buyers(_csv(size, start), f"{size}.csv", buyers, skipped, who="ana")
            assert (done.rows, done.new, done.updated, done.skipped) == (size, size, 0, ())
            work.append((statements[0], compared[0]))
        (small_statements, small_compared), (large_statements, large_compared) = work
        assert large_statements <= 4.4 * small_statements, work
        assert large_statements <= 60, work  # a handful per chunk of rows, never one per buyer
        assert large_compared <= 4.4 * small_compared + 20, work

    with_store(body)


def test_a_list_is_applied_batch_by_batch_as_it_is_read(with_store: Any) -> None:
    """Batch k is committed (visible to another reader) before batch k + 2 is read: the next
    batch is read (and its keys digested) while one is written, never more; counts add up
    over batches, the file is one raw message with one audit row, and importing it again adds
    no opt-out, no notice and no evidence."""
    data = _csv(250) + b"x,\n"

    async def body(store: Store) -> None:
        commits = [0]
        event.listen(store.engine.sync_engine, "commit", lambda *_: commits.__setitem__(0, commits[0] + 1))
        committed_at_pull: list[int] = []

        def lazily() -> Iterator[tuple[list[Buyer], list[str]]]:
            for batch in batches(text(data), size=100):
                committed_at_pull.append(commits[0])
                yield batch

        progress: list[tuple[int, int]] = []
        done = await store.import_batches(
            data, "list.csv", lazily(), who="ana", progress=lambda n, total: progress.append((n, total.rows)))
        assert committed_at_pull == [0, 0, 1]  # batch k was committed before batch k + 2 was read
        assert progress == [(100, 100), (100, 200), (51, 250)]  # the bad row is counted as read
        assert (done.rows, done.new, done.updated) == (250, 250, 0)
        assert done.skipped == ("line 252: bad order id 'x'",)
        assert len(await store.list_opt_outs(active=True, limit=10_000)) == 250
        (row,) = await store.find_opt_outs("buyer7@marketplace.amazon.com")
        (evidence,) = await store.evidence_details(row.id)
        assert evidence.source == "csv:list.csv"
        imports = [a for a in await store.audit_log(action="import", limit=10)]
        assert len(imports) == 1 and "250 rows, 1 skipped" in (imports[0].detail or "")

        again = await store.import_batches(data, "list.csv", batches(text(data), size=100), who="ana")
        assert (again.rows, again.new, again.updated) == (250, 0, 0)
        (row,) = await store.find_opt_outs("buyer7@marketplace.amazon.com")
        assert row.notice_count == 1
        assert len(await store.evidence_details(row.id)) == 1

    with_store(body)


def test_a_list_is_checked_whole_before_anything_is_applied() -> None:
    """Bad UTF-8 far into a large file, or no key column, is refused before the first batch
    (a stream would meet it only after committing the batches before it)."""
    good = _csv(40_000)
    assert len(good) > 2 * 2**20  # past the first piece the check reads
    check(good)
    with pytest.raises(ValueError, match="utf-8"):
        check(good + b"111-1111111-1111111,\xff@marketplace.amazon.com\n")
    with pytest.raises(ValueError, match="order_id or email"):
        check(b"name,phone\nx,y\n")
