"""Claims: which process is processing a pending message, since when (exclusive processing by
one owner; a claim past its lease, or of a process that died, is taken over).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)  # inbox_daemon.store.schema.UTCDateTime stores through this


def upgrade() -> None:
    op.add_column("raw_messages", sa.Column("claimed_by", sa.String(200), nullable=True))
    op.add_column("raw_messages", sa.Column("claimed_at", UTC, nullable=True))


def downgrade() -> None:
    # SQLite drops a column itself since 3.35 (https://www.sqlite.org/lang_altertable.html)
    op.drop_column("raw_messages", "claimed_at")
    op.drop_column("raw_messages", "claimed_by")
