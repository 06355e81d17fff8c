"""platform connectors: each platform's webhook signing secret, sealed

Revision ID: 0009_connectors
Revises: 0008_staff_sessions
Create Date: 2026-12-02 14:50:00

One row per platform (Shopify, WooCommerce) that an admin has set up: the secret it signs its
order webhooks with, sealed under the master key (verifier.vault.secretbox), and when the last
correctly signed webhook arrived.
"""

from alembic import op
import sqlalchemy as sa
import verifier.models


revision = "0009_connectors"
down_revision = "0008_staff_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("secret_sealed", sa.String(length=400), nullable=False),
        sa.Column("updated_at", verifier.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.Column("last_delivery_at", verifier.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connectors")),
        sa.UniqueConstraint("platform", name=op.f("uq_connectors_platform")),
    )


def downgrade() -> None:
    op.drop_table("connectors")
