"""Blocklist keys stored as keyed pseudonyms: no relay address or order id in plain text.

``opt_outs.email`` and ``opt_outs.order_id`` get ``BuyerKey.stored`` (HMAC-SHA-256 under the
privacy key, 128 bits, hex); a value that was never a valid key is digested as it is
(``store.pseudonyms.stored_raw``), so an operator can still name its row. Audit subjects that
are keys get the same form, and keys inside audit details are replaced by their pseudonyms.
The key ring comes from ``store.migrate.upgrade(..., keyring=...)`` (Alembic config
attributes); a database with rows to convert and no key ring is refused, changing nothing.
One-way: the plain text cannot be brought back, so the downgrade leaves the pseudonyms.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from inbox_daemon import keys
from inbox_daemon.store.pseudonyms import stored_raw

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000
# An order id or an address inside a free-text audit detail (keys.ORDER_ID_PATTERN; an address
# as the earlier audit details wrote them: no spaces, one "@").
_IN_DETAIL = re.compile(rf"\b{keys.ORDER_ID_PATTERN}\b|[^\s@,;:()<>\"']+@[^\s@,;:()<>\"']+")


def upgrade() -> None:
    bind = op.get_bind()
    ring = op.get_context().config.attributes.get("keyring") if op.get_context().config else None
    for column in ("email", "order_id"):
        _convert_column(bind, ring, column)
    _convert_audit(bind, ring)


def downgrade() -> None:
    pass  # the plain keys are gone: earlier revisions read the pseudonyms as opaque keys


def _need(ring: keys.Pseudonyms | None) -> keys.Pseudonyms:
    if ring is None:
        raise RuntimeError("the blocklist holds plain keys and no privacy key was given to the migration: "
                           "run `inbox-daemon db upgrade` (it loads [privacy] key_file)")
    return ring


def _stored(ring: keys.Pseudonyms, kind: keys.Kind, value: str) -> str:
    parsed = keys.parse(value) if kind == "email" else keys.BuyerKey.order(value)
    if parsed is not None and parsed.kind == kind:
        return parsed.stored(ring)
    return stored_raw(ring, kind, value)


def _convert_column(bind: sa.Connection, ring: keys.Pseudonyms | None, column: str) -> None:
    kind: keys.Kind = "email" if column == "email" else "order"
    last = 0
    while True:
        rows = bind.execute(sa.text(
            f"SELECT id, {column} FROM opt_outs WHERE {column} IS NOT NULL AND id > :last ORDER BY id LIMIT :n"
        ), {"last": last, "n": _BATCH}).all()
        if not rows:
            return
        for row_id, value in rows:
            if not keys.is_stored(value):
                bind.execute(sa.text(f"UPDATE opt_outs SET {column} = :v WHERE id = :i"),
                             {"v": _stored(_need(ring), kind, value), "i": row_id})
        last = rows[-1][0]


def _convert_audit(bind: sa.Connection, ring: keys.Pseudonyms | None) -> None:
    last = 0
    while True:
        rows = bind.execute(sa.text(
            "SELECT id, subject, detail FROM audit_log WHERE id > :last ORDER BY id LIMIT :n"
        ), {"last": last, "n": _BATCH}).all()
        if not rows:
            return
        for row_id, subject, detail in rows:
            new_subject = subject
            parsed = keys.parse(subject) if subject and not keys.is_stored(subject) else None
            if parsed is not None:
                new_subject = parsed.stored(_need(ring))
            new_detail = detail
            if detail and _IN_DETAIL.search(detail):
                new_detail = _IN_DETAIL.sub(lambda m: _pseudonym_of(_need(ring), m.group(0)), detail)
            if (new_subject, new_detail) != (subject, detail):
                bind.execute(sa.text("UPDATE audit_log SET subject = :s, detail = :d WHERE id = :i"),
                             {"s": new_subject, "d": new_detail, "i": row_id})
        last = rows[-1][0]


def _pseudonym_of(ring: keys.Pseudonyms, text: str) -> str:
    parsed = keys.parse(text)
    return text if parsed is None else parsed.stored(ring)
