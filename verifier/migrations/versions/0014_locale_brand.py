"""the customer's language and time zone on the order; the shop's brand row

Revision ID: 0014_locale_brand
Revises: 0013_webhook_endpoints
Create Date: 2026-12-02 15:00:00

`orders.locale` (a language tag) and `orders.timezone` (an IANA name) are optional: without
them the portal follows the browser's Accept-Language and states times in UTC. `shop_brand`
holds one row (id 1): what customers see of the shop, and the logo as a re-encoded PNG.
"""

from alembic import op
import sqlalchemy as sa

import verifier.models


revision = "0014_locale_brand"
down_revision = "0013_webhook_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("locale", sa.String(length=35), nullable=True))
    op.add_column("orders", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.create_table(
        "shop_brand",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_name", sa.String(length=80), nullable=True),
        sa.Column("support_email", sa.String(length=254), nullable=True),
        sa.Column("support_url", sa.String(length=300), nullable=True),
        sa.Column("sender_name", sa.String(length=80), nullable=True),
        sa.Column("reply_to", sa.String(length=254), nullable=True),
        sa.Column("logo_png", sa.LargeBinary(), nullable=True),
        sa.Column("logo_digest", sa.String(length=16), nullable=True),
        sa.Column("updated_at", verifier.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(length=254), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shop_brand")),
    )


def downgrade() -> None:
    op.drop_table("shop_brand")
    op.drop_column("orders", "timezone")
    op.drop_column("orders", "locale")
