"""Buyer lists in CSV (``blocklist import``): the columns ``blocklist export --csv`` writes,
``order_id``, ``email`` and optionally ``marketplace`` and ``key_id``; one buyer per row.

A key is given in plain text (an order id, a relay address) or as the pseudonym the blocklist
stores (``keys.BuyerKey.stored``, as ``export`` writes it) with the ``key_id`` of the privacy key
it was made with: a pseudonym made with another key names nobody here, so its row is skipped."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from .. import keys
from ..notices import Buyer

__all__ = ["read_buyers"]

def read_buyers(data: bytes, key_id: str | None = None) -> tuple[list[Buyer], list[str]]:
    """Buyers from the file, and why each other row was skipped (line numbers count the
    header as line 1). ``key_id``: the check value of this database's privacy key, which a
    row's pseudonyms must carry. ValueError when the file has neither key column."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    if not reader.fieldnames or not {"order_id", "email"} & set(reader.fieldnames):
        raise ValueError("needs an order_id or email column")
    buyers, skipped = [], []
    for line, row in enumerate(reader, start=2):
        given_order = (row.get("order_id") or "").strip()
        given_email = (row.get("email") or "").strip()
        same_key = key_id is not None and (row.get("key_id") or "").strip() == key_id
        order = _key(given_order, keys.order_id, same_key)
        email = _key(given_email, keys.address, same_key)
        if given_order and order is None:
            skipped.append(f"line {line}: {_why(given_order, 'order id')}")
        elif given_email and email is None:
            skipped.append(f"line {line}: {_why(given_email, 'address')}")
        elif not (order or email):
            skipped.append(f"line {line}: neither order id nor address")
        else:
            plain = email if email and "@" in email else None
            market = (row.get("marketplace") or "").strip() or (plain.rpartition("@")[2] if plain else None)
            buyers.append(Buyer(email, order, market))
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
