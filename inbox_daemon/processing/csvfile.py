"""Buyer lists in CSV (``blocklist import``): the columns ``blocklist export --csv`` writes,
``order_id``, ``email`` and optionally ``marketplace``; one buyer per row."""

from __future__ import annotations

import csv
import io
import re

from ..notices import Buyer

__all__ = ["read_buyers"]

ORDER_RE = re.compile(r"^\d{3}-\d{7}-\d{7}$")  # Amazon's order id: 3-7-7 digits


def read_buyers(data: bytes) -> tuple[list[Buyer], list[str]]:
    """Buyers from the file, and why each other row was skipped (line numbers count the
    header as line 1). ValueError when the file has neither column."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    if not reader.fieldnames or not {"order_id", "email"} & set(reader.fieldnames):
        raise ValueError("needs an order_id or email column")
    buyers, skipped = [], []
    for line, row in enumerate(reader, start=2):
        order = (row.get("order_id") or "").strip() or None
        email = (row.get("email") or "").strip().lower() or None
        if order and not ORDER_RE.match(order):
            skipped.append(f"line {line}: bad order id {order!r}")
        elif email and "@" not in email:
            skipped.append(f"line {line}: bad address {email!r}")
        elif not (order or email):
            skipped.append(f"line {line}: neither order id nor address")
        else:
            market = (row.get("marketplace") or "").strip() or (email.rpartition("@")[2] if email else None)
            buyers.append(Buyer(email, order, market))
    return buyers, skipped
