"""webhook endpoints, each with its own sealed secret and event filter

Revision ID: 0013_webhook_endpoints
Revises: 0012_outcomes
Create Date: 2026-12-02 14:40:00

`webhook_endpoints` holds the shop's endpoints (secrets sealed under the master key, a
previous secret kept through a rotation's overlap); `webhook_events.endpoint_id` names the
endpoint an outbox row goes to (NULL: the VERIFIER_WEBHOOK_URL bootstrap default, as before).
"""

from alembic import op
import sqlalchemy as sa
import verifier.models


revision = "0013_webhook_endpoints"
down_revision = "0012_outcomes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = verifier.models.UTCDateTime(timezone=True)
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_expires_at", when, nullable=True),
        sa.Column("secret_rotated_at", when, nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", when, nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("deleted_at", when, nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["staff_users.id"],
                                name=op.f("fk_webhook_endpoints_created_by_id_staff_users")),
        sa.ForeignKeyConstraint(["updated_by_id"], ["staff_users.id"],
                                name=op.f("fk_webhook_endpoints_updated_by_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_webhook_events_endpoint_id"), ["endpoint_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_webhook_events_endpoint_id_webhook_endpoints"),
            "webhook_endpoints", ["endpoint_id"], ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_webhook_events_endpoint_id_webhook_endpoints"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_webhook_events_endpoint_id"))
        batch_op.drop_column("endpoint_id")
    op.drop_table("webhook_endpoints")
