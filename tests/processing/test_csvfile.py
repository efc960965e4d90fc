"""CSV buyer lists: cells read by position exactly as ``csv.DictReader`` reads them by name, and\nread with their keys digested in a child process."""

from __future__ import annotations

import csv
import io
import os
import signal
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon import keys
from inbox_daemon.notices import Buyer
from inbox_daemon.processing.csvfile import COLUMNS, DigestingReader, batches, buyer, rows, text
from inbox_daemon.store import pseudonyms
from tests.conftest import TEST_KEYRING

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


def _list(n: int, bad_every: int = 0) -> bytes:
    lines = ["order_id,email"]
    for i in range(n):
        order = "x" if bad_every and i % bad_every == 0 else f"{100 + i % 900:03d}-{i:07d}-{i:07d}"
        lines.append(f"{order},b{i:014d}@marketplace.amazon.com")
    return ("\n".join(lines) + "\n").encode()


def test_a_digesting_reader_gives_the_batches_with_their_keys_stored() -> None:
    """The child's batches are the file's ``batches``, keys in the stored form a key ring makes
    in this process, skips with their lines; the position ends at the file's end."""
    data = _list(2_500, bad_every=97)
    expected = [(pseudonyms.stored_buyers(TEST_KEYRING, buyers), skipped)
                for buyers, skipped in batches(text(data), size=1_000)]
    positions: list[int] = []
    with DigestingReader(data, TEST_KEYRING.pseudonym_key, size=1_000) as reader:
        found = []
        for batch in reader:
            found.append(batch)
            positions.append(reader.position)
    assert found == expected and len(found) == 3
    assert positions == sorted(positions) and positions[-1] == len(data)
    assert all(keys.is_stored(b.email or "") and keys.is_stored(b.order_id or "") for batch, _ in found for b in batch)


def test_a_digesting_reader_tells_why_the_child_failed() -> None:
    """A file the child cannot read is an error in the importer, not an empty list."""
    with DigestingReader(b"name,note\nx,y\n", TEST_KEYRING.pseudonym_key) as reader:
        with pytest.raises(ValueError, match="needs an order_id or email column"):
            next(reader)


def test_a_killed_child_is_an_error_not_the_end_of_the_list() -> None:
    """SIGKILL between batches: the rows it had not sent are never silently left out."""
    with DigestingReader(_list(5_000), TEST_KEYRING.pseudonym_key, size=100) as reader:
        next(reader)
        pid = reader._child.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="ended before the file did"):
            for _ in reader:
                pass


def test_closing_a_digesting_reader_early_ends_its_child() -> None:
    reader = DigestingReader(_list(50_000), TEST_KEYRING.pseudonym_key, size=100)
    next(reader)
    child = reader._child
    reader.close()
    assert not child.is_alive() and child.exitcode is not None


def test_a_row_that_is_no_csv_is_an_error_naming_its_line() -> None:
    """A cell over csv's field limit (a 10 MB line): the rows before it are given, then an error
    that names the line; through the child process the same error reaches the importer."""
    data = b"order_id,email\n111-2222222-3333333,\n" + b"x" * (10 * 2**20) + b",\n444-5555555-6666666,\n"
    read = rows(text(data))
    assert isinstance(next(read), Buyer)
    with pytest.raises(ValueError, match=r"^line 3: field larger than field limit"):
        next(read)
    with DigestingReader(data, TEST_KEYRING.pseudonym_key, size=1) as reader:
        assert len(next(reader)[0]) == 1
        with pytest.raises(ValueError, match=r"^line 3: field larger than field limit"):
            next(reader)
