"""The in-memory blocklist index: 64-bit keys in a sorted array, a small dict for recent changes.

Memory is the constraint (tens of millions of entries), so an entry is 16 bytes:
a uint64 key in a sorted ``array('Q')`` and, at the same position of a parallel ``array('Q')``,
its value ``first_seen << 32 | count`` (epoch seconds and notices, each a uint32). Lookups are
``bisect`` (C, no per-entry objects) within a directory slot of about 8 keys.

Keys
    * An order id ``NNN-NNNNNNN-NNNNNNN`` is its 17-digit integer (< 10**17 < 2**57; a digital
      order ``DNN-...`` is 10**17 plus its 16 digits), multiplied by
      an odd constant modulo 2**57. That is a bijection, so orders stay exact (no false
      positives), and it spreads the keys evenly, which lets ``build`` sort in small buckets.
    * A relay address is a 64-bit hash of its canonical form (``inbox_daemon.keys``) (UTF-8) with the top bit forced
      to 1, so it can never equal an order key (those are < 2**57). The hash is Python's keyed
      SipHash-1-3 (BLAKE2b, 8 bytes, where Python's hash is narrower): keys live only in this
      process. Two different addresses share a key with chance 2**-63, so an unknown address is
      reported blocked with chance at most n / 2**63 for n blocked addresses: about 1e-12 at
      ten million, and nobody can search for a collision without the process's secret key.

Sharing with the query loop thread
    ``shared_tables()`` publishes the address lookups to the C query loop (lookup/_loop.c), which
    reads them without the GIL: the delta's address keys are mirrored there, and a merge then
    builds new arrays beside the old ones, swapped in between ``begin()`` and ``commit()``.

Changes
    A key already in the sorted base is updated in place; removing it sets its value to 0 (a
    tombstone). A new key goes into ``_delta``. When the delta plus the tombstones outgrow a
    threshold (about 4 * sqrt(n), so a merge costs milliseconds, not seconds), they are merged
    into the base in place: tombstones are compacted away with ``memmove`` and the arrays are
    grown by the new keys and spread from the right, so a merge never holds two copies of the base
    (except beside the C query loop: see below).
"""

from __future__ import annotations

import calendar
import hashlib
import math
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from inbox_daemon import keys

__all__ = [
    "Hit",
    "IndexEntryLike",
    "BlocklistIndex",
    "address_key",
    "normalised_address_key",
    "normalised_address_bytes_key",
    "order_key",
    "buyer_key",
]

_ORDER_BITS = 57
_ORDER_MASK = (1 << _ORDER_BITS) - 1
_DIGITAL_BASE = 10**17  # DNN-NNNNNNN-NNNNNNN: 10**17 + its 16 digits < 1.1e17 < 2**57
_ORDER_MUL = 0x9E3779B97F4A7C15 & _ORDER_MASK  # odd (golden ratio): multiplying is a bijection
_ADDRESS_TOP = 1 << 63
_LOW63 = _ADDRESS_TOP - 1
# Python's own bytes hash is SipHash-1-3 with a random per-process key: ten times cheaper than
# BLAKE2b here (35 ns against 320 ns a query), and keyed, so nobody can aim a collision at a
# blocked address. Keys are therefore private to the process: the index is rebuilt from the
# store at every start and keys never leave it. BLAKE2b stands in where the hash is narrower.
_FAST_HASH = sys.hash_info.width >= 64 and sys.hash_info.algorithm.startswith("siphash")
_BLAKE2B_8 = hashlib.blake2b(digest_size=8)
_U32 = 0xFFFFFFFF
try:
    from inbox_daemon.lookup import _fastpath
except ImportError:  # not built: no query loop thread to share with
    _fastpath = None  # type: ignore[assignment]
_BUCKET_BITS = 8  # build() sorts 2 * 256 buckets, one at a time
_DIRECTORY_BITS = 16


@dataclass(frozen=True, slots=True)
class Hit:
    """A blocked buyer: when the first notice named them and how many notices did."""

    first_seen: int  # epoch seconds, UTC; 0 when unknown
    count: int  # notices


class IndexEntryLike(Protocol):
    """What ``apply`` and ``build`` read: the store's IndexEntry has this shape."""

    @property
    def kind(self) -> str: ...  # "email" or "order"

    @property
    def value(self) -> str: ...

    @property
    def first_seen(self) -> datetime | None: ...

    @property
    def count(self) -> int: ...  # 0 removes the key


def normalised_address_key(address: str) -> int:
    """The key of an address already in canonical form (``keys.address``)."""
    return normalised_address_bytes_key(address.encode())


if _FAST_HASH:

    def normalised_address_bytes_key(address: bytes) -> int:
        """The key of a canonical address given as (UTF-8) bytes: the query hot path."""
        return (hash(address) & _LOW63) | _ADDRESS_TOP

else:

    def normalised_address_bytes_key(address: bytes) -> int:
        """The key of a canonical address given as (UTF-8) bytes: the query hot path."""
        hasher = _BLAKE2B_8.copy()
        hasher.update(address)
        return int.from_bytes(hasher.digest(), "big") | _ADDRESS_TOP


def address_key(address: str) -> int:
    """The 64-bit key of an address (``keys.address`` first); ValueError when it is not one."""
    canonical = keys.address(address)
    if canonical is None:
        raise ValueError(f"not an address: {address!r}")
    return normalised_address_key(canonical)


def order_key(order_id: str) -> int | None:
    """The 57-bit key of an order id (``keys.order_id``), or None when it is not one."""
    canonical = keys.order_id(order_id)
    if canonical is None:
        return None
    digits = int(canonical[1:].replace("-", ""))
    # A digital order's 16 digits lie above every 17-digit id: still below 2**57, still one-to-one.
    number = _DIGITAL_BASE + digits if canonical[0] == "D" else int(canonical.replace("-", ""))
    return (number * _ORDER_MUL) & _ORDER_MASK


def buyer_key(key: keys.BuyerKey) -> int:
    """The index key of a parsed ``BuyerKey``."""
    if key.kind == "order":
        found = order_key(key.value)
        if found is None:  # a BuyerKey is canonical: cannot happen
            raise ValueError("bad order id")
        return found
    return normalised_address_key(key.value)


def _bucket(key: int) -> int:
    if key & _ADDRESS_TOP:
        return (1 << _BUCKET_BITS) + ((key >> (63 - _BUCKET_BITS)) & ((1 << _BUCKET_BITS) - 1))
    return key >> (_ORDER_BITS - _BUCKET_BITS)


def _epoch(moment: datetime | None) -> int:
    """Epoch seconds clamped to uint32; a naive datetime is taken as UTC (SQLite returns those)."""
    if moment is None:
        return 0
    return min(max(calendar.timegm(moment.utctimetuple()), 0), _U32)


def _entry_fields(entry: IndexEntryLike) -> tuple[int, int]:
    """(key, packed value) of a store entry; ValueError when it cannot be one."""
    if entry.kind == "email":
        key = address_key(entry.value)
    elif entry.kind == "order":
        maybe = order_key(entry.value)
        if maybe is None:
            raise ValueError(f"bad order id in index entry: {entry.value!r}")
        key = maybe
    else:
        raise ValueError(f"unknown index entry kind: {entry.kind!r}")
    return key, _pack(_epoch(entry.first_seen), entry.count)


def _pack(first_seen: int, count: int) -> int:
    """``first_seen << 32 | count``, both clamped to uint32; 0 (a removal) when count is 0."""
    if count < 0:
        raise ValueError(f"negative notice count: {count}")
    if count == 0:
        return 0
    return (min(max(first_seen, 0), _U32) << 32) | min(count, _U32)


class BlocklistIndex:
    """Blocked relay addresses and order ids, with first-seen time and notice count."""

    def __init__(self, *, delta_limit: int = 4096) -> None:
        self._keys = array("Q")  # sorted
        self._values = array("Q")  # first_seen << 32 | count; 0 marks a removed key (tombstone)
        self._delta: dict[int, int] = {}  # key -> packed value, for keys not in the base
        self._dead: set[int] = set()  # base positions holding a tombstone
        self._live = 0
        self._delta_limit = max(1, delta_limit)
        self._directory = array("Q", [0, 0, 0])
        self._order_shift = _ORDER_BITS
        self._address_shift = 63
        self._shared: _fastpath.Tables | None = None

    # -- queries -----------------------------------------------------------------------------

    def lookup_key(self, key: int) -> int:
        """``first_seen << 32 | count`` for a key, 0 when absent: the query protocol's hot path.

        ``key`` comes from ``address_key``, ``normalised_address_key`` or ``order_key``.
        """
        packed = self._delta.get(key)
        if packed is not None:
            return packed
        # The directory narrows the search to the keys sharing this key's top bits (~8 of them),
        # so bisect takes 3 or 4 steps instead of 20-odd (2x faster at a million entries).
        if key >= _ADDRESS_TOP:
            slot = key >> self._address_shift
        else:
            slot = key >> self._order_shift
        directory = self._directory
        hi = directory[slot + 1]
        i = bisect_left(self._keys, key, directory[slot], hi)
        if i < hi and self._keys[i] == key:
            return self._values[i]
        return 0

    def check(self, key: keys.BuyerKey) -> Hit | None:
        """The hit for a parsed key, None when it is not blocked."""
        return _hit(self.lookup_key(buyer_key(key)))

    def check_address(self, address: str) -> Hit | None:
        try:
            key = address_key(address)
        except ValueError:
            return None
        return _hit(self.lookup_key(key))

    def check_order(self, order_id: str) -> Hit | None:
        key = order_key(order_id)
        return None if key is None else _hit(self.lookup_key(key))

    def lookup_tables(self) -> tuple[array[int], array[int], array[int], int, dict[int, int]]:
        """What ``lookup_key`` reads for an address key, for the C fast path (lookup/_fastpath.c).

        (keys, values, directory, address shift, delta). Valid until the next change: a merge
        replaces the directory and the shifts. Order keys are not looked up there.
        """
        return self._keys, self._values, self._directory, self._address_shift, self._delta

    def shared_tables(self) -> _fastpath.Tables:
        """The address lookups published for the C query loop, kept in step from now on.

        Only where the C module is built and keys use Python's 64-bit hash (``_FAST_HASH``).
        """
        if self._shared is None:
            if _fastpath is None or not _FAST_HASH:
                raise RuntimeError("the C query loop is not available here")
            shared = _fastpath.Tables()
            shared.commit(self._keys, self._values, self._directory, self._address_shift, self._delta)
            self._shared = shared
        return self._shared

    def __len__(self) -> int:
        return self._live

    def memory_bytes(self) -> int:
        """Bytes held by the index: the arrays as allocated, the delta and its int objects."""
        arrays = sum(sys.getsizeof(a) for a in (self._keys, self._values, self._directory))
        delta = sys.getsizeof(self._delta) + len(self._delta) * 2 * sys.getsizeof(1 << 62)
        dead = sys.getsizeof(self._dead) + len(self._dead) * sys.getsizeof(1 << 40)
        shared = 0 if self._shared is None else self._shared.memory_bytes()
        return arrays + delta + dead + shared

    # -- changes -----------------------------------------------------------------------------

    def set_address(self, address: str, first_seen: int, count: int) -> None:
        """Block an address (or update it); count 0 removes it. ValueError if not an address."""
        self._set(address_key(address), _pack(first_seen, count))

    def set_order(self, order_id: str, first_seen: int, count: int) -> None:
        """Block an order id (or update it); count 0 removes it. ValueError if malformed."""
        key = order_key(order_id)
        if key is None:
            raise ValueError(f"bad order id: {order_id!r}")
        self._set(key, _pack(first_seen, count))

    def apply(self, entries: Iterable[IndexEntryLike]) -> None:
        """Apply changes in order (the last entry for a key wins). ValueError on a bad entry."""
        for entry in entries:
            self._set(*_entry_fields(entry))

    @classmethod
    def build(cls, entries: Iterable[IndexEntryLike], *, delta_limit: int = 4096) -> BlocklistIndex:
        """Bulk load: sort once, in buckets, so the transient memory is a small fraction of n."""
        buckets = [(array("Q"), array("Q")) for _ in range(2 << _BUCKET_BITS)]
        for entry in entries:
            key, packed = _entry_fields(entry)
            keys, values = buckets[_bucket(key)]
            keys.append(key)
            values.append(packed)
        index = cls(delta_limit=delta_limit)
        for i, (keys, values) in enumerate(buckets):
            buckets[i] = (array("Q"), array("Q"))  # free the bucket as it is consumed
            index._append_sorted(keys, values)
        index._index_directory()
        return index

    def _append_sorted(self, keys: array[int], values: array[int]) -> None:
        latest = dict(zip(keys, values))  # the last entry for a key wins
        for key in sorted(latest):
            packed = latest[key]
            if packed & _U32:
                self._keys.append(key)
                self._values.append(packed)
                self._live += 1

    def _set(self, key: int, packed: int) -> None:
        keys = self._keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            self._set_base(i, packed)
        elif packed:
            if key not in self._delta:
                self._live += 1
            self._delta[key] = packed
            if self._shared is not None:
                self._shared.set(key, packed)
            self._maybe_merge()
        elif self._delta.pop(key, None) is not None:
            self._live -= 1
            if self._shared is not None:
                self._shared.set(key, 0)

    def _set_base(self, i: int, packed: int) -> None:
        was_live = self._values[i] != 0
        self._values[i] = packed  # in place: one aligned 8-byte store, safe beside the loop thread
        if packed and not was_live:
            self._dead.discard(i)
            self._live += 1
        elif not packed and was_live:
            self._dead.add(i)
            self._live -= 1
            self._maybe_merge()

    def _maybe_merge(self) -> None:
        limit = max(self._delta_limit, 4 * math.isqrt(len(self._keys)))
        if len(self._delta) + len(self._dead) > limit:
            self.merge()

    def merge(self) -> None:
        """Fold the delta into the base and drop tombstones.

        In place (no second copy) unless the C query loop reads the arrays: then into new arrays
        beside the old ones, which the loop keeps reading until a swap of microseconds, so
        lookups never wait for a merge (16 bytes an entry more, for the length of the merge).
        """
        shared = self._shared
        if shared is None:
            self._merge()
            return
        dead, new = sorted(self._dead), sorted(self._delta.items())
        size = len(self._keys) - len(dead) + len(new)
        keys, values = array("Q", bytes(8 * size)), array("Q", bytes(8 * size))
        assert _fastpath is not None  # a shared index has the C module
        _fastpath.merge_into(self._keys, self._values, dead, [k for k, _ in new], [v for _, v in new], keys, values)
        directory, bits = self._directory_for(keys)
        old = (self._keys, self._values, self._directory)  # freed after commit: munmap takes ms
        shared.begin()  # the loop thread waits for the swap only
        try:
            self._keys, self._values, self._directory = keys, values, directory
            self._order_shift, self._address_shift = _ORDER_BITS - bits, 63 - bits
            self._dead.clear()
            self._delta.clear()
        finally:
            shared.commit(self._keys, self._values, self._directory, self._address_shift, self._delta)
        del old

    def _merge(self) -> None:
        if self._dead:
            dead = sorted(self._dead)
            _compact(self._keys, dead)
            _compact(self._values, dead)
            self._dead.clear()
        if self._delta:
            new = sorted(self._delta.items())
            positions = [bisect_left(self._keys, key) for key, _ in new]
            _spread(self._keys, positions, [key for key, _ in new])
            _spread(self._values, positions, [packed for _, packed in new])
            self._delta.clear()
        self._index_directory()

    def _index_directory(self) -> None:
        """Where each run of keys with the same top bits starts: 2 * 2**bits + 1 positions.

        Orders (< 2**57) take slots [0, 2**bits), addresses (>= 2**63) [2**bits, 2**(bits+1)).
        Both kinds of key are spread evenly, so a slot holds about 8 keys; at most 2**16 slots
        a kind (1 MiB) however large the index.
        """
        self._directory, bits = self._directory_for(self._keys)
        self._order_shift = _ORDER_BITS - bits
        self._address_shift = 63 - bits

    @staticmethod
    def _directory_for(keys: array[int]) -> tuple[array[int], int]:
        """The directory of sorted ``keys`` and its bits (see ``_index_directory``)."""
        bits = min(_DIRECTORY_BITS, max(0, len(keys).bit_length() - 4))
        slots = 2 << bits
        directory = array("Q", bytes(8 * (slots + 1)))
        if _fastpath is not None:  # the same loop in C (131,072 bisects at 1M keys)
            _fastpath.fill_directory(keys, directory, bits)
            return directory, bits
        position = 0
        order_shift, address_shift = _ORDER_BITS - bits, 63 - bits
        for slot in range(slots):
            start = slot << order_shift if slot < (1 << bits) else slot << address_shift
            position = bisect_left(keys, start, position)
            directory[slot] = position
        directory[slots] = len(keys)
        return directory, bits


def _hit(packed: int) -> Hit | None:
    return Hit(packed >> 32, packed & _U32) if packed else None


def _compact(column: array[int], dead: Sequence[int]) -> None:
    """Remove the sorted positions ``dead`` from ``column``, moving the runs between them left."""
    if _fastpath is not None:  # the same moves in C: a merge holds the query loop thread back
        del column[_fastpath.compact(column, list(dead)) :]
        return
    size = len(column)
    write = dead[0]
    with memoryview(column) as view:
        for j, position in enumerate(dead):
            end = dead[j + 1] if j + 1 < len(dead) else size
            run = end - position - 1
            if run:
                view[write : write + run] = view[position + 1 : end]  # memmove: overlap is safe
            write += run
    del column[write:]


def _spread(column: array[int], positions: Sequence[int], values: Sequence[int]) -> None:
    """Insert ``values[j]`` before old position ``positions[j]`` (sorted), moving runs right."""
    end = len(column)
    column.extend(values)  # grows in place (realloc); the tail is overwritten below
    if _fastpath is not None:  # the same moves in C: a merge holds the query loop thread back
        _fastpath.spread(column, end, list(positions), list(values))
        return
    with memoryview(column) as view:
        for j in range(len(values) - 1, -1, -1):
            position = positions[j]
            if end > position:
                view[position + j + 1 : end + j + 1] = view[position:end]
            view[position + j] = values[j]
            end = position
