"""outcomes the shop reports after the decision (chargeback, confirmed fraud, delivered)

Revision ID: 0012_outcomes
Revises: 0011_desk_workbench
Create Date: 2026-12-02 14:45:00

One row per order and outcome kind, never edited (verifier.core.outcomes). The sampling
rate each order was drawn at is already stored on its decision (sampling_decisions.rate_bp),
which is what the Horvitz-Thompson estimate weights by: no column is needed for it.
"""

from alembic import op
import sqlalchemy as sa

from verifier.models import UTCDateTime


revision = "0012_outcomes"
down_revision = "0011_desk_workbench"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('chargeback', 'confirmed_fraud', 'delivered_ok')",
            name=op.f("ck_order_outcomes_outcome"),
        ),
        sa.CheckConstraint(
            "amount_minor IS NULL OR amount_minor >= 0", name=op.f("ck_order_outcomes_amount")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_outcomes_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_order_outcomes_api_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_outcomes")),
        sa.UniqueConstraint("order_id", "outcome", name="uq_order_outcomes_order_outcome"),
    )
    op.create_index(
        "ix_order_outcomes_outcome_order", "order_outcomes", ["outcome", "order_id"]
    )
    op.create_index(
        op.f("ix_order_outcomes_recorded_at"), "order_outcomes", ["recorded_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_order_outcomes_recorded_at"), table_name="order_outcomes")
    op.drop_index("ix_order_outcomes_outcome_order", table_name="order_outcomes")
    op.drop_table("order_outcomes")
