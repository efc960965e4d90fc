"""Initial schema: raw messages, opt-outs, evidence, blocklist changes.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types, so that this revision never changes with the models.
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: rowid alias
UTC = sa.DateTime(timezone=True)  # inbox_daemon.store.schema.UTCDateTime stores through this


def upgrade() -> None:
    op.create_table(
        "raw_messages",
        sa.Column("id", KEY, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("envelope_from", sa.Text(), nullable=True),
        sa.Column("envelope_to", sa.Text(), nullable=False),
        sa.Column("peer", sa.String(200), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("received_at", UTC, nullable=False),
        sa.Column("times_received", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("parser_version", sa.String(64), nullable=True),
        sa.Column("processed_at", UTC, nullable=True),
        sa.Column("forwarder", sa.String(320), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('pending', 'opt_out', 'not_opt_out', 'malformed', 'error')",
            name=op.f("ck_raw_messages_outcome"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_messages")),
        sa.UniqueConstraint("sha256", name=op.f("uq_raw_messages_sha256")),
    )
    op.create_index("ix_raw_messages_outcome_id", "raw_messages", ["outcome", "id"])

    op.create_table(
        "opt_outs",
        sa.Column("id", KEY, nullable=False),
        sa.Column("order_id", sa.String(32), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("marketplace", sa.String(253), nullable=True),
        sa.Column("first_seen", UTC, nullable=False),
        sa.Column("last_seen", UTC, nullable=False),
        sa.Column("notice_count", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("removed_at", UTC, nullable=True),
        sa.Column("removed_by", sa.String(200), nullable=True),
        sa.Column("removed_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_outs")),
        sa.UniqueConstraint("order_id", name=op.f("uq_opt_outs_order_id")),
    )
    op.create_index("ix_opt_outs_email", "opt_outs", ["email"])

    op.create_table(
        "evidence",
        sa.Column("id", KEY, nullable=False),
        sa.Column("raw_message_id", KEY, nullable=False),
        sa.Column("opt_out_id", KEY, nullable=False),
        sa.Column("forwarder", sa.String(320), nullable=True),
        sa.Column("notice_message_id", sa.Text(), nullable=True),
        sa.Column("seen_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["opt_out_id"], ["opt_outs.id"], name=op.f("fk_evidence_opt_out_id_opt_outs")
        ),
        sa.ForeignKeyConstraint(
            ["raw_message_id"],
            ["raw_messages.id"],
            name=op.f("fk_evidence_raw_message_id_raw_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence")),
        sa.UniqueConstraint(
            "opt_out_id", "raw_message_id", name=op.f("uq_evidence_opt_out_id_raw_message_id")
        ),
    )
    op.create_index(
        "ix_evidence_opt_out_id_notice_message_id", "evidence", ["opt_out_id", "notice_message_id"]
    )
    op.create_index("ix_evidence_raw_message_id", "evidence", ["raw_message_id"])

    op.create_table(
        "blocklist_changes",
        sa.Column("seq", KEY, nullable=False),
        sa.Column("opt_out_id", KEY, nullable=False),
        sa.Column("changed_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["opt_out_id"], ["opt_outs.id"], name=op.f("fk_blocklist_changes_opt_out_id_opt_outs")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_blocklist_changes")),
    )


def downgrade() -> None:
    op.drop_table("blocklist_changes")
    op.drop_table("evidence")  # its indexes go with it
    op.drop_table("opt_outs")
    op.drop_table("raw_messages")
