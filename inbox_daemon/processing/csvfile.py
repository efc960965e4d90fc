"""Buyer lists in CSV (``blocklist import``): the columns ``blocklist export --csv`` writes,
``order_id``, ``email`` and optionally ``marketplace`` and ``key_id``; one buyer per row.

A key is given in plain text (an order id, a relay address) or as the pseudonym the blocklist
stores (``keys.BuyerKey.stored``, as ``export`` writes it) with the ``key_id`` of the privacy key
it was made with: a pseudonym made with another key names nobody here, so its row is skipped.

Read as a stream, in batches of bounded size: a list of a million rows never has more than one
batch of buyers in memory (``batches``). ``DigestingReader`` reads them, and digests their keys,
in a process of its own beside the importing one."""

from __future__ import annotations

import codecs
import csv
import io
import multiprocessing
import os
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from types import TracebackType
from typing import IO, Self

from .. import keys
from ..notices import Buyer
from ..store import pseudonyms
from .parsers import worker_init

__all__ = ["BATCH_ROWS", "DigestingReader", "batches", "check", "read_buyers", "rows", "text"]

BATCH_ROWS = 25_000  # buyers applied per transaction: bounded memory, a handful of statements each
_PIECE = 1 << 20


def rows(stream: IO[str], key_id: str | None = None) -> Iterator[Buyer | str]:
    """Each data row as a buyer, or why it was skipped (line numbers count the header as line 1).
    ``key_id``: the check value of this database's privacy key, which a row's pseudonyms must
    carry. ValueError before the first row when the file has neither key column, and where a
    row cannot be read as CSV at all (the rows before it were given)."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if not header or not {"order_id", "email"} & set(header):
        raise ValueError("needs an order_id or email column")
    field = _cells(header)
    try:
        for line, row in enumerate((row for row in reader if row), start=2):  # blank lines skipped, uncounted
            yield buyer(line, field(row), key_id)
    except csv.Error as exc:  # a cell over csv's field limit (128 KiB), a NUL in a quoted cell
        raise ValueError(f"line {reader.line_num}: {exc}") from None


def buyer(line: int, cells: tuple[str, str, str, str], key_id: str | None) -> Buyer | str:
    """One row's buyer from its ``COLUMNS`` cells (stripped, "" when missing), or why not."""
    given_order, given_email, given_market, given_key_id = cells
    same_key = key_id is not None and given_key_id == key_id
    order = _key(given_order, keys.order_id, same_key)
    email = _key(given_email, keys.address, same_key)
    if given_order and order is None:
        return f"line {line}: {_why(given_order, 'order id')}"
    if given_email and email is None:
        return f"line {line}: {_why(given_email, 'address')}"
    if not (order or email):
        return f"line {line}: neither order id nor address"
    plain = email if email and "@" in email else None
    market = given_market or (plain.rpartition("@")[2] if plain else None)
    return Buyer(email, order, market)


COLUMNS = ("order_id", "email", "marketplace", "key_id")  # the ones read, in ``buyer``'s order


def _cells(header: list[str]) -> Callable[[list[str]], tuple[str, str, str, str]]:
    """A reader of a row's ``COLUMNS`` cells, stripped, as ``csv.DictReader`` reads them by name
    (the last column of a repeated name wins; a cell a short row lacks is "") but by position:
    no dict per row."""
    at = [len(header) - 1 - header[::-1].index(name) if name in header else None for name in COLUMNS]

    def cell(row: list[str], n: int | None) -> str:
        return row[n].strip() if n is not None and n < len(row) else ""

    def cells(row: list[str]) -> tuple[str, str, str, str]:
        return cell(row, at[0]), cell(row, at[1]), cell(row, at[2]), cell(row, at[3])

    return cells


def batches(stream: IO[str], size: int = BATCH_ROWS, key_id: str | None = None) -> Iterator[tuple[list[Buyer], list[str]]]:
    """``rows`` in batches of at most ``size`` buyers, each with the skips read alongside."""
    buyers: list[Buyer] = []
    skipped: list[str] = []
    for item in rows(stream, key_id):
        if isinstance(item, str):
            skipped.append(item)
            continue
        buyers.append(item)
        if len(buyers) >= size:
            yield buyers, skipped
            buyers, skipped = [], []
    if buyers or skipped:
        yield buyers, skipped


def check(data: bytes) -> None:
    """ValueError unless the file is UTF-8 throughout and its header names a key column: checked
    before any batch is applied, in pieces of bounded size (no second copy of a large file)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(view), _PIECE):
        decoder.decode(view[start : start + _PIECE])
    decoder.decode(b"", final=True)
    next(rows(text(data)), None)


def text(data: bytes) -> IO[str]:
    """The file's bytes as a text stream decoded as it is read (a BOM is dropped)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")


def read_buyers(data: bytes, key_id: str | None = None) -> tuple[list[Buyer], list[str]]:
    """All buyers of a small file at once, and why each other row was skipped."""
    buyers: list[Buyer] = []
    skipped: list[str] = []
    for batch, skips in batches(text(data), size=max(len(data), 1), key_id=key_id):
        buyers += batch
        skipped += skips
    return buyers, skipped


def _key(given: str, canonical: Callable[[str], str | None], same_key: bool) -> str | None:
    """The canonical plain key, or a pseudonym made with this database's key, as it is."""
    if not given:
        return None
    if keys.is_stored(given.lower()):
        return given.lower() if same_key else None
    return canonical(given)


def _why(given: str, what: str) -> str:
    if keys.is_stored(given.lower()):  # never echo a pseudonym's neighbours: it says enough as it is
        return f"{what} is a pseudonym made with another privacy key (key_id differs)"
    return f"bad {what} {given!r}"


class DigestingReader:
    """The file's ``batches`` with every key in stored form (``pseudonyms.stored_buyers``), read
    and digested by a child process a batch ahead of the importer: reading and HMACs then run on
    a core of their own instead of taking turns with the database work under one GIL
    (bench/import.py --csv: ~20% of a million-row import). ``position``: bytes of the file read
    so far, for a progress bar. A child that fails or dies ends the iteration with an error,
    never early: rows are never silently left out. Use it as a context manager."""

    def __init__(self, data: bytes, pseudonym_key: bytes, key_id: str | None = None, size: int = BATCH_ROWS) -> None:
        self.position = 0
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._conn, theirs = context.Pipe(duplex=False)
        # The key goes down the pipe with the arguments, never on a command line.
        self._child = context.Process(target=_digest_batches, args=(theirs, data, pseudonym_key, key_id, size, os.getpid()),
                                      name="inbox-daemon csv reader", daemon=True)
        self._child.start()
        theirs.close()  # the child holds the writing end: its exit is our EOF

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> tuple[list[Buyer], list[str]]:
        try:
            item = self._conn.recv()  # the pipe holds a batch at most: the child waits for us
        except (EOFError, OSError):
            self.close()
            raise RuntimeError(f"the list reader process ended before the file did (exit code {self._child.exitcode})") from None
        if item is None:
            self.close()
            raise StopIteration
        if isinstance(item, str):
            self.close()
            raise ValueError(item)
        found, skipped, self.position = item
        return [Buyer(*b) for b in found], skipped

    def close(self) -> None:
        self._conn.close()
        if self._child.is_alive():
            self._child.terminate()
        self._child.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Digests:
    """The pseudonym half of a key ring (``keys.Pseudonyms``), from the key alone."""

    def __init__(self, secret: bytes) -> None:
        self._digest = keys.digester(secret)

    def pseudonym(self, canonical: bytes) -> bytes:
        return self._digest(canonical)


def _digest_batches(conn: Connection, data: bytes, secret: bytes, key_id: str | None, size: int, parent: int) -> None:
    """In the child: each batch as plain tuples (cheaper to pickle than records), with where
    the file is; a failure as its message; None at the end."""
    worker_init(parent)
    ring = _Digests(secret)
    source = io.BytesIO(data)
    try:
        with io.TextIOWrapper(source, encoding="utf-8-sig", newline="") as stream:
            for buyers, skipped in batches(stream, size, key_id):
                stored = pseudonyms.stored_buyers(ring, buyers)
                conn.send(([(b.email, b.order_id, b.marketplace) for b in stored], skipped, source.tell()))
        conn.send(None)
    except OSError:  # a broken pipe: the importer stopped reading (it failed or was interrupted)
        pass
    except ValueError as exc:  # what ``rows`` says of the file
        conn.send(str(exc))
    except Exception as exc:
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
