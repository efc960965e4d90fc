"""IMAP leases: which daemon polls each mailbox when several share one database.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)  # inbox_daemon.store.schema.UTCDateTime stores through this


def upgrade() -> None:
    op.create_table(
        "imap_leases",
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("mailbox", sa.String(1000), nullable=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("last_success", UTC, nullable=True),
        sa.PrimaryKeyConstraint("account", "mailbox", name=op.f("pk_imap_leases")),
    )


def downgrade() -> None:
    op.drop_table("imap_leases")
