"""documents record how many card numbers the decoder covered

Revision ID: 0004_card_masking
Revises: 0003
Create Date: 2026-12-02 08:00:00

The decoder paints over card numbers (and a card back's security code) before a page is
encrypted; the count is kept so the customer and the reviewer are told what was covered.
Pages stored before this were not masked by the server: they keep 0.
"""

from alembic import op
import sqlalchemy as sa


revision = "0004_card_masking"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("auto_masked", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("auto_masked")
