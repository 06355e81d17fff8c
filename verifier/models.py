"""Tables, as SQLAlchemy 2.x typed models; the lifecycle they follow is in DESIGN.md. Some
live beside their readers (verifier.core.rollups, endpoints, outcomes, brand; web.passkeys…)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Case states (DESIGN.md "Order lifecycle"); an order with no case is `cleared`.
AWAITING_DOCUMENTS = "awaiting_documents"
IN_REVIEW = "in_review"
RESUBMISSION_REQUESTED = "resubmission_requested"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
DECLINED = "declined"  # the customer chose not to verify
CASE_STATES = (
    AWAITING_DOCUMENTS,
    IN_REVIEW,
    RESUBMISSION_REQUESTED,
    APPROVED,
    REJECTED,
    EXPIRED,
    DECLINED,
)
OPEN_CASE_STATES = (AWAITING_DOCUMENTS, IN_REVIEW, RESUBMISSION_REQUESTED)
CLEARED = "cleared"

DOCUMENT_KINDS = ("card_front", "card_back", "photo_id", "proof_of_address")
ROLES = ("reviewer", "admin")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return uuid.uuid4().hex


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT primary keys do not auto-increment on SQLite; INTEGER does.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class StaffUser(Base):
    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint(f"role IN {_in(ROLES)}", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by logout-everywhere, deactivation and password change: old sessions stop working.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    # Sealed under the master key, never the base32 secret itself (verifier.staff.totp.seal_secret).
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    # The last TOTP time step accepted: a code is never accepted twice (RFC 6238 section 5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Account-wide brake (a spread-out attack); an outsider only reaches per-address LoginLock.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]


class LoginLock(Base):
    """Failed sign-ins to one account from one address, and that pair's lock."""

    __tablename__ = "login_locks"

    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_failure_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the key, shown in listings so an operator can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class SamplingPolicy(Base):
    """One immutable version of the sampling policy; a change adds a new row."""

    __tablename__ = "sampling_policies"
    __table_args__ = (
        CheckConstraint("rate_bp BETWEEN 0 AND 10000", name="rate_range"),
        CheckConstraint(
            "amount_threshold_minor IS NULL OR amount_threshold_minor > 0", name="threshold"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    # Hundredths of a percent: 500 is 5.00 %; integers keep two-decimal rates exact.
    rate_bp: Mapped[int] = mapped_column(Integer)
    amount_threshold_minor: Mapped[int | None] = mapped_column(BigInteger)
    rule_country_mismatch: Mapped[bool] = mapped_column(Boolean, default=False)
    rule_name_mismatch: Mapped[bool] = mapped_column(Boolean, default=False)
    # Every other admin setting of this version (document requirement, link lifetime,
    # retention, four-eyes, ...); keys and defaults live in verifier.core.settings.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The admin's ordered rules and currency rates, as JSON (verifier.core.rules).
    rules: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    currency_rates: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_by_label: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(Text)


# Linked history (verifier.review.history) reads each key newest first: (key, id) indexes.
LINK_KEY_COLUMNS = ("email_key", "card_key", "billing_key", "shipping_key", "phone_key",
                    "ip_address", "device_id")  # fmt: skip


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount"),
        *(Index(f"ix_orders_{name}", name, "id") for name in LINK_KEY_COLUMNS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    # Kept by the database, for the review queue's case-insensitive prefix search.
    external_id_lower: Mapped[str] = mapped_column(
        String(100), Computed("lower(external_id)", persisted=True), index=True
    )
    # SHA-256 of the normalised payload: a resend is compared by this, never re-drawn.
    payload_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8))
    placed_at: Mapped[datetime]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_email: Mapped[str] = mapped_column(String(254), index=True)
    billing_address: Mapped[dict[str, Any]]
    shipping_address: Mapped[dict[str, Any]]
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str] = mapped_column(String(4))
    cardholder_name: Mapped[str] = mapped_column(String(200))
    customer_phone: Mapped[str | None] = mapped_column(String(40))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    device_id: Mapped[str | None] = mapped_column(String(100))
    email_key: Mapped[str | None] = mapped_column(String(32))  # verifier.core.linkkeys
    card_key: Mapped[str | None] = mapped_column(String(32))
    billing_key: Mapped[str | None] = mapped_column(String(32))
    shipping_key: Mapped[str | None] = mapped_column(String(32))
    phone_key: Mapped[str | None] = mapped_column(String(16))
    locale: Mapped[str | None] = mapped_column(String(35))  # the customer's language tag
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA name; None: UTC
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    anonymised_at: Mapped[datetime | None]

    decision: Mapped[SamplingDecision | None] = relationship(back_populates="order")
    case: Mapped[VerificationCase | None] = relationship(back_populates="order")


class SamplingDecision(Base):
    __tablename__ = "sampling_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("sampling_policies.id"), index=True)
    flagged: Mapped[bool] = mapped_column(Boolean)
    # `random`, `not_selected`, or the name of the first rule that forced review.
    reason: Mapped[str] = mapped_column(String(40))
    rules_matched: Mapped[list[Any]] = mapped_column(default=list)
    # Uniform draw in [0, 10000); flagged at random when draw < rate_bp.
    draw: Mapped[int] = mapped_column(Integer)
    rate_bp: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    order: Mapped[Order] = relationship(back_populates="decision")
    policy: Mapped[SamplingPolicy] = relationship()


FOUR_EYES = text("proposed_rejection_by_id IS NOT NULL AND status = 'in_review'")


class VerificationCase(Base):
    __tablename__ = "verification_cases"
    __table_args__ = (
        CheckConstraint(f"status IN {_in(CASE_STATES)}", name="status"),
        Index("ix_verification_cases_status_created", "status", "created_at", "id"),
        # Review queue keyset pages: "all states" by creation, "decided" by last change.
        Index("ix_verification_cases_created", "created_at", "id"),
        Index("ix_verification_cases_updated", "updated_at", "id"),
        Index("ix_verification_cases_decided", "decided_at"),
        # A reviewer's own claims: "next case" returns a held one first.
        Index("ix_verification_cases_claimed", "claimed_by_id"),
        # How long open cases wait: the dashboard's oldest, median and late counts.
        Index(
            "ix_verification_cases_waiting", "status", text("coalesce(submitted_at, updated_at)")
        ),
        # Queue sorts: longest waiting first, largest amount first.
        Index("ix_verification_cases_queue_wait", "status",
              text("coalesce(submitted_at, created_at)"), "id"),
        Index("ix_verification_cases_amount", "status", "amount_minor", "id"),
        # Rejections waiting for a second reviewer (four-eyes): few, listed on their own.
        Index("ix_verification_cases_four_eyes", "created_at", "id",
              sqlite_where=FOUR_EYES, postgresql_where=FOUR_EYES),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(40), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")  # the order's
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decision_reason_code: Mapped[str | None] = mapped_column(String(40))
    decision_note: Mapped[str | None] = mapped_column(Text)
    checklist: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    lease_expires_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]  # when the current (or last) claim began
    resubmission_count: Mapped[int] = mapped_column(Integer, default=0)
    resubmission_kinds: Mapped[list[Any] | None] = mapped_column(JSON)
    resubmission_message: Mapped[str | None] = mapped_column(Text)
    # Four-eyes: a rejection proposed by one reviewer waits for a second one's confirmation.
    proposed_rejection_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    proposed_rejection_at: Mapped[datetime | None]
    declined_reason: Mapped[str | None] = mapped_column(Text)
    legal_hold_reason: Mapped[str | None] = mapped_column(Text)
    legal_hold_at: Mapped[datetime | None]
    documents_purged_at: Mapped[datetime | None]

    order: Mapped[Order] = relationship(back_populates="case")
    links: Mapped[list[UploadLink]] = relationship(back_populates="case")
    documents: Mapped[list[Document]] = relationship(back_populates="case")


class UploadLink(Base):
    __tablename__ = "upload_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("verification_cases.id"), index=True)
    # SHA-256 of the 256-bit token; the token itself exists only in the customer's email.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
    reminder_sent_at: Mapped[datetime | None]

    case: Mapped[VerificationCase] = relationship(back_populates="links")


KEYED = text("wrapped_key IS NOT NULL")
UNFINISHED = text("wrapped_key IS NULL AND blob_name IS NOT NULL")


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint(f"kind IN {_in(DOCUMENT_KINDS)}", name="kind"),
        # The purge's two batch queries walk only the rows still to do, never the purged ones.
        Index("ix_documents_keyed", "id", sqlite_where=KEYED, postgresql_where=KEYED),
        Index(
            "ix_documents_unfinished", "id", sqlite_where=UNFINISHED, postgresql_where=UNFINISHED
        ),
    )

    # A random id, known before the row is written, so it can be bound into the blob's AAD.
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_uuid)
    case_id: Mapped[int] = mapped_column(ForeignKey("verification_cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    # The pages of one uploaded file (a PDF gives several) share an upload id.
    upload_id: Mapped[str] = mapped_column(String(32), default=new_uuid, index=True)
    page: Mapped[int] = mapped_column(Integer, default=1)
    # active | replaced | erased | purged
    status: Mapped[str] = mapped_column(String(12), default="active", index=True)
    blob_name: Mapped[str | None] = mapped_column(String(80))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(40))
    source_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    byte_size: Mapped[int] = mapped_column(Integer)
    quality_warnings: Mapped[list[Any]] = mapped_column(default=list)
    # Card numbers (or a card back's digit groups) the decoder painted over on this page.
    auto_masked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Card photos only: how the customer covered the numbers (see portal.covering):
    # pending (waiting to be painted over), painted (on the device), preview (painted over
    # the server's preview), declared (covered by hand, ticked without JavaScript).
    cover: Mapped[str | None] = mapped_column(String(12))
    # The case's resubmission_count when this was uploaded: a resubmission asks for uploads
    # of the new round, so the document that was sent back cannot answer it.
    round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_at: Mapped[datetime | None]
    erase_reason: Mapped[str | None] = mapped_column(String(32))  # see review.documents
    purged_at: Mapped[datetime | None]
    purge_run_id: Mapped[int | None] = mapped_column(ForeignKey("purge_runs.id"))

    case: Mapped[VerificationCase] = relationship(back_populates="documents")


class AuditEvent(Base):
    """Append-only and hash-chained: each row's `hash` covers its fields and the previous hash.

    `seq`, `prev_hash` and `hash` are filled at commit by verifier.core.audit_chain, under the
    chain-head lock; on PostgreSQL a trigger refuses any other UPDATE and every DELETE.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(String(16))  # staff | api | customer | system | cli
    actor_id: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(Base):
    """The one row (id 1) naming the chain's last event: its lock serialises appends."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class OutboxEmail(Base):
    """Customer emails, written in the same transaction as the change that causes them."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("verification_cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class WebhookEvent(Base):
    """A status change to tell the shop about, delivered with retries; idempotent by event_id."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_uuid)
    event_type: Mapped[str] = mapped_column(String(60))
    # The endpoint it goes to (verifier.core.endpoints); None: the VERIFIER_WEBHOOK_URL default.
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One attempt to deliver a webhook event: the admin delivery log."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class PurgeRun(Base):
    """One run of the retention purge, with counts only (never contents)."""

    __tablename__ = "purge_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    actor: Mapped[str] = mapped_column(String(254))
    documents_purged: Mapped[int] = mapped_column(Integer, default=0)
    orphans_removed: Mapped[int] = mapped_column(Integer, default=0)
    orders_anonymised: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class QualityReview(Base):
    """A blind second review of a decided case, for measuring reviewer agreement."""

    __tablename__ = "quality_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("verification_cases.id"), unique=True)
    first_reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    verdict: Mapped[str | None] = mapped_column(String(12))  # approved | rejected
    agrees: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(index=True)
    resolved_at: Mapped[datetime | None]  # a disagreement settled by an admin
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    resolution: Mapped[str | None] = mapped_column(String(20))  # see review.quality
    resolution_note: Mapped[str | None] = mapped_column(Text)
