"""Sealed raw messages and retention: which data key sealed each message's bytes, when
retention deleted them, and an index for finding what is due.

Rows written before keep ``key_id`` NULL and stay readable as they are; the daemon (and
``db upgrade``, ``privacy rotate-key --resume``) seals them in bounded batches afterwards,
because a migration does not hold the privacy key (docs/privacy.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)  # inbox_daemon.store.schema.UTCDateTime stores through this


def upgrade() -> None:
    with op.batch_alter_table("raw_messages") as batch:
        batch.add_column(sa.Column("key_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("purged_at", UTC, nullable=True))
        batch.alter_column("data", existing_type=sa.LargeBinary(), nullable=True)
    op.create_index("ix_raw_messages_purged_at_received_at", "raw_messages", ["purged_at", "received_at"])


def downgrade() -> None:
    # Sealed or purged bytes cannot go back to a plain NOT NULL column: refuse rather than lose them.
    bind = op.get_bind()
    kept = bind.execute(sa.text("SELECT count(*) FROM raw_messages WHERE key_id IS NOT NULL OR data IS NULL")).scalar()
    if kept:
        raise RuntimeError(f"{kept} raw messages are sealed or purged; downgrading would lose them")
    op.drop_index("ix_raw_messages_purged_at_received_at", table_name="raw_messages")
    with op.batch_alter_table("raw_messages") as batch:
        batch.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("purged_at")
        batch.drop_column("key_id")
