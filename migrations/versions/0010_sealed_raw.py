"""Sealed raw messages and retention: which data key sealed each message's bytes, when
retention deleted them, and an index for finding what is due.

Rows written before keep ``key_id`` NULL and stay readable as they are; the daemon (and
``db upgrade``, ``privacy rotate-key --resume``) seals them in bounded batches afterwards,
because a migration does not hold the privacy key (docs/privacy.md).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)  # inbox_daemon.store.schema.UTCDateTime stores through this


def upgrade() -> None:
    # Columns added in place (no table rebuild: a large SQLite table is not copied, and rows
    # other tables point at stay put); a purged message keeps empty bytes, not NULL.
    op.add_column("raw_messages", sa.Column("key_id", sa.String(64), nullable=True))
    op.add_column("raw_messages", sa.Column("purged_at", UTC, nullable=True))
    op.create_index("ix_raw_messages_purged_at_received_at", "raw_messages", ["purged_at", "received_at"])


def downgrade() -> None:
    # An older version reads every stored byte as plain: refuse rather than hand it sealed or purged rows.
    bind = op.get_bind()
    kept = bind.execute(sa.text("SELECT count(*) FROM raw_messages WHERE key_id IS NOT NULL OR purged_at IS NOT NULL")).scalar()
    if kept:
        raise RuntimeError(f"{kept} raw messages are sealed or purged; downgrading would lose them")
    op.drop_index("ix_raw_messages_purged_at_received_at", table_name="raw_messages")
    with op.batch_alter_table("raw_messages") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("key_id")
