"""login locks per account and address

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:40:00

Five failed passwords lock an account only for the address they came from, so nobody who
knows a staff email can keep that person out; a far higher account-wide count still brakes
an attack spread over many addresses.
"""

from alembic import op
import sqlalchemy as sa
import verifier.models


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_locks",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", verifier.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", verifier.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["staff_users.id"], name=op.f("fk_login_locks_user_id_staff_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "address", name=op.f("pk_login_locks")),
    )
    # Locks taken so far were account-wide at five failures: they end as they would have.


def downgrade() -> None:
    op.drop_table("login_locks")
