"""the reviewer's workbench: why a document was erased, when a claim began, settled QA disagreements

Revision ID: 0011_desk_workbench
Revises: 0010_rejected_links
Create Date: 2026-12-02 14:40:00

`documents.erase_reason` says what caused an early erasure (a visible security code or card
number, or the customer's request), so the case page labels it truthfully. `claimed_at`
measures a reviewer's time per case. A quality re-review that disagrees waits for an admin
until `resolved_at` is set.
"""

from alembic import op
import sqlalchemy as sa
import verifier.models


revision = "0011_desk_workbench"
down_revision = "0010_rejected_links"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("erase_reason", sa.String(length=32), nullable=True))
    op.add_column("verification_cases", sa.Column("claimed_at", verifier.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column("quality_reviews", sa.Column("resolved_at", verifier.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column("quality_reviews", sa.Column("resolution", sa.String(length=20), nullable=True))
    op.add_column("quality_reviews", sa.Column("resolution_note", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its reference in place; Alembic would copy the table.
        op.execute(
            "ALTER TABLE quality_reviews ADD COLUMN resolved_by_id INTEGER "
            "CONSTRAINT fk_quality_reviews_resolved_by_id_staff_users "
            "REFERENCES staff_users (id)"
        )
    else:
        op.add_column("quality_reviews", sa.Column("resolved_by_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_quality_reviews_resolved_by_id_staff_users", "quality_reviews", "staff_users",
            ["resolved_by_id"], ["id"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("quality_reviews") as batch:  # SQLite cannot drop a reference
            batch.drop_column("resolved_by_id")
    else:
        op.drop_constraint(
            "fk_quality_reviews_resolved_by_id_staff_users", "quality_reviews", type_="foreignkey"
        )
        op.drop_column("quality_reviews", "resolved_by_id")
    op.drop_column("quality_reviews", "resolution_note")
    op.drop_column("quality_reviews", "resolution")
    op.drop_column("quality_reviews", "resolved_at")
    op.drop_column("verification_cases", "claimed_at")
    op.drop_column("documents", "erase_reason")
