"""CSV buyer lists: cells read by position exactly as ``csv.DictReader`` reads them by name."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.notices import Buyer
from inbox_daemon.processing.csvfile import COLUMNS, buyer, rows

HEADER_NAMES = [*COLUMNS, "note"]
CELLS = st.sampled_from([
    "", " ", "112-6155211-2353365", " d01-8203116-4457221 ", "123-45",
    "b0000001@marketplace.amazon.com", "Buyer <X+tag@Marketplace.Amazon.de>", "not an address",
    "0123456789abcdef0123456789abcdef", "www.amazon.co.jp", "k1",
])


def by_name(stream: io.StringIO, key_id: str | None) -> Iterator[Buyer | str]:
    """The rows as read by name, a dict per row (``csv.DictReader``)."""
    for line, row in enumerate(csv.DictReader(stream), start=2):
        first, second, third, fourth = ((row.get(name) or "").strip() for name in COLUMNS)
        yield buyer(line, (first, second, third, fourth), key_id)


@settings(max_examples=400, deadline=None)
@given(
    header=st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=6).filter(lambda h: {"order_id", "email"} & set(h)),
    body=st.lists(st.lists(CELLS, max_size=7), max_size=8),
    key_id=st.sampled_from([None, "k1"]),
)
def test_rows_by_position_are_rows_by_name(header: list[str], body: list[list[str]], key_id: str | None) -> None:
    """Repeated column names (the last wins), short and long rows, blank lines (skipped and not
    counted in line numbers): every buyer and every skip reason as the reading by name gave."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for cells in body:
        writer.writerow(cells)  # an empty list is a blank line
    text = out.getvalue()
    assert list(rows(io.StringIO(text), key_id)) == list(by_name(io.StringIO(text), key_id))
