"""how the customer covered a card photo's numbers

Revision ID: 0007_portal_receipts
Revises: 0003
Create Date: 2026-12-02 08:10:00

A card photo counts towards "Send for review" only once the customer has covered its
numbers (painted on the device, painted on the server's preview, or declared covered by
hand); `pending` marks a HEIC or PDF card photo still waiting to be painted over.
`round` is the case's resubmission count at upload: a resubmission needs new-round uploads.
"""

from alembic import op
import sqlalchemy as sa


revision = "0007_portal_receipts"
down_revision = "0006_linked_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): both databases do it in place.
    op.add_column("documents", sa.Column("cover", sa.String(length=12), nullable=True))
    op.add_column(
        "documents", sa.Column("round", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )


def downgrade() -> None:
    op.drop_column("documents", "round")
    op.drop_column("documents", "cover")
