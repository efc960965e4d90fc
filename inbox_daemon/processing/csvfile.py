"""Buyer lists in CSV (``blocklist import``): the columns ``blocklist export --csv`` writes,
``order_id``, ``email`` and optionally ``marketplace``; one buyer per row."""

from __future__ import annotations

import csv
import io

from .. import keys
from ..notices import Buyer

__all__ = ["read_buyers"]

def read_buyers(data: bytes) -> tuple[list[Buyer], list[str]]:
    """Buyers from the file, and why each other row was skipped (line numbers count the
    header as line 1). ValueError when the file has neither column."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    if not reader.fieldnames or not {"order_id", "email"} & set(reader.fieldnames):
        raise ValueError("needs an order_id or email column")
    buyers, skipped = [], []
    for line, row in enumerate(reader, start=2):
        given_order = (row.get("order_id") or "").strip()
        given_email = (row.get("email") or "").strip()
        order = keys.order_id(given_order) if given_order else None
        email = keys.address(given_email) if given_email else None
        if given_order and order is None:
            skipped.append(f"line {line}: bad order id {given_order!r}")
        elif given_email and email is None:
            skipped.append(f"line {line}: bad address {given_email!r}")
        elif not (order or email):
            skipped.append(f"line {line}: neither order id nor address")
        else:
            market = (row.get("marketplace") or "").strip() or (email.rpartition("@")[2] if email else None)
            buyers.append(Buyer(email, order, market))
    return buyers, skipped
