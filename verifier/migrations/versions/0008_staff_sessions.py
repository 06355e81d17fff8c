"""staff sessions held on the server; the staff-wide two-factor rule

Revision ID: 0008_staff_sessions
Revises: 0007_portal_receipts
Create Date: 2026-12-02 14:40:00

Each signed-in browser gets a row (only the SHA-256 of its cookie token is stored), so a user
can see their sessions and sign one out. `staff_security` is a single row saying whether
two-factor sign-in is required of admins only or of every staff member. `staff_passkeys`
holds WebAuthn credentials (id and public key: neither is a secret) as a second factor.
"""

from alembic import op
import sqlalchemy as sa

import verifier.models


revision = "0008_staff_sessions"
down_revision = "0007_portal_receipts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at", verifier.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", verifier.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=True),
        sa.Column("ended_at", verifier.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["staff_users.id"], name=op.f("fk_staff_sessions_user_id_staff_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_sessions_token_hash")),
    )
    op.create_index(op.f("ix_staff_sessions_user_id"), "staff_sessions", ["user_id"])
    op.create_table(
        "staff_security",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("two_factor_for", sa.String(length=12), nullable=False),
        sa.Column("updated_at", verifier.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_staff_security_single_row")),
        sa.CheckConstraint(
            "two_factor_for IN ('admins', 'everyone')",
            name=op.f("ck_staff_security_two_factor_for"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["staff_users.id"],
            name=op.f("fk_staff_security_updated_by_staff_users"),
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_security")),
    )

    op.create_table(
        "staff_passkeys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.String(length=2000), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("created_at", verifier.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", verifier.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["staff_users.id"], name=op.f("fk_staff_passkeys_user_id_staff_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_staff_passkeys_credential_id")),
    )
    op.create_index(op.f("ix_staff_passkeys_user_id"), "staff_passkeys", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_passkeys_user_id"), table_name="staff_passkeys")
    op.drop_table("staff_passkeys")
    op.drop_table("staff_security")
    op.drop_index(op.f("ix_staff_sessions_user_id"), table_name="staff_sessions")
    op.drop_table("staff_sessions")
