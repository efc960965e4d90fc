"""Identity evidence: every forwarding claim of a message with its proof, beside the decision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("message_trust", sa.Column("identity", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place; message_trust is referenced by no other table.
    op.drop_column("message_trust", "identity")
