"""The privacy key's check value: which key file the database's pseudonyms were made with.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)  # inbox_daemon.store.schema.UTCDateTime stores through this


def upgrade() -> None:
    op.create_table(
        "privacy_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check_value", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_check")),
    )


def downgrade() -> None:
    op.drop_table("privacy_check")
