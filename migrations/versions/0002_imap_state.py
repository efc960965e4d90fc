"""IMAP pollers' positions: per account and mailbox, the UIDVALIDITY and the last UID taken.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)  # inbox_daemon.store.schema.UTCDateTime stores through this


def upgrade() -> None:
    op.create_table(
        "imap_state",
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("mailbox", sa.String(1000), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("account", "mailbox", name=op.f("pk_imap_state")),
    )


def downgrade() -> None:
    op.drop_table("imap_state")
