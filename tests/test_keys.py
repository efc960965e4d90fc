"""One validator for relay addresses and order ids, on every path that writes a key or reads
keys into the index; repeated warnings folded into one line."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

from inbox_daemon import keys
from inbox_daemon.log import Throttled
from inbox_daemon.privacy import new_keyring
from inbox_daemon.lookup.follow import IndexFollower, load_index, usable
from inbox_daemon.lookup.index import BlocklistIndex
from inbox_daemon.processing.csvfile import read_buyers
from inbox_daemon.store import IndexEntry, Store
from tests.conftest import TEST_KEYRING, stored
from tests.support.daemon import DaemonProcess

GOOD = "jxxvbothd0wtflh@marketplace.amazon.com"


@pytest.mark.parametrize("value", ["a@b@marketplace.amazon.com", "@x.example", "a@", "a b@x.example", "a\x00@x.example",
                                   "a<b@x.example", "a@x..example", "a@.x.example", "a" * 330 + "@x.example", "no-at"])
def test_what_is_not_an_address(value: str) -> None:
    assert keys.address(value) is None


def test_an_address_is_stored_as_the_index_reads_it() -> None:
    assert keys.address(f"  <{GOOD.upper()}> ") == GOOD
    index = BlocklistIndex()
    assert index.check(keys.BuyerKey.email(GOOD.upper()) or keys.BuyerKey("email", "")) is None
    assert keys.parse(GOOD.upper()) == keys.parse(GOOD)
    assert keys.order_id(" 113-5663737-4342765 ") == "113-5663737-4342765"
    assert keys.order_id("113-5663737-434276") is None and keys.order_id("１１３-5663737-4342765") is None


def test_a_message_id_is_kept_and_logged_as_its_keyed_digest_apart_from_every_key() -> None:
    order = "113-5663737-4342765"
    message_id = f"notice-{order}-0@email.amazonses.com"
    kept, tag = keys.message_id_stored(TEST_KEYRING, message_id), keys.message_id_tag(TEST_KEYRING, message_id)
    assert keys.is_stored(kept) and tag == kept[:8] and order not in kept + tag
    assert keys.message_id_stored(TEST_KEYRING, message_id) == kept  # compared: one notice counts once
    assert kept != keys.message_id_stored(TEST_KEYRING, message_id.upper())  # taken as given, never parsed
    assert kept != keys.message_id_stored(new_keyring(), message_id)  # keyed: no dictionary of ids
    assert keys.message_id_stored(TEST_KEYRING, order) != stored(order)  # never an order's pseudonym
    assert keys.message_id_stored(TEST_KEYRING, "\udcff@x")  # undecodable header bytes do not raise


def test_csv_import_skips_what_the_index_could_not_hold() -> None:
    buyers, skipped = read_buyers(b"order_id,email\n113-5663737-4342765,a@b@c.example\n114-1111111-2222222,\n")
    assert [b.order_id for b in buyers] == ["114-1111111-2222222"]
    assert skipped == ["line 2: bad address 'a@b@c.example'"]


def _bad_rows(db: Path, stored: Callable[[str], str] = stored) -> None:
    """Rows no path of the daemon writes (plain keys, no pseudonym), as a hand could, and a good one."""
    with sqlite3.connect(db) as conn:
        now = datetime(2024, 1, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        for order, email in ((None, "a@b@c.example"), ("12-34", None), (stored("113-5663737-4342765"), stored(GOOD))):
            conn.execute("INSERT INTO opt_outs (order_id, email, first_seen, last_seen, notice_count, active)"
                         " VALUES (?, ?, ?, ?, 1, 1)", (order, email, now, now))
            conn.execute("INSERT INTO blocklist_changes (opt_out_id, changed_at)"
                         " VALUES ((SELECT max(id) FROM opt_outs), ?)", (now,))


def test_index_load_and_following_skip_an_unusable_row_and_keep_the_rest(db_path: Path, run: Any) -> None:
    _bad_rows(db_path)

    async def main() -> tuple[int, int, Any]:
        async with await Store.open(f"sqlite:///{db_path}") as store:
            index = await load_index(store)
            loaded = len(index)
            cursor = await store.change_cursor()
            cursor.seq = 0  # follow every change from the start
            follower = IndexFollower(store, type(index)(secret=TEST_KEYRING.pseudonym_key), cursor)
            followed = await follower.poll_once()
            return loaded, followed, follower._index

    loaded, followed, followed_index = run(main())
    assert loaded == 2 and followed == 2  # the good row's order and address, never the bad ones
    assert followed_index.check_address(GOOD) is not None


def test_each_unusable_entry_is_reported() -> None:
    seen: list[dict[str, Any]] = []
    entries = [IndexEntry("email", "a@b@c.example", None, 1), IndexEntry("order", "12-34", None, 1),
               IndexEntry("email", GOOD, None, 1), IndexEntry("email", stored(GOOD), None, 1)]
    assert [e.value for e in usable(entries, warn=lambda **f: seen.append(f))] == [stored(GOOD)]
    assert [f["kind"] for f in seen] == ["email", "order", "email"]  # a plain key is no stored key
    assert not [f for f in seen if "a@b@c.example" in repr(f) or "12-34" in repr(f)]  # never the value: buyer data


def test_serve_starts_with_an_unusable_row_in_the_database(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "home")
    try:
        assert daemon.cli("db", "upgrade").returncode == 0
        _bad_rows(tmp_path / "home" / "inbox-daemon.db", daemon.stored)
        daemon.start()
        assert daemon.query(f"CHECK {GOOD}")[0].startswith("BLOCKED")
    finally:
        daemon.ensure_stopped()


def test_a_repeated_warning_is_one_line_with_a_count() -> None:
    lines: list[dict[str, Any]] = []

    class Logger:
        def warning(self, event: str, **fields: Any) -> None:
            lines.append({"event": event, **fields})

    warn = Throttled(Logger(), "learn_queue_full", interval=60)
    for n in range(10_000):
        warn(order_id=str(n))
    assert lines == [{"event": "learn_queue_full", "suppressed": 0, "order_id": "0"}]


def test_csv_import_takes_pseudonyms_made_with_the_same_key_only() -> None:
    """``blocklist export`` writes pseudonyms with the key id: an import takes them back as they
    are under that key, and skips them under another (they would name nobody), never echoing
    the value as if it were a bad key."""
    order, relay = "113-5663737-4342765", GOOD
    row = f"{stored(order)},{stored(relay)},marketplace.amazon.com,{TEST_KEYRING.check_value()}"
    data = f"order_id,email,marketplace,key_id\n{row}\n114-1111111-2222222,{relay},,other\n".encode()
    buyers, skipped = read_buyers(data, TEST_KEYRING.check_value())
    assert [(b.order_id, b.email, b.marketplace) for b in buyers] == [
        (stored(order), stored(relay), "marketplace.amazon.com"), ("114-1111111-2222222", relay, "marketplace.amazon.com")]
    assert skipped == []
    buyers, skipped = read_buyers(data, "another key's check value")
    assert [b.order_id for b in buyers] == ["114-1111111-2222222"]  # plain keys need no key id
    assert skipped == ["line 2: order id is a pseudonym made with another privacy key (key_id differs)"]
