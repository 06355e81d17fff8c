"""rejected links: the link keys of every rejected order, kept by triggers

Revision ID: 0010_rejected_links
Revises: 0009_connectors
Create Date: 2026-12-02 15:00:00

A queue row's hint ("2 earlier rejections with this card") counts rejected orders that share
one of the row's link keys. Counting them through the orders table walked every order with
the key; this table holds only the keys of rejected orders (both addresses under "address"),
so a hint is a look-up in a small primary-key range. Triggers keep it in the same transaction
as the change, whichever code path makes it: a case moving into or out of `rejected`, a case
deleted, an order's keys changed (anonymisation clears them).
"""

from alembic import op
import sqlalchemy as sa


revision = "0010_rejected_links"
down_revision = "0009_connectors"
branch_labels = None
depends_on = None

# (kind, the orders column holding that kind's key); both addresses count as "address".
KEYS = (
    ("card", "card_key"),
    ("email", "email_key"),
    ("phone", "phone_key"),
    ("device", "device_id"),
    ("address", "billing_key"),
    ("address", "shipping_key"),
    ("ip", "ip_address"),
)
KEY_COLUMNS = "email_key, card_key, billing_key, shipping_key, phone_key, ip_address, device_id"


def _insert_keys(order_id: str, condition: str = "1 = 1") -> str:
    arms = " UNION ".join(
        f"SELECT CAST('{kind}' AS VARCHAR(8)) AS kind, {column} AS key FROM orders"
        f" WHERE id = {order_id}"
        for kind, column in KEYS
    )
    return (
        f"INSERT INTO rejected_links (kind, key, order_id) SELECT k.kind, k.key, {order_id}"
        f" FROM ({arms}) AS k WHERE k.key IS NOT NULL AND {condition} ON CONFLICT DO NOTHING"
    )


def _still_rejected(order_id: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM verification_cases WHERE order_id = {order_id}"
        " AND status = 'rejected')"
    )


def _sqlite_triggers() -> list[str]:
    return [
        "CREATE TRIGGER rejected_links_case_inserted AFTER INSERT ON verification_cases "
        f"WHEN NEW.status = 'rejected' BEGIN {_insert_keys('NEW.order_id')}; END",
        "CREATE TRIGGER rejected_links_case_moved AFTER UPDATE OF status ON verification_cases "
        "WHEN (NEW.status = 'rejected') <> (OLD.status = 'rejected') BEGIN "
        "DELETE FROM rejected_links WHERE order_id = NEW.order_id; "
        + _insert_keys("NEW.order_id", "NEW.status = 'rejected'")
        + "; END",
        "CREATE TRIGGER rejected_links_case_deleted AFTER DELETE ON verification_cases "
        "WHEN OLD.status = 'rejected' BEGIN "
        "DELETE FROM rejected_links WHERE order_id = OLD.order_id; END",
        f"CREATE TRIGGER rejected_links_order_keys AFTER UPDATE OF {KEY_COLUMNS} ON orders "
        "BEGIN DELETE FROM rejected_links WHERE order_id = NEW.id; "
        f"{_insert_keys('NEW.id', _still_rejected('NEW.id'))}; END",
    ]


def _pg_triggers() -> list[str]:
    return [
        "CREATE FUNCTION rejected_links_case() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP = 'DELETE' THEN "
        "IF OLD.status = 'rejected' THEN "
        "DELETE FROM rejected_links WHERE order_id = OLD.order_id; END IF; RETURN NULL; "
        "END IF; "
        "IF TG_OP = 'UPDATE' THEN "
        "IF (OLD.status = 'rejected') = (NEW.status = 'rejected') THEN RETURN NULL; END IF; "
        "DELETE FROM rejected_links WHERE order_id = NEW.order_id; END IF; "
        f"IF NEW.status = 'rejected' THEN {_insert_keys('NEW.order_id')}; END IF; "
        "RETURN NULL; END $$",
        "CREATE FUNCTION rejected_links_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "DELETE FROM rejected_links WHERE order_id = NEW.id; "
        f"{_insert_keys('NEW.id', _still_rejected('NEW.id'))}; RETURN NULL; END $$",
        "CREATE TRIGGER rejected_links_case AFTER INSERT OR UPDATE OF status OR DELETE "
        "ON verification_cases FOR EACH ROW EXECUTE FUNCTION rejected_links_case()",
        f"CREATE TRIGGER rejected_links_order AFTER UPDATE OF {KEY_COLUMNS} ON orders "
        "FOR EACH ROW EXECUTE FUNCTION rejected_links_order()",
    ]


def upgrade() -> None:
    op.create_table(
        "rejected_links",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", "order_id", name=op.f("pk_rejected_links")),
    )
    op.create_index(op.f("ix_rejected_links_order_id"), "rejected_links", ["order_id"])
    # The orders rejected already, before the triggers take over.
    arms = " UNION ".join(
        f"SELECT CAST('{kind}' AS VARCHAR(8)) AS kind, o.{column} AS key, o.id AS order_id"
        " FROM orders o JOIN verification_cases c ON c.order_id = o.id"
        f" WHERE c.status = 'rejected' AND o.{column} IS NOT NULL"
        for kind, column in KEYS
    )
    op.execute(f"INSERT INTO rejected_links (kind, key, order_id) {arms}")
    triggers = _sqlite_triggers() if op.get_bind().dialect.name == "sqlite" else _pg_triggers()
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("case_inserted", "case_moved", "case_deleted", "order_keys"):
            op.execute(f"DROP TRIGGER IF EXISTS rejected_links_{name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS rejected_links_case ON verification_cases")
        op.execute("DROP TRIGGER IF EXISTS rejected_links_order ON orders")
        op.execute("DROP FUNCTION IF EXISTS rejected_links_case()")
        op.execute("DROP FUNCTION IF EXISTS rejected_links_order()")
    op.drop_index(op.f("ix_rejected_links_order_id"), table_name="rejected_links")
    op.drop_table("rejected_links")
