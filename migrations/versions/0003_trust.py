"""Trust: sellers, forwarders, per-message admission, the audit trail; two more outcomes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types, so that this revision never changes with the models.
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)
OLD_OUTCOMES = "outcome IN ('pending', 'opt_out', 'not_opt_out', 'malformed', 'error')"
NEW_OUTCOMES = (
    "outcome IN ('pending', 'opt_out', 'not_opt_out', 'malformed', 'error', 'quarantined', 'discarded')"
)


def _outcomes(old: str, new: str) -> None:
    """Replace the outcome CHECK.

    PostgreSQL alters it in place. SQLite cannot alter a CHECK; batch mode would copy
    ``raw_messages`` — every raw mail ever received — and that copy's DROP TABLE fails while
    evidence rows point at it (foreign keys are on, and cannot be turned off inside Alembic's
    transaction). A CHECK change leaves the stored rows as they are, so SQLite's documented
    procedure for such changes is used instead: edit the table's SQL in the schema and bump
    ``schema_version`` (https://www.sqlite.org/lang_altertable.html#otheralter). Rows are made
    to satisfy the narrower CHECK before a downgrade.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_raw_messages_outcome"), "raw_messages", type_="check")
        op.create_check_constraint(op.f("ck_raw_messages_outcome"), "raw_messages", new)
        return
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'raw_messages'").scalar()
    if not isinstance(sql, str) or sql.count(old) != 1:
        raise RuntimeError("raw_messages: outcome CHECK not found as migration 0001 wrote it")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'raw_messages'",
        (sql.replace(old, new),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _outcomes(OLD_OUTCOMES, NEW_OUTCOMES)
    op.create_table(
        "sellers",
        sa.Column("id", KEY, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("removed_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sellers")),
        sa.UniqueConstraint("name", name=op.f("uq_sellers_name")),
        sa.UniqueConstraint("token", name=op.f("uq_sellers_token")),
    )
    op.create_table(
        "forwarders",
        sa.Column("id", KEY, nullable=False),
        sa.Column("seller_id", KEY, nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"], name=op.f("fk_forwarders_seller_id_sellers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forwarders")),
        sa.UniqueConstraint("address", name=op.f("uq_forwarders_address")),
    )
    op.create_index("ix_forwarders_seller_id", "forwarders", ["seller_id"])
    _message_trust()
    op.create_table(
        "audit_log",
        sa.Column("id", KEY, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(400), nullable=True),
        sa.Column("opt_out_id", KEY, nullable=True),
        sa.Column("raw_message_id", KEY, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["opt_out_id"], ["opt_outs.id"], name=op.f("fk_audit_log_opt_out_id_opt_outs")),
        sa.ForeignKeyConstraint(
            ["raw_message_id"], ["raw_messages.id"], name=op.f("fk_audit_log_raw_message_id_raw_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_opt_out_id", "audit_log", ["opt_out_id"])


def _message_trust() -> None:
    op.create_table(
        "message_trust",
        sa.Column("raw_message_id", KEY, nullable=False),
        sa.Column("seller_id", KEY, nullable=True),
        sa.Column("forwarder", sa.String(320), nullable=True),
        sa.Column("forwarded_via", sa.String(32), nullable=True),
        sa.Column("token", sa.String(32), nullable=True),
        sa.Column("rate_key", sa.String(320), nullable=False),
        sa.Column("dkim", sa.String(16), nullable=False),
        sa.Column("dkim_domain", sa.String(253), nullable=True),
        sa.Column("dkim_detail", sa.Text(), nullable=True),
        sa.Column("held", sa.Text(), nullable=True),
        sa.Column("new_opt_outs", sa.Integer(), nullable=False),
        sa.Column("amazon_notices", sa.Integer(), nullable=False),
        sa.Column("decided_at", UTC, nullable=False),
        sa.Column("approved_by", sa.String(200), nullable=True),
        sa.Column("approved_at", UTC, nullable=True),
        sa.CheckConstraint("dkim IN ('verified', 'failed', 'absent')", name=op.f("ck_message_trust_dkim")),
        sa.ForeignKeyConstraint(
            ["raw_message_id"], ["raw_messages.id"], name=op.f("fk_message_trust_raw_message_id_raw_messages")
        ),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"], name=op.f("fk_message_trust_seller_id_sellers")),
        sa.PrimaryKeyConstraint("raw_message_id", name=op.f("pk_message_trust")),
    )
    op.create_index("ix_message_trust_seller_id", "message_trust", ["seller_id"])
    op.create_index("ix_message_trust_rate_key_decided_at", "message_trust", ["rate_key", "decided_at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("message_trust")
    op.drop_table("forwarders")
    op.drop_table("sellers")
    # The older schema knows neither outcome; both mean "not applied", as not_opt_out does.
    op.execute("UPDATE raw_messages SET outcome = 'not_opt_out' WHERE outcome IN ('quarantined', 'discarded')")
    _outcomes(NEW_OUTCOMES, OLD_OUTCOMES)
