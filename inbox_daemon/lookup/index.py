"""The in-memory blocklist index: 128-bit pseudonyms in sorted arrays, a dict for recent changes.

Keys
    A key is the pseudonym of a ``BuyerKey`` (``keys.digest``: HMAC-SHA-256 under the privacy
    key, 128 bits), the same value the store keeps in hex, so the index holds no relay address
    or order id and a lookup digests its query. Entries from the store carry the hex; a plain
    key given to ``set_address``, ``set_order`` or an entry is digested here.

Layout
    Memory is the constraint (tens of millions of entries), so an entry is 24 bytes: the high
    64 bits of the key in a sorted ``array('Q')``, the low 64 bits and the value
    ``first_seen << 32 | count`` (epoch seconds and notices, each a uint32) at the same position
    of two parallel arrays. A lookup is ``bisect`` on the high half within a directory slot of
    about 8 keys, then compares the low half. Two keys that share their high half (chance
    n**2 / 2**65: about 3e-6 at ten million) cannot both sit in the base: the second lives in
    ``_side``, a dict by the whole key, looked at only when the base misses.

Sharing with the query loop thread
    ``shared_tables()`` publishes the lookups and the pseudonym key to the C query loop
    (lookup/_loop.c), which digests its queries and reads the arrays without the GIL: the
    delta's and the side table's keys are mirrored there, and a merge then builds new arrays
    beside the old ones, swapped in between ``begin()`` and ``commit()``.

Changes
    A key already in the sorted base is updated in place; removing it sets its value to 0 (a
    tombstone). A new key goes into ``_delta``. When the delta plus the tombstones outgrow a
    threshold (about 4 * sqrt(n), so a merge costs milliseconds, not seconds), they are merged
    into the base in place: tombstones are compacted away with ``memmove`` and the arrays are
    grown by the new keys and spread from the right, so a merge never holds two copies of the base
    (except beside the C query loop: see above).
"""

from __future__ import annotations

import calendar
import functools
import math
import secrets
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from inbox_daemon import keys

__all__ = ["Hit", "IndexEntryLike", "BlocklistIndex", "digester"]

_U32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1
_SECRET_BYTES = 32
try:
    from inbox_daemon.lookup import _fastpath
except ImportError:  # not built: no query loop thread to share with
    _fastpath = None  # type: ignore[assignment]
_BUCKET_BITS = 8  # build() sorts 256 buckets, one at a time
_DIRECTORY_BITS = 16
_EMAIL_PREFIX = b"email:"  # BuyerKey.canonical of an address: the kind, ":" and the address


def digester(secret: bytes) -> Callable[[bytes], bytes]:
    """``keys.digest`` under ``secret``: the C Pseudonymiser (keyed once) where it is built."""
    if _fastpath is not None:
        return _fastpath.Pseudonymiser(secret).digest
    return functools.partial(keys.digest, secret)


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


def _epoch(moment: datetime | None) -> int:
    """Epoch seconds clamped to uint32; a naive datetime is taken as UTC (SQLite returns those)."""
    if moment is None:
        return 0
    return min(max(calendar.timegm(moment.utctimetuple()), 0), _U32)


def _pack(first_seen: int, count: int) -> int:
    """``first_seen << 32 | count``, both clamped to uint32; 0 (a removal) when count is 0."""
    if count < 0:
        raise ValueError(f"negative notice count: {count}")
    if count == 0:
        return 0
    return (min(max(first_seen, 0), _U32) << 32) | min(count, _U32)


class BlocklistIndex:
    """Blocked buyers by pseudonym, with first-seen time and notice count.

    ``secret`` is the privacy key's pseudonym key (``KeyRing.pseudonym_key``), the one the
    store's entries were digested with; without it the index keys a fresh secret of its own
    (fine for keys given in plain text, never for a store's entries).
    """

    def __init__(self, *, secret: bytes | None = None, delta_limit: int = 4096) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(_SECRET_BYTES)
        self._digest = digester(self._secret)
        self._keys = array("Q")  # high halves, sorted
        self._lows = array("Q")  # low halves, at the same positions
        self._values = array("Q")  # first_seen << 32 | count; 0 marks a removed key (tombstone)
        self._delta: dict[int, int] = {}  # key -> packed value, for keys not in the base
        self._side: dict[int, int] = {}  # keys whose high half a base key has (see the module)
        self._dead: set[int] = set()  # base positions holding a tombstone
        self._live = 0
        self._delta_limit = max(1, delta_limit)
        self._directory = array("Q", [0, 0])
        self._shift = 64
        self._shared: _fastpath.Tables | None = None

    # -- keys --------------------------------------------------------------------------------

    def key(self, key: keys.BuyerKey) -> int:
        """The 128-bit index key of a parsed key: its pseudonym as an integer."""
        return int.from_bytes(self._digest(key.canonical), "big")

    def address_bytes_key(self, address: bytes) -> int:
        """The key of an address already canonical (``keys.address``), as ASCII bytes: the
        query hot path."""
        return int.from_bytes(self._digest(_EMAIL_PREFIX + address), "big")

    def _entry_fields(self, entry: IndexEntryLike) -> tuple[int, int]:
        """(key, packed value) of an entry: its stored pseudonym (hex), or a plain key digested
        here; ValueError when it is neither."""
        if entry.kind not in ("email", "order"):
            raise ValueError(f"unknown index entry kind: {entry.kind!r}")
        if keys.is_stored(entry.value):
            key = int(entry.value, 16)
        else:
            parsed = keys.BuyerKey.email(entry.value) if entry.kind == "email" else keys.BuyerKey.order(entry.value)
            if parsed is None:
                raise ValueError(f"bad {entry.kind} key in index entry")
            key = self.key(parsed)
        return key, _pack(_epoch(entry.first_seen), entry.count)

    # -- queries -----------------------------------------------------------------------------

    def lookup_key(self, key: int) -> int:
        """``first_seen << 32 | count`` for a key, 0 when absent: the query protocol's hot path."""
        packed = self._delta.get(key)
        if packed is not None:
            return packed
        high = key >> 64
        # The directory narrows the search to the keys sharing this key's top bits (~8 of them),
        # so bisect takes 3 or 4 steps instead of 20-odd.
        directory = self._directory
        slot = high >> self._shift
        hi = directory[slot + 1]
        i = bisect_left(self._keys, high, directory[slot], hi)
        if i < hi and self._keys[i] == high and self._lows[i] == key & _M64:
            return self._values[i]
        return self._side.get(key, 0) if self._side else 0

    def check(self, key: keys.BuyerKey) -> Hit | None:
        """The hit for a parsed key, None when it is not blocked."""
        return _hit(self.lookup_key(self.key(key)))

    def check_address(self, address: str) -> Hit | None:
        parsed = keys.BuyerKey.email(address)
        return None if parsed is None else self.check(parsed)

    def check_order(self, order_id: str) -> Hit | None:
        parsed = keys.BuyerKey.order(order_id)
        return None if parsed is None else self.check(parsed)

    def shared_tables(self) -> _fastpath.Tables:
        """The lookups and the pseudonym key published for C (the query loop thread and the
        pipelined fast path), kept in step from now on. Only where the C module is built."""
        if self._shared is None:
            if _fastpath is None:
                raise RuntimeError("the C module is not built")
            shared = _fastpath.Tables(self._secret)
            shared.commit(self._keys, self._lows, self._values, self._directory, self._shift, self._delta, self._side)
            self._shared = shared
        return self._shared

    def __len__(self) -> int:
        return self._live

    def memory_bytes(self) -> int:
        """Bytes held by the index: the arrays as allocated, the dicts and their int objects."""
        arrays = sum(sys.getsizeof(a) for a in (self._keys, self._lows, self._values, self._directory))
        big = sys.getsizeof(1 << 127)
        delta = sum(sys.getsizeof(d) + len(d) * (big + sys.getsizeof(1 << 62)) for d in (self._delta, self._side))
        dead = sys.getsizeof(self._dead) + len(self._dead) * sys.getsizeof(1 << 40)
        shared = 0 if self._shared is None else self._shared.memory_bytes()
        return arrays + delta + dead + shared

    # -- changes -----------------------------------------------------------------------------

    def set_address(self, address: str, first_seen: int, count: int) -> None:
        """Block an address (or update it); count 0 removes it. ValueError if not an address."""
        parsed = keys.BuyerKey.email(address)
        if parsed is None:
            raise ValueError("not an address")
        self._set(self.key(parsed), _pack(first_seen, count))

    def set_order(self, order_id: str, first_seen: int, count: int) -> None:
        """Block an order id (or update it); count 0 removes it. ValueError if malformed."""
        parsed = keys.BuyerKey.order(order_id)
        if parsed is None:
            raise ValueError("bad order id")
        self._set(self.key(parsed), _pack(first_seen, count))

    def apply(self, entries: Iterable[IndexEntryLike]) -> None:
        """Apply changes in order (the last entry for a key wins). ValueError on a bad entry."""
        for entry in entries:
            self._set(*self._entry_fields(entry))

    @classmethod
    def build(cls, entries: Iterable[IndexEntryLike], *, secret: bytes | None = None,
              delta_limit: int = 4096) -> BlocklistIndex:
        """Bulk load: sort once, in buckets, so the transient memory is a small fraction of n."""
        index = cls(secret=secret, delta_limit=delta_limit)
        buckets = [(array("Q"), array("Q"), array("Q")) for _ in range(1 << _BUCKET_BITS)]
        for entry in entries:
            key, packed = index._entry_fields(entry)
            highs, lows, values = buckets[key >> (128 - _BUCKET_BITS)]
            highs.append(key >> 64)
            lows.append(key & _M64)
            values.append(packed)
        for i, bucket in enumerate(buckets):
            buckets[i] = (array("Q"), array("Q"), array("Q"))  # free the bucket as it is consumed
            index._append_sorted(*bucket)
        index._index_directory()
        return index

    def _append_sorted(self, highs: array[int], lows: array[int], values: array[int]) -> None:
        latest = {high << 64 | low: packed for high, low, packed in zip(highs, lows, values)}  # the last wins
        last = -1 if not self._keys else self._keys[-1]
        for key in sorted(latest):
            packed = latest[key]
            if not packed & _U32:
                continue
            self._live += 1
            if key >> 64 == last:  # its high half is taken: the side table holds it
                self._side[key] = packed
                continue
            last = key >> 64
            self._keys.append(last)
            self._lows.append(key & _M64)
            self._values.append(packed)

    def _base_position(self, key: int) -> int:
        """The base position holding ``key``, or -1."""
        high, keys_ = key >> 64, self._keys
        i = bisect_left(keys_, high)
        return i if i < len(keys_) and keys_[i] == high and self._lows[i] == key & _M64 else -1

    def _set(self, key: int, packed: int) -> None:
        i = self._base_position(key)
        if i >= 0:
            self._set_base(i, packed)
        elif key in self._side:
            self._set_side(key, packed)
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

    def _set_side(self, key: int, packed: int) -> None:
        if packed:
            self._side[key] = packed
        else:
            del self._side[key]
            self._live -= 1
        if self._shared is not None:
            self._shared.set(key, packed)

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

    def _new_for_base(self, keys_: array[int]) -> list[tuple[int, int]]:
        """The delta's keys that can go into the base, sorted; the others (their high half is
        in the base, or another new key's) move to the side table."""
        new: list[tuple[int, int]] = []
        last = -1
        for key, packed in sorted(self._delta.items()):
            high = key >> 64
            i = bisect_left(keys_, high)
            if high == last or (i < len(keys_) and keys_[i] == high):
                self._side[key] = packed  # the shared tables have it already: delta and side alike
                continue
            last = high
            new.append((key, packed))
        return new

    def merge(self) -> None:
        """Fold the delta into the base and drop tombstones.

        In place (no second copy) unless the C query loop reads the arrays: then into copies
        beside the old ones, which the loop keeps reading until a swap of microseconds, so
        lookups never wait for a merge (24 bytes an entry more, for the length of the merge).
        """
        shared = self._shared
        if shared is None:
            self._merge_columns(self._keys, self._lows, self._values)
            self._index_directory()
            return
        columns = (array("Q", self._keys), array("Q", self._lows), array("Q", self._values))
        self._merge_columns(*columns)
        directory, bits = self._directory_for(columns[0])
        old = (self._keys, self._lows, self._values, self._directory)  # freed after commit: munmap takes ms
        shared.begin()  # the loop thread waits for the swap only
        try:
            self._keys, self._lows, self._values = columns
            self._directory, self._shift = directory, 64 - bits
        finally:
            shared.commit(self._keys, self._lows, self._values, self._directory, self._shift, self._delta, self._side)
        del old

    def _merge_columns(self, keys_: array[int], lows: array[int], values: array[int]) -> None:
        """Compact the tombstones out of these columns and spread the delta into them."""
        if self._dead:
            dead = sorted(self._dead)
            for column in (keys_, lows, values):
                _compact(column, dead)
            self._dead.clear()
        if self._delta:
            new = self._new_for_base(keys_)
            positions = [bisect_left(keys_, key >> 64) for key, _ in new]
            _spread(keys_, positions, [key >> 64 for key, _ in new])
            _spread(lows, positions, [key & _M64 for key, _ in new])
            _spread(values, positions, [packed for _, packed in new])
            self._delta.clear()

    def _index_directory(self) -> None:
        """Where each run of keys with the same top bits starts: 2**bits + 1 positions.

        Pseudonyms are spread evenly, so a slot holds about 8 keys; at most 2**16 slots (512
        KiB) however large the index.
        """
        self._directory, bits = self._directory_for(self._keys)
        self._shift = 64 - bits

    @staticmethod
    def _directory_for(keys_: array[int]) -> tuple[array[int], int]:
        """The directory of sorted high halves ``keys_`` and its bits (see ``_index_directory``)."""
        bits = min(_DIRECTORY_BITS, max(0, len(keys_).bit_length() - 3))
        slots = 1 << bits
        directory = array("Q", bytes(8 * (slots + 1)))
        if _fastpath is not None:  # the same loop in C (65,536 bisects at 1M keys)
            _fastpath.fill_directory(keys_, directory, bits)
            return directory, bits
        position, shift = 0, 64 - bits
        for slot in range(slots):
            position = bisect_left(keys_, slot << shift, position)
            directory[slot] = position
        directory[slots] = len(keys_)
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
