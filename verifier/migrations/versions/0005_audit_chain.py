"""audit chain: each audit event carries the hash of the one before it; PostgreSQL refuses edits

Revision ID: 0005_audit_chain
Revises: 0003
Create Date: 2026-12-02 08:00:00

Existing events are linked in id order (the order they were written in), and the chain head
is set to the last of them. On PostgreSQL a trigger then refuses every DELETE and every UPDATE
of an event, except the one that links a just-written event into the chain at commit.
"""

from alembic import op
import sqlalchemy as sa

from verifier.core.audit_chain import GENESIS, HEAD_ID, event_hash


revision = "0005_audit_chain"
down_revision = "0004_card_masking"
branch_labels = None
depends_on = None

BATCH = 2000

PG_FUNCTION = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_events is append-only: DELETE of event % refused', OLD.id;
    END IF;
    -- The one update allowed: linking an event written earlier in the same transaction.
    IF OLD.seq IS NULL AND OLD.hash IS NULL AND NEW.seq IS NOT NULL
       AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.actor_type = OLD.actor_type
       AND NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id AND NEW.action = OLD.action
       AND NEW.target_type IS NOT DISTINCT FROM OLD.target_type
       AND NEW.target_id IS NOT DISTINCT FROM OLD.target_id
       AND NEW.details::text IS NOT DISTINCT FROM OLD.details::text THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: UPDATE of event % refused', OLD.id;
END $$
"""
PG_TRIGGER = (
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_seq"), ["seq"])
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    seq, prev = _backfill(op.get_bind())
    op.execute(
        sa.text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (:id, :seq, :hash)").bindparams(
            id=HEAD_ID, seq=seq, hash=prev
        )
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)


def _backfill(conn) -> tuple[int, str]:
    """Link the events already there, oldest id first; returns the last (seq, hash)."""
    events = sa.table(
        "audit_events", sa.column("id"), sa.column("at"), sa.column("actor_type"),
        sa.column("actor_id"), sa.column("action"), sa.column("target_type"),
        sa.column("target_id"), sa.column("details"), sa.column("seq"),
        sa.column("prev_hash"), sa.column("hash"),
    )  # fmt: skip
    # Read through the models' column types, so times and details come back as the app sees them.
    from verifier.models import AuditEvent

    seq, prev, after = 0, GENESIS, 0
    while True:
        rows = conn.execute(
            sa.select(
                AuditEvent.id, AuditEvent.at, AuditEvent.actor_type, AuditEvent.actor_id,
                AuditEvent.action, AuditEvent.target_type, AuditEvent.target_id,
                AuditEvent.details,
            ).where(AuditEvent.id > after).order_by(AuditEvent.id).limit(BATCH)
        ).all()  # fmt: skip
        if not rows:
            return seq, prev
        updates = []
        for row in rows:
            seq += 1
            digest = event_hash(row, seq, prev)
            updates.append({"row_id": row.id, "seq": seq, "prev_hash": prev, "hash": digest})
            prev = digest
        conn.execute(
            events.update()
            .where(events.c.id == sa.bindparam("row_id"))
            .values(seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev_hash"),
                    hash=sa.bindparam("hash")),  # fmt: skip
            updates,
        )
        after = rows[-1].id


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_seq"), type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
