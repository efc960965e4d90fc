"""Web users (Argon2 password hashes, roles) and HTTP API tokens (SHA-256 of the token).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)  # inbox_daemon.store.schema.UTCDateTime stores through this


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(400), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("disabled_at", UTC, nullable=True),
        sa.CheckConstraint("role IN ('viewer', 'operator')", name=op.f("ck_web_users_role")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_web_users")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("web_users")
