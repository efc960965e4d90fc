"""Every table, on one ``Base``: raw mail as received, the opt-outs it proved, the evidence
between them, the change sequence other processes follow, sellers and their forwarders, what
the admission step decided per message, the audit trail, the IMAP pollers' positions and
which daemon polls each mailbox.

Migrations in ``migrations/`` create them; the models here must agree with those migrations
(``tests/store/test_migrations.py`` compares them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "OUTCOMES",
    "DKIM_STATES",
    "Base",
    "table",
    "BigIntKey",
    "UTCDateTime",
    "SafeString",
    "SafeText",
    "clean_text",
    "RawMessage",
    "OptOut",
    "Evidence",
    "BlocklistChange",
    "PrivacyCheck",
    "Seller",
    "Forwarder",
    "MessageTrust",
    "AuditRow",
    "ImapState",
    "ImapLease",
    "WebUser",
    "ApiToken",
    "ROLES",
]

OUTCOMES = ("pending", "opt_out", "not_opt_out", "malformed", "error", "quarantined", "discarded")
DKIM_STATES = ("verified", "failed", "absent")
ROLES = ("viewer", "operator")  # web users: viewers read, operators also decide and change

# Deterministic constraint names: SQLite batch migrations and downgrades need to name them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every engine.

    PostgreSQL keeps ``timestamptz``. SQLite has no time zone type, so the value is stored as
    naive UTC text (fixed-width ISO, so ``min``/``max``/``ORDER BY`` stay chronological) and
    comes back tagged UTC. Naive input is refused: it is always a bug here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(moment, datetime):
            raise TypeError(f"not a datetime from the database: {value!r}")
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def clean_text(value: str) -> str:
    """``value`` as every engine can hold it: NUL (PostgreSQL refuses it in text) and lone
    surrogates (bytes that were not UTF-8, kept by ``surrogateescape``) become U+FFFD."""
    if value.isascii():  # no surrogate: only a NUL to look for (most values, every pseudonym)
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


class SafeString(TypeDecorator[str]):
    """A text column that stores a sanitised copy (``clean_text``): header values and
    envelope addresses come from strangers; the raw bytes stay the record of what arrived."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else clean_text(value)


class SafeText(SafeString):
    impl = Text
    cache_ok = True


# An 8-byte key on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY (rowid alias).
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """A model's Table, for Core statements built once and run with lists of rows (executemany):
    compiled once and cached, without the ORM's bulk bookkeeping per row."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


class RawMessage(Base):
    """Every message as it arrived, stored once per distinct bytes (sha256). The row stays for
    good; its bytes are sealed under the data key ``key_id`` (None: plain, written before
    sealing) and deleted by retention, which stamps ``purged_at`` (migration 0010)."""

    __tablename__ = "raw_messages"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('pending', 'opt_out', 'not_opt_out', 'malformed', 'error', "
            "'quarantined', 'discarded')",  # the last two since migration 0003
            name="outcome",
        ),
        Index("ix_raw_messages_outcome_id", "outcome", "id"),
        Index("ix_raw_messages_purged_at_received_at", "purged_at", "received_at"),  # retention
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # sealed; empty once purged
    size: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(SafeString(200))  # "smtp", "imap:<account>", "import"
    envelope_from: Mapped[str | None] = mapped_column(SafeText)
    envelope_to: Mapped[str] = mapped_column(SafeText, default="[]")  # JSON list of recipients
    peer: Mapped[str | None] = mapped_column(SafeString(200))
    message_id: Mapped[str | None] = mapped_column(SafeText)  # the message's own header
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    times_received: Mapped[int] = mapped_column(Integer, default=1)
    outcome: Mapped[str] = mapped_column(SafeString(16), default="pending")
    reason: Mapped[str | None] = mapped_column(SafeText)
    parser_version: Mapped[str | None] = mapped_column(SafeString(64))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    forwarder: Mapped[str | None] = mapped_column(SafeString(320))
    claimed_by: Mapped[str | None] = mapped_column(SafeString(200))  # the process processing it
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Deferred, as ``data`` is: only the sealing and retention reads ask for them.
    key_id: Mapped[str | None] = mapped_column(String(64), deferred=True)  # the data key ``data`` is sealed under
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, deferred=True)  # when retention deleted ``data``


class OptOut(Base):
    """One buyer who opted out, known by order id, relay address or both.

    ``active`` says whether the block is in force. ``removed_*`` record the latest operator
    removal and are kept when new evidence reactivates the row, as history.
    """

    __tablename__ = "opt_outs"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    order_id: Mapped[str | None] = mapped_column(SafeString(32), unique=True)
    email: Mapped[str | None] = mapped_column(SafeString(320), index=True)  # lower-case
    marketplace: Mapped[str | None] = mapped_column(SafeString(253))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    notice_count: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by: Mapped[str | None] = mapped_column(SafeString(200))
    removed_reason: Mapped[str | None] = mapped_column(SafeText)


class Evidence(Base):
    """Which raw message named which opt-out, and who forwarded it."""

    __tablename__ = "evidence"
    __table_args__ = (
        UniqueConstraint("opt_out_id", "raw_message_id"),
        Index("ix_evidence_opt_out_id_notice_message_id", "opt_out_id", "notice_message_id"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    raw_message_id: Mapped[int] = mapped_column(
        BigIntKey, ForeignKey("raw_messages.id"), index=True
    )
    opt_out_id: Mapped[int] = mapped_column(BigIntKey, ForeignKey("opt_outs.id"))
    forwarder: Mapped[str | None] = mapped_column(SafeString(320))
    notice_message_id: Mapped[str | None] = mapped_column(SafeText)  # Amazon's own Message-ID
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BlocklistChange(Base):
    """One row per change to an opt-out, written in the changing transaction; daemons follow
    ``seq`` to keep their in-memory index current without reloading it."""

    __tablename__ = "blocklist_changes"

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    opt_out_id: Mapped[int] = mapped_column(BigIntKey, ForeignKey("opt_outs.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Seller(Base):
    """A seller account. ``token`` makes its recipient address ``<local>+<token>@<domain>``.
    Removal keeps the row (evidence and figures name it); adding the name again revives it."""

    __tablename__ = "sellers"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    name: Mapped[str] = mapped_column(SafeString(200), unique=True)
    token: Mapped[str] = mapped_column(SafeString(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Forwarder(Base):
    """An address a seller registered: notices it forwards are that seller's."""

    __tablename__ = "forwarders"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    seller_id: Mapped[int] = mapped_column(BigIntKey, ForeignKey("sellers.id"), index=True)
    address: Mapped[str] = mapped_column(SafeString(320), unique=True)  # lower-case
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
    forwarder: Mapped[str | None] = mapped_column(SafeString(320))
    forwarded_via: Mapped[str | None] = mapped_column(SafeString(32))
    token: Mapped[str | None] = mapped_column(SafeString(32))
    rate_key: Mapped[str] = mapped_column(SafeString(320))  # forwarder, "+token" or "-"
    dkim: Mapped[str] = mapped_column(SafeString(16))
    dkim_domain: Mapped[str | None] = mapped_column(SafeString(253))
    dkim_detail: Mapped[str | None] = mapped_column(SafeText)
    held: Mapped[str | None] = mapped_column(SafeText)  # the quarantine reason; None: admitted
    new_opt_outs: Mapped[int] = mapped_column(Integer)  # what the rate limit counts
    amazon_notices: Mapped[int] = mapped_column(Integer)  # seller messages Amazon blocked
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(SafeString(200))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Every header that named a forwarder, with what proved it or "unauthenticated" (migration 0005)
    identity: Mapped[str | None] = mapped_column(Text)


class PrivacyCheck(Base):
    """One row: the check value of the privacy key the blocklist's pseudonyms are made with
    (``privacy.KeyRing.check_value``), so a daemon with another key refuses to start."""

    __tablename__ = "privacy_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    check_value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditRow(Base):
    """One row per change to the blocklist or the registry: who, when, what and why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(SafeString(200))  # a login name, or "intake:<source>"
    action: Mapped[str] = mapped_column(SafeString(32))  # block, reactivate, remove, import, ...
    subject: Mapped[str | None] = mapped_column(SafeString(400))  # a key, seller or address
    opt_out_id: Mapped[int | None] = mapped_column(BigIntKey, ForeignKey("opt_outs.id"), index=True)
    raw_message_id: Mapped[int | None] = mapped_column(BigIntKey, ForeignKey("raw_messages.id"))
    detail: Mapped[str | None] = mapped_column(SafeText)  # the reason, provenance, ...


class ImapState(Base):
    """How far one IMAP poller got in one mailbox: the UIDVALIDITY it read under and the
    highest UID below which every message was stored and then flagged or moved (migration 0002).
    A different UIDVALIDITY means the UIDs mean nothing any more (RFC 3501 section 2.3.1.1)."""

    __tablename__ = "imap_state"

    account: Mapped[str] = mapped_column(SafeString(200), primary_key=True)
    mailbox: Mapped[str] = mapped_column(SafeString(1000), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)  # 32-bit unsigned on the wire
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ImapLease(Base):
    """Which daemon polls one IMAP mailbox, and until when, when several daemons share the
    database (migration 0006). ``holder`` None: released. ``token`` goes up whenever the
    mailbox changes hands, so a former holder's late writes can be refused (a fencing token)."""

    __tablename__ = "imap_leases"

    account: Mapped[str] = mapped_column(String(200), primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(1000), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_success: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the holder's last drained round


class WebUser(Base):
    """Who may use the web pages (migration 0007): a name, an Argon2 hash of the password (never
    the password) and a role. ``disabled_at`` set: the user can no longer log in."""

    __tablename__ = "web_users"
    __table_args__ = (CheckConstraint("role IN ('viewer', 'operator')", name="role"),)

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(400))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token of the HTTP API (migration 0007): only the SHA-256 of the token is kept
    (a token is 32 random bytes, so a fast hash is enough), with a name to revoke it by."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
