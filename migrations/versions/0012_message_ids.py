"""Message-IDs kept as their keyed digests: a Message-ID may quote buyer data.

``evidence.notice_message_id`` and ``raw_messages.message_id`` get ``keys.message_id_stored``
(HMAC-SHA-256 under the privacy key, hex), as the daemon writes them from this revision on. The
left part of a Message-ID is whatever the sending client chose, an order id or an address among
them; the evidence only compares it (one Amazon notice counts once). A value that is a digest
already is left as it is (a Message-ID has an "@", RFC 5322 section 3.6.4). The key ring comes
from ``store.migrate.upgrade(..., keyring=...)`` as for 0011; a database with a Message-ID to
convert and no key ring is refused, changing nothing. One-way: the downgrade keeps the digests.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from inbox_daemon import keys

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    ring = op.get_context().config.attributes.get("keyring") if op.get_context().config else None
    for table, column in (("evidence", "notice_message_id"), ("raw_messages", "message_id")):
        _convert(bind, ring, table, column)


def downgrade() -> None:
    pass  # the Message-IDs are gone: earlier revisions compare the digests as opaque ids


def _convert(bind: sa.Connection, ring: keys.Pseudonyms | None, table: str, column: str) -> None:
    last = 0
    while True:
        rows = bind.execute(sa.text(
            f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL AND id > :last ORDER BY id LIMIT :n"
        ), {"last": last, "n": _BATCH}).all()
        if not rows:
            return
        for row_id, value in rows:
            if keys.is_stored(value):
                continue
            if ring is None:
                raise RuntimeError(f"{table} holds plain Message-IDs and no privacy key was given to the migration: "
                                   "run `inbox-daemon db upgrade` (it loads [privacy] key_file)")
            bind.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE id = :i"),
                         {"v": keys.message_id_stored(ring, value), "i": row_id})
        last = rows[-1][0]
