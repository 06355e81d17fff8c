"""the audit chain head follows each linked event by a trigger

Revision ID: 0008_audit_chain_trigger
Revises: 0007_portal_receipts
Create Date: 2026-12-02 15:00:00

An INSERT of a linked event (seq set) moves `audit_chain_head` to it when it is at or past
the head: an event inserted with its seq and hash costs no statement of its own for the
head (verifier.core.audit_chain). Events linked by an UPDATE still move the head in Python.
"""

from alembic import op


revision = "0008_audit_chain_trigger"
down_revision = "0007_portal_receipts"
branch_labels = None
depends_on = None

SQLITE_TRIGGER = """
CREATE TRIGGER audit_chain_follow AFTER INSERT ON audit_events
WHEN NEW.seq IS NOT NULL BEGIN
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash
    WHERE id = 1 AND seq <= NEW.seq;
END
"""
PG_FUNCTION = """
CREATE FUNCTION audit_chain_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash
    WHERE id = 1 AND seq <= NEW.seq;
    RETURN NULL;
END $$
"""
PG_TRIGGER = (
    "CREATE TRIGGER audit_chain_follow AFTER INSERT ON audit_events "
    "FOR EACH ROW WHEN (NEW.seq IS NOT NULL) EXECUTE FUNCTION audit_chain_follow()"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_chain_follow ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_chain_follow()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_chain_follow")
