"""The blocklist index against a plain dict model, plus normalisation and key separation."""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from inbox_daemon.lookup import index as index_module
from inbox_daemon import keys
from inbox_daemon.lookup.index import (
    BlocklistIndex,
    Hit,
    _compact,
    _spread,
)
from inbox_daemon.privacy import new_keyring

RELAY = "jxxvbothd0wtflh@marketplace.amazon.com"
ORDER = "114-3941689-8772232"


@dataclass(frozen=True)
class Entry:
    """The store's IndexEntry shape."""

    kind: str
    value: str
    first_seen: datetime | None
    count: int


# -- normalisation and keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (RELAY, RELAY),
        ("  JXXVBOTHD0WTFLH@Marketplace.Amazon.COM \r\n", RELAY),
        (f"<{RELAY}>", RELAY),
        (f'"Jane Q. Buyer" <{RELAY}>', RELAY),
        (f"Jane <Buyer> <{RELAY}>", RELAY),
        ("jxxvbothd0wtflh+abc@marketplace.amazon.com", RELAY),
        ("jxxvbothd0wtflh+abc@marketplace.amazon.co.uk", "jxxvbothd0wtflh@marketplace.amazon.co.uk"),
        ("someone+tag@example.com", "someone+tag@example.com"),  # only relay addresses lose a tag
        ("+tag@marketplace.amazon.com", "+tag@marketplace.amazon.com"),
    ],
)
def test_normalise_address(raw: str, expected: str) -> None:
    assert keys.address(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "no-at-sign", "@example.com", "local@", "a@b@c", "a b@c", "<a@b", "a@b>x", "<>", "Jane <a@b> x", "a@b>"]
)
def test_normalise_address_rejects(raw: str) -> None:
    assert keys.address(raw) is None


def test_keys_are_the_stored_pseudonyms() -> None:
    """The index keys a BuyerKey by the pseudonym the store keeps (hex), so entries from the
    store and queries meet; an address and an order id never share a key."""
    ring = new_keyring()
    index = BlocklistIndex(secret=ring.pseudonym_key)
    relay, order = keys.parse(RELAY), keys.parse(ORDER)
    assert relay is not None and order is not None
    assert index.key(relay) == int(relay.stored(ring), 16) and index.key(order) == int(order.stored(ring), 16)
    assert index.address_bytes_key(RELAY.encode()) == index.key(relay)
    index.apply([Entry("email", relay.stored(ring), None, 1)])
    assert index.check_address(f"<{RELAY.upper()}>") == Hit(0, 1)
    assert BlocklistIndex().key(relay) != index.key(relay)  # another secret, other keys


def test_keys_sharing_their_high_half_are_both_found() -> None:
    """Two pseudonyms with the same high 64 bits: the base holds one, the side table the other,
    through build, delta, merge and removal."""
    high = "0123456789abcdef"
    first, second, third = (f"{high}{low:016x}" for low in (1, 2, 3))
    index = BlocklistIndex.build([Entry("email", first, None, 1), Entry("order", second, None, 2)], delta_limit=1)
    assert index.lookup_key(int(first, 16)) >> 0 & 0xFFFFFFFF == 1
    assert index.lookup_key(int(second, 16)) & 0xFFFFFFFF == 2 and len(index) == 2
    index.apply([Entry("email", third, None, 3)] + [Entry("email", f"{n:032x}", None, 1) for n in range(1, 4)])
    index.merge()
    assert [index.lookup_key(int(k, 16)) & 0xFFFFFFFF for k in (first, second, third)] == [1, 2, 3]
    assert index.lookup_key(int(f"{high}{4:016x}", 16)) == 0 and len(index) == 6
    index.apply([Entry("email", first, None, 0), Entry("order", second, None, 0)])
    index.merge()
    assert [index.lookup_key(int(k, 16)) for k in (first, second)] == [0, 0]
    assert index.lookup_key(int(third, 16)) & 0xFFFFFFFF == 3 and len(index) == 4


@pytest.mark.parametrize("bad", ["", "114-3941689-877223", "114-3941689-87722321", "1143941689-8772232-", "abc-defghij-klmnopq", "114 3941689 8772232", "١١٤-3941689-8772232"])
def test_malformed_order_ids(bad: str) -> None:
    index = BlocklistIndex()
    assert keys.order_id(bad) is None
    assert index.check_order(bad) is None
    with pytest.raises(ValueError):
        index.set_order(bad, 1, 1)


# -- basic operations --------------------------------------------------------------------------


def test_set_check_remove() -> None:
    index = BlocklistIndex()
    index.set_address(RELAY, 1_764_137_854, 2)
    index.set_order(ORDER, 1_764_000_000, 1)
    assert len(index) == 2
    assert index.check_address(f'"X" <{RELAY.upper()}>') == Hit(1_764_137_854, 2)
    assert index.check_order(f" {ORDER} ") == Hit(1_764_000_000, 1)
    assert index.check_address("other@marketplace.amazon.com") is None
    assert index.check_address("not an address") is None
    index.set_address(RELAY, 1_764_137_854, 3)
    assert index.check_address(RELAY) == Hit(1_764_137_854, 3) and len(index) == 2
    index.set_address(RELAY, 0, 0)
    index.set_address(RELAY, 0, 0)  # removing twice is harmless
    assert index.check_address(RELAY) is None and len(index) == 1


def test_orders_and_addresses_never_share_a_key() -> None:
    index = BlocklistIndex()
    index.set_order(ORDER, 5, 1)
    assert index.check_address(f"{ORDER}@marketplace.amazon.com") is None
    index.set_address(f"{ORDER.replace('-', '')}@x", 5, 1)
    assert index.check_order("999-9999999-9999999") is None


def test_values_are_clamped_to_uint32_and_negative_counts_refused() -> None:
    index = BlocklistIndex()
    index.set_order(ORDER, 2**40, 2**40)
    assert index.check_order(ORDER) == Hit(2**32 - 1, 2**32 - 1)
    with pytest.raises(ValueError):
        index.set_order(ORDER, 0, -1)


def test_apply_reads_index_entries() -> None:
    aware = datetime(2026, 11, 26, 6, 17, 34, tzinfo=timezone.utc)
    naive = datetime(2026, 11, 26, 6, 17, 34)  # SQLite hands these back: taken as UTC
    other_zone = aware.astimezone(timezone(timedelta(hours=-8)))
    index = BlocklistIndex()
    index.apply(
        [
            Entry("email", RELAY, aware, 1),
            Entry("order", ORDER, naive, 2),
            Entry("email", "b@marketplace.amazon.de", other_zone, 1),
            Entry("email", "c@marketplace.amazon.de", None, 4),
            Entry("email", "b@marketplace.amazon.de", other_zone, 0),
        ]
    )
    epoch = int(aware.timestamp())
    assert index.check_address(RELAY) == Hit(epoch, 1)
    assert index.check_order(ORDER) == Hit(epoch, 2)
    assert index.check_address("c@marketplace.amazon.de") == Hit(0, 4)
    assert index.check_address("b@marketplace.amazon.de") is None
    with pytest.raises(ValueError):
        index.apply([Entry("phone", "1", None, 1)])
    with pytest.raises(ValueError):
        index.apply([Entry("order", "nope", None, 1)])


def test_build_sorts_dedupes_and_drops_removed() -> None:
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    entries = [Entry("email", f"u{i}@marketplace.amazon.com", t, 1) for i in range(3000)]
    entries += [Entry("order", f"{i % 1000:03d}-{i:07d}-{i * 7 % 10**7:07d}", t, 2) for i in range(3000)]
    entries += [Entry("email", "u5@marketplace.amazon.com", t, 9), Entry("email", "u6@marketplace.amazon.com", t, 0)]
    index = BlocklistIndex.build(iter(entries))
    assert len(index) == 5999
    assert list(index._keys) == sorted(index._keys) and not index._delta
    assert index.check_address("U5@marketplace.amazon.com") == Hit(int(t.timestamp()), 9)
    assert index.check_address("u6@marketplace.amazon.com") is None
    assert index.check_order("007-0000007-0000049") == Hit(int(t.timestamp()), 2)
    assert BlocklistIndex.build([]).memory_bytes() < 1000


def test_memory_per_entry_is_small() -> None:
    index = BlocklistIndex.build(Entry("email", f"u{i}@marketplace.amazon.com", None, 1) for i in range(100_000))
    assert index.memory_bytes() / len(index) < 28  # 24 bytes an entry and the directory


# -- merge and compaction against a dict model ------------------------------------------------


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python"])
@given(
    st.lists(st.integers(0, 50), max_size=40, unique=True).map(sorted),
    st.data(),
)
def test_compact_and_spread_match_a_list(in_c: bool, base: list[int], data: st.DataObject) -> None:
    module = index_module._fastpath
    if in_c and module is None:
        pytest.skip("the C module is not built")
    index_module._fastpath = module if in_c else None
    try:
        _compact_and_spread(base, data)
    finally:
        index_module._fastpath = module


def _compact_and_spread(base: list[int], data: st.DataObject) -> None:
    dead = sorted(data.draw(st.sets(st.sampled_from(range(len(base))))) if base else [])
    column = array("Q", base)
    if dead:
        _compact(column, dead)
    kept = [v for i, v in enumerate(base) if i not in set(dead)]
    assert list(column) == kept
    new = sorted(data.draw(st.sets(st.integers(51, 60).map(lambda v: v * 1000) | st.integers(0, 50).filter(lambda v: v not in kept))))
    _spread(column, [bisect_left(kept, v) for v in new], new)
    assert list(column) == sorted(kept + new)


KEYS = st.sampled_from([f"u{i}@marketplace.amazon.com" for i in range(12)] + [f"111-{i:07d}-0000000" for i in range(12)])


class IndexAgainstDict(RuleBasedStateMachine):
    """Random sets, removals, merges and rebuilds keep the index equal to a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.index = BlocklistIndex(delta_limit=3)
        self.model: dict[str, Hit] = {}

    def _set(self, name: str, first_seen: int, count: int) -> None:
        if "@" in name:
            self.index.set_address(name, first_seen, count)
        else:
            self.index.set_order(name, first_seen, count)
        if count:
            self.model[name] = Hit(first_seen, count)
        else:
            self.model.pop(name, None)

    @rule(name=KEYS, first_seen=st.integers(0, 2**32 - 1), count=st.integers(1, 5))
    def put(self, name: str, first_seen: int, count: int) -> None:
        self._set(name, first_seen, count)

    @rule(name=KEYS)
    def remove(self, name: str) -> None:
        self._set(name, 0, 0)

    @rule()
    def merge(self) -> None:
        self.index.merge()
        assert not self.index._delta and not self.index._dead

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def rebuild(self) -> None:
        entries = [Entry("email" if "@" in k else "order", k, datetime.fromtimestamp(h.first_seen, timezone.utc), h.count) for k, h in self.model.items()]
        self.index = BlocklistIndex.build(entries, delta_limit=3)

    @invariant()
    def agrees(self) -> None:
        assert len(self.index) == len(self.model)
        assert list(self.index._keys) == sorted(self.index._keys)
        for i in range(12):
            for name in (f"u{i}@marketplace.amazon.com", f"111-{i:07d}-0000000"):
                got = self.index.check_address(name) if "@" in name else self.index.check_order(name)
                assert got == self.model.get(name), name


TestIndexAgainstDict = IndexAgainstDict.TestCase
TestIndexAgainstDict.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestIndexAgainstDict.pytestmark = [pytest.mark.slow]  # 150 stateful runs


def test_many_random_operations_with_merges() -> None:
    rng = random.Random(7)
    index = BlocklistIndex(delta_limit=16)
    model: dict[int, Hit] = {}
    for step in range(20_000):
        n = rng.randrange(3000)
        name = f"111-0000000-{n:07d}"
        count = rng.choice([0, 0, 1, 2, 3])
        index.set_order(name, step, count)
        if count:
            model[n] = Hit(step, count)
        else:
            model.pop(n, None)
    assert len(index) == len(model)
    for n in range(3000):
        assert index.check_order(f"111-0000000-{n:07d}") == model.get(n)
