"""Buyer keys in their one canonical form: a relay address's +tag dropped, duplicates merged.

Rows written before ``inbox_daemon.keys`` was the one rule kept the ``+tag`` of a relay address
(``abc+x@marketplace.amazon.com``) while the index dropped it, so one buyer could have two rows
and removing one left the index and the database disagreeing. This brings every such address to
``keys.address``'s form. Address-only rows (no order id) that now hold the same address are one
buyer under applying's rule 3 and are merged into the oldest: counts, dates, evidence, audit
rows and change records move to it, nothing is lost. Rows with an order id keep their row.
One-way: the downgrade leaves the data as it is (the old code reads the canonical form too).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from inbox_daemon import keys
from inbox_daemon.store.schema import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    _canonical_addresses(bind)
    _merge_address_only_duplicates(bind)


def downgrade() -> None:
    pass  # canonical addresses are valid addresses to every earlier revision


def _canonical_addresses(bind: sa.Connection) -> None:
    """Rewrite every stored address whose canonical form differs; only a +tag can (the earlier
    validator already lower-cased and unbracketed), so only rows with a "+" are read."""
    last = 0
    while True:
        rows = bind.execute(sa.text(
            "SELECT id, email FROM opt_outs WHERE email LIKE '%+%' AND id > :last ORDER BY id LIMIT :n"
        ), {"last": last, "n": _BATCH}).all()
        if not rows:
            return
        for row_id, email in rows:
            canonical = keys.address(email)
            if canonical is not None and canonical != email:
                bind.execute(sa.text("UPDATE opt_outs SET email = :e WHERE id = :i"), {"e": canonical, "i": row_id})
        last = rows[-1][0]


def _merge_address_only_duplicates(bind: sa.Connection) -> None:
    groups = bind.execute(sa.text(
        "SELECT email FROM opt_outs WHERE order_id IS NULL AND email IS NOT NULL"
        " GROUP BY email HAVING count(*) > 1"
    )).scalars().all()
    now = datetime.now(UTC)
    for email in groups:
        ids = bind.execute(sa.text(
            "SELECT id FROM opt_outs WHERE order_id IS NULL AND email = :e ORDER BY id"
        ), {"e": email}).scalars().all()
        for other in ids[1:]:
            _merge(bind, ids[0], other, now)


def _merge(bind: sa.Connection, keep: int, other: int, now: datetime) -> None:
    """Fold opt-out ``other`` into ``keep``: a raw message counts once per opt-out, so evidence
    ``keep`` already has from the same raw message is dropped and not counted twice."""
    params: dict[str, Any] = {"k": keep, "o": other}
    shared = bind.execute(sa.text(
        "SELECT count(*) FROM evidence WHERE opt_out_id = :o AND raw_message_id IN"
        " (SELECT raw_message_id FROM evidence WHERE opt_out_id = :k)"
    ), params).scalar_one()
    bind.execute(sa.text(
        "DELETE FROM evidence WHERE opt_out_id = :o AND raw_message_id IN"
        " (SELECT raw_message_id FROM evidence WHERE opt_out_id = :k)"
    ), params)
    for table in ("evidence", "audit_log", "blocklist_changes"):
        bind.execute(sa.text(f"UPDATE {table} SET opt_out_id = :k WHERE opt_out_id = :o"), params)
    bind.execute(sa.text(
        "UPDATE opt_outs SET"
        " first_seen = (SELECT min(first_seen) FROM opt_outs WHERE id IN (:k, :o)),"
        " last_seen = (SELECT max(last_seen) FROM opt_outs WHERE id IN (:k, :o)),"
        " notice_count = (SELECT sum(notice_count) FROM opt_outs WHERE id IN (:k, :o)) - :shared,"
        " active = (SELECT count(*) FROM opt_outs WHERE id IN (:k, :o) AND active) > 0"
        " WHERE id = :k"
    ), {**params, "shared": shared})
    # The removal on record: the kept row's, or the merged one's when the kept row has none.
    bind.execute(sa.text(
        "UPDATE opt_outs SET (removed_at, removed_by, removed_reason) ="
        " (SELECT removed_at, removed_by, removed_reason FROM opt_outs WHERE id = :o)"
        " WHERE id = :k AND removed_at IS NULL"
    ), params)
    bind.execute(sa.text("DELETE FROM opt_outs WHERE id = :o"), params)
    moment = sa.bindparam("t", now, type_=UTCDateTime())
    bind.execute(sa.text("INSERT INTO blocklist_changes (opt_out_id, changed_at) VALUES (:k, :t)")
                 .bindparams(moment), {"k": keep})
    bind.execute(sa.text(
        "INSERT INTO audit_log (at, actor, action, opt_out_id, detail) VALUES (:t, 'db upgrade', 'merge', :k, :d)"
    ).bindparams(moment), {"k": keep, "d": f"opt-out {other} named the same buyer (a relay address's +tag): merged"})
