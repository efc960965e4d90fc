"""Tables of the trust work (issue 5; migration 0003): sellers, their forwarders, what was
decided about each message, and the audit trail. Same ``Base`` as ``tables``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .tables import Base, BigIntKey, UTCDateTime

__all__ = ["DKIM_STATES", "Seller", "Forwarder", "MessageTrust", "AuditRow"]

DKIM_STATES = ("verified", "failed", "absent")


class Seller(Base):
    """A seller account. ``token`` makes its recipient address ``<local>+<token>@<domain>``.
    Removal keeps the row (evidence and figures name it); adding the name again revives it."""

    __tablename__ = "sellers"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Forwarder(Base):
    """An address a seller registered: notices it forwards are that seller's."""

    __tablename__ = "forwarders"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    seller_id: Mapped[int] = mapped_column(BigIntKey, ForeignKey("sellers.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)  # lower-case
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageTrust(Base):
    """What the admission step knew and decided about one raw message (its latest pass)."""

    __tablename__ = "message_trust"
    __table_args__ = (
        CheckConstraint("dkim IN ('verified', 'failed', 'absent')", name="dkim"),
        Index("ix_message_trust_rate_key_decided_at", "rate_key", "decided_at"),
    )

    raw_message_id: Mapped[int] = mapped_column(
        BigIntKey, ForeignKey("raw_messages.id"), primary_key=True
    )
    seller_id: Mapped[int | None] = mapped_column(BigIntKey, ForeignKey("sellers.id"), index=True)
    forwarder: Mapped[str | None] = mapped_column(String(320))
    forwarded_via: Mapped[str | None] = mapped_column(String(32))
    token: Mapped[str | None] = mapped_column(String(32))
    rate_key: Mapped[str] = mapped_column(String(320))  # forwarder, "+token" or "-"
    dkim: Mapped[str] = mapped_column(String(16))
    dkim_domain: Mapped[str | None] = mapped_column(String(253))
    dkim_detail: Mapped[str | None] = mapped_column(Text)
    held: Mapped[str | None] = mapped_column(Text)  # the quarantine reason; None: admitted
    new_opt_outs: Mapped[int] = mapped_column(Integer)  # what the rate limit counts
    amazon_notices: Mapped[int] = mapped_column(Integer)  # seller messages Amazon blocked
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditRow(Base):
    """One row per change: who, when, what and why (issue 5, point 6)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))  # a login name, or "intake:<source>"
    action: Mapped[str] = mapped_column(String(32))  # block, reactivate, remove, import, ...
    subject: Mapped[str | None] = mapped_column(String(400))  # a key, seller or address
    opt_out_id: Mapped[int | None] = mapped_column(BigIntKey, ForeignKey("opt_outs.id"), index=True)
    raw_message_id: Mapped[int | None] = mapped_column(BigIntKey, ForeignKey("raw_messages.id"))
    detail: Mapped[str | None] = mapped_column(Text)  # the reason, provenance, ...
