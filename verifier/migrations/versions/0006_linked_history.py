"""linked history and the reviewer's queue: link keys on orders, search indexes, sorts, saved filters

Revision ID: 0006_linked_history
Revises: 0003
Create Date: 2026-12-02 08:00:00

Orders get the optional phone, IP address and device id, and the normalised link keys
(verifier.core.linkkeys) that the review's linked history looks up, each with an index;
existing orders get their keys computed here. The queue searches any part of the order
number, email or name: a pg_trgm GIN index on PostgreSQL, an FTS5 trigram table kept by
triggers on SQLite. Cases carry their order's amount for the amount sort. Reviewers keep
named filters.
"""

from alembic import op
import sqlalchemy as sa

import verifier.models
from verifier.core.linkkeys import link_keys


revision = "0006_linked_history"
down_revision = "0005_audit_chain"
branch_labels = None
depends_on = None

KEY_COLUMNS = ("email_key", "card_key", "billing_key", "shipping_key", "phone_key",
               "ip_address", "device_id")  # fmt: skip
BACKFILL_BATCH = 2000
FOUR_EYES = "proposed_rejection_by_id IS NOT NULL AND status = 'in_review'"
SEARCHED = "external_id, customer_email, customer_name"
SQLITE_SEARCH_TRIGGERS = (
    f"""CREATE TRIGGER orders_search_inserted AFTER INSERT ON orders BEGIN
        INSERT INTO orders_search (rowid, {SEARCHED})
        VALUES (NEW.id, NEW.external_id, NEW.customer_email, NEW.customer_name); END""",
    f"""CREATE TRIGGER orders_search_changed AFTER UPDATE OF {SEARCHED} ON orders BEGIN
        INSERT INTO orders_search (orders_search, rowid, {SEARCHED})
        VALUES ('delete', OLD.id, OLD.external_id, OLD.customer_email, OLD.customer_name);
        INSERT INTO orders_search (rowid, {SEARCHED})
        VALUES (NEW.id, NEW.external_id, NEW.customer_email, NEW.customer_name); END""",
    f"""CREATE TRIGGER orders_search_deleted AFTER DELETE ON orders BEGIN
        INSERT INTO orders_search (orders_search, rowid, {SEARCHED})
        VALUES ('delete', OLD.id, OLD.external_id, OLD.customer_email, OLD.customer_name); END""",
)


def _backfill_keys() -> None:
    orders = sa.table(
        "orders",
        sa.column("id", sa.Integer), sa.column("customer_email", sa.String),
        sa.column("card_brand", sa.String), sa.column("card_last4", sa.String),
        sa.column("cardholder_name", sa.String), sa.column("billing_address", sa.JSON),
        sa.column("shipping_address", sa.JSON), sa.column("anonymised_at", sa.DateTime),
        *(sa.column(name, sa.String) for name in KEY_COLUMNS[:5]),
    )  # fmt: skip
    bind = op.get_bind()
    after = 0
    while True:
        batch = bind.execute(
            sa.select(orders)
            .where(orders.c.id > after, orders.c.anonymised_at.is_(None))
            .order_by(orders.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not batch:
            return
        values = []
        for row in batch:
            keys = link_keys(
                email=row.customer_email, card_brand=row.card_brand, card_last4=row.card_last4,
                cardholder_name=row.cardholder_name, billing_address=row.billing_address or {},
                shipping_address=row.shipping_address or {}, phone=None,
            )  # fmt: skip
            values.append({"order_id": row.id} | keys.columns())
        bind.execute(
            orders.update()
            .where(orders.c.id == sa.bindparam("order_id"))
            .values({name: sa.bindparam(name) for name in KEY_COLUMNS[:5]}),
            values,
        )
        after = batch[-1].id


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("orders", sa.Column("customer_phone", sa.String(length=40), nullable=True))
    op.add_column("orders", sa.Column("ip_address", sa.String(length=45), nullable=True))
    op.add_column("orders", sa.Column("device_id", sa.String(length=100), nullable=True))
    for name in KEY_COLUMNS[:4]:
        op.add_column("orders", sa.Column(name, sa.String(length=32), nullable=True))
    op.add_column("orders", sa.Column("phone_key", sa.String(length=16), nullable=True))
    _backfill_keys()
    for name in KEY_COLUMNS:
        op.create_index(op.f(f"ix_orders_{name}"), "orders", [name, "id"])

    op.add_column(
        "verification_cases",
        sa.Column("amount_minor", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute(
        "UPDATE verification_cases SET amount_minor ="
        " (SELECT amount_minor FROM orders WHERE orders.id = verification_cases.order_id)"
    )
    op.create_index(
        "ix_verification_cases_queue_wait",
        "verification_cases",
        ["status", sa.text("coalesce(submitted_at, created_at)"), "id"],
    )
    op.create_index(
        "ix_verification_cases_amount", "verification_cases", ["status", "amount_minor", "id"]
    )
    op.create_index(
        "ix_verification_cases_four_eyes", "verification_cases", ["created_at", "id"],
        sqlite_where=sa.text(FOUR_EYES), postgresql_where=sa.text(FOUR_EYES),
    )  # fmt: skip

    op.create_table(
        "saved_filters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("query", sa.String(length=1000), nullable=False),
        sa.Column("created_at", verifier.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_users.id"],
            name=op.f("fk_saved_filters_staff_user_id_staff_users"),
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_filters")),
        sa.UniqueConstraint("staff_user_id", "name", name=op.f("uq_saved_filters_staff_user_id")),
    )

    if dialect == "postgresql":
        # In the public schema when it is new: a migration run in a schema of its own (the
        # tests) must not take the extension, and every other schema's index, with it when
        # that schema is dropped. Wherever it lives, the operator class is named with it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        schema = op.get_bind().scalar(
            sa.text(
                "SELECT n.nspname FROM pg_extension e"
                " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
            )
        )
        ops = f'"{schema}".gin_trgm_ops'
        op.execute(
            "CREATE INDEX ix_orders_search_trgm ON orders USING gin"
            f" (external_id_lower {ops}, customer_email {ops}, lower(customer_name) {ops})"
        )
    else:
        op.execute(
            f"CREATE VIRTUAL TABLE orders_search USING fts5({SEARCHED},"
            " content='orders', content_rowid='id', tokenize='trigram')"
        )
        for trigger in SQLITE_SEARCH_TRIGGERS:
            op.execute(trigger)
        op.execute("INSERT INTO orders_search (orders_search) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_orders_search_trgm")
    else:
        for name in ("inserted", "changed", "deleted"):
            op.execute(f"DROP TRIGGER IF EXISTS orders_search_{name}")
        op.execute("DROP TABLE IF EXISTS orders_search")
    op.drop_table("saved_filters")
    for index in ("four_eyes", "amount", "queue_wait"):
        op.drop_index(f"ix_verification_cases_{index}", table_name="verification_cases")
    op.drop_column("verification_cases", "amount_minor")
    for name in KEY_COLUMNS:
        op.drop_index(op.f(f"ix_orders_{name}"), table_name="orders")
    for name in (*KEY_COLUMNS, "customer_phone"):
        op.drop_column("orders", name)
