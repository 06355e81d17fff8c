"""the audit chain head follows each linked event by a trigger

Revision ID: 0016_audit_chain_trigger
Revises: 0015_rules
Create Date: 2026-12-02 15:00:00

An INSERT of a linked event (seq set) past `audit_chain_head` moves the head to it: an event
inserted with its seq and hash costs no statement of its own for the head
(verifier.core.audit_chain.append_event). Events linked through the session advance the head
first and store its hash themselves, so the trigger leaves them alone. On PostgreSQL the
trigger runs BEFORE the row enters the unique index on seq: every writer takes the head's
row lock before its place in the chain, the same order as the session path, so the two
cannot deadlock; and it also stores the hash of an event at the head's seq when this
transaction advanced the head itself (its xmin), so a writer that lost a race takes the
head with one UPDATE and needs no second one for its hash.
"""

from alembic import op


revision = "0016_audit_chain_trigger"
down_revision = "0015_rules"
branch_labels = None
depends_on = None

SQLITE_TRIGGER = """
CREATE TRIGGER audit_chain_follow AFTER INSERT ON audit_events
WHEN NEW.seq IS NOT NULL BEGIN
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash
    WHERE id = 1 AND seq < NEW.seq;
END
"""
PG_FUNCTION = """
CREATE FUNCTION audit_chain_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash
    WHERE id = 1 AND (seq < NEW.seq
                      OR (seq = NEW.seq AND xmin = pg_current_xact_id()::xid));
    RETURN NEW;
END $$
"""
PG_TRIGGER = (
    "CREATE TRIGGER audit_chain_follow BEFORE INSERT ON audit_events "
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
