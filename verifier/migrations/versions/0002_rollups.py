"""rollups: daily counts and case counts kept by triggers; indexes for the dashboard, the queue and the purge

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:00:00

The dashboard and the queue tabs read these instead of counting rows. Triggers keep them in
the same transaction as the change they count, whichever code path makes it (the app, the
CLI, a bulk load), and cost no extra round trip. Counters are spread over SHARDS rows a key,
so concurrent transactions seldom wait on the same row; readers sum the shards.
"""

from alembic import op
import sqlalchemy as sa


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SHARDS = 16
ENDED = ("approved", "rejected", "declined", "expired")
RULES = ("amount_threshold", "country_mismatch", "cardholder_name_mismatch")
COUNTS = ("received", "flagged_random", "flagged_rule", "repeat_exempt", *ENDED, "resubmitted")


def _quoted(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _sqlite_day_upsert(day: str, rate: str, shard: str, values: dict[str, str], where: str) -> str:
    columns = ", ".join(COUNTS)
    selected = ", ".join(values.get(c, "0") for c in COUNTS)
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTS)
    return (
        f"INSERT INTO daily_counts (day, rate_bp, shard, {columns}) "
        f"SELECT {day}, {rate}, {shard}, {selected} WHERE {where} "
        f"ON CONFLICT (day, rate_bp, shard) DO UPDATE SET {updates};"
    )


def _sqlite_case_count(status: str, shard: str, delta: int) -> str:
    return (
        f"INSERT INTO case_counts (status, shard, n) VALUES ({status}, {shard}, {delta}) "
        f"ON CONFLICT (status, shard) DO UPDATE SET n = n + ({delta});"
    )


def _sqlite_triggers() -> list[str]:
    decision_values = {
        "received": "1",
        "flagged_random": "NEW.reason = 'random'",
        "flagged_rule": f"NEW.reason IN ({_quoted(RULES)})",
        "repeat_exempt": "NEW.reason = 'repeat_customer_exempt'",
    }
    ended_values = {s: f"NEW.status = '{s}'" for s in ENDED}
    ended_values["resubmitted"] = "NEW.resubmission_count > 0"
    case_rate = (
        "coalesce((SELECT rate_bp FROM sampling_decisions WHERE order_id = NEW.order_id), 0)"
    )
    ended_day = "date(coalesce(NEW.decided_at, NEW.updated_at))"
    shard = f"NEW.id % {SHARDS}"
    ended = f"NEW.status IN ({_quoted(ENDED)})"
    return [
        "CREATE TRIGGER rollup_decision_inserted AFTER INSERT ON sampling_decisions BEGIN "
        + _sqlite_day_upsert(
            "(SELECT date(created_at) FROM orders WHERE id = NEW.order_id)",
            "NEW.rate_bp",
            f"NEW.order_id % {SHARDS}",
            decision_values,
            "1",
        )
        + " END",
        "CREATE TRIGGER rollup_case_inserted AFTER INSERT ON verification_cases BEGIN "
        + _sqlite_case_count("NEW.status", shard, 1)
        + " "
        + _sqlite_day_upsert(ended_day, case_rate, shard, ended_values, ended)
        + " END",
        "CREATE TRIGGER rollup_case_moved AFTER UPDATE OF status ON verification_cases "
        "WHEN OLD.status <> NEW.status BEGIN "
        + _sqlite_case_count("OLD.status", shard, -1)
        + " "
        + _sqlite_case_count("NEW.status", shard, 1)
        + " "
        + _sqlite_day_upsert(
            ended_day, case_rate, shard, ended_values, f"{ended} AND OLD.status NOT IN "
            f"({_quoted(ENDED)})"
        )
        + " END",
    ]


def _pg_day_upsert(day: str, rate: str, shard: str, values: dict[str, str]) -> str:
    columns = ", ".join(COUNTS)
    selected = ", ".join(values.get(c, "0") for c in COUNTS)
    updates = ", ".join(f"{c} = daily_counts.{c} + excluded.{c}" for c in COUNTS)
    return (
        f"INSERT INTO daily_counts (day, rate_bp, shard, {columns}) "
        f"VALUES ({day}, {rate}, {shard}, {selected}) "
        f"ON CONFLICT (day, rate_bp, shard) DO UPDATE SET {updates};"
    )


def _pg_case_count(status: str, shard: str, delta: int) -> str:
    return (
        f"INSERT INTO case_counts (status, shard, n) VALUES ({status}, {shard}, {delta}) "
        f"ON CONFLICT (status, shard) DO UPDATE SET n = case_counts.n + ({delta});"
    )


def _pg_functions() -> list[str]:
    decision_values = {
        "received": "1",
        "flagged_random": "(NEW.reason = 'random')::int",
        "flagged_rule": f"(NEW.reason IN ({_quoted(RULES)}))::int",
        "repeat_exempt": "(NEW.reason = 'repeat_customer_exempt')::int",
    }
    ended_values = {s: f"(NEW.status = '{s}')::int" for s in ENDED}
    ended_values["resubmitted"] = "(NEW.resubmission_count > 0)::int"
    shard = f"NEW.id % {SHARDS}"
    ended_day = "(coalesce(NEW.decided_at, NEW.updated_at) AT TIME ZONE 'UTC')::date"
    case_rate = (
        "coalesce((SELECT rate_bp FROM sampling_decisions WHERE order_id = NEW.order_id), 0)"
    )
    ended_upsert = _pg_day_upsert(ended_day, case_rate, shard, ended_values)
    return [
        "CREATE FUNCTION rollup_decision_inserted() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        + _pg_day_upsert(
            "(SELECT (created_at AT TIME ZONE 'UTC')::date FROM orders WHERE id = NEW.order_id)",
            "NEW.rate_bp",
            f"NEW.order_id % {SHARDS}",
            decision_values,
        )
        + " RETURN NULL; END $$",
        "CREATE FUNCTION rollup_case_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        "IF TG_OP = 'UPDATE' THEN "
        "IF OLD.status = NEW.status THEN RETURN NULL; END IF; "
        + _pg_case_count("OLD.status", shard, -1)
        + " END IF; "
        + _pg_case_count("NEW.status", shard, 1)
        + f" IF NEW.status IN ({_quoted(ENDED)}) AND (TG_OP = 'INSERT' OR OLD.status NOT IN "
        f"({_quoted(ENDED)})) THEN "
        + ended_upsert
        + " END IF; RETURN NULL; END $$",
        "CREATE TRIGGER rollup_decision_inserted AFTER INSERT ON sampling_decisions "
        "FOR EACH ROW EXECUTE FUNCTION rollup_decision_inserted()",
        "CREATE TRIGGER rollup_case_changed AFTER INSERT OR UPDATE OF status "
        "ON verification_cases FOR EACH ROW EXECUTE FUNCTION rollup_case_changed()",
    ]


def _backfill(dialect: str) -> list[str]:
    """The counts of the rows already there, before the triggers count new ones."""
    if dialect == "sqlite":
        def day(expr: str) -> str:
            return f"date({expr})"

        def flag(expr: str) -> str:
            return f"({expr})"
    else:
        def day(expr: str) -> str:
            return f"({expr} AT TIME ZONE 'UTC')::date"

        def flag(expr: str) -> str:
            return f"({expr})::int"
    ended_day = day("coalesce(c.decided_at, c.updated_at)")
    ended_sums = ", ".join("sum(" + flag(f"c.status = '{s}'") + ")" for s in ENDED)
    random, exempt = flag("d.reason = 'random'"), flag("d.reason = 'repeat_customer_exempt'")
    ended_updates = ", ".join(
        f"{c} = daily_counts.{c} + excluded.{c}" for c in (*ENDED, "resubmitted")
    )
    return [
        "INSERT INTO case_counts (status, shard, n) "
        f"SELECT status, id % {SHARDS}, count(*) FROM verification_cases "
        f"GROUP BY status, id % {SHARDS}",
        f"INSERT INTO daily_counts (day, rate_bp, shard, {', '.join(COUNTS)}) "
        f"SELECT {day('o.created_at')}, d.rate_bp, d.order_id % {SHARDS}, count(*), "
        f"sum({random}), sum({flag(f'd.reason IN ({_quoted(RULES)})')}), sum({exempt}), "
        "0, 0, 0, 0, 0 "
        "FROM sampling_decisions d JOIN orders o ON o.id = d.order_id "
        f"GROUP BY {day('o.created_at')}, d.rate_bp, d.order_id % {SHARDS}",
        f"INSERT INTO daily_counts (day, rate_bp, shard, {', '.join(COUNTS)}) "
        f"SELECT {ended_day}, coalesce(d.rate_bp, 0), c.id % {SHARDS}, 0, 0, 0, 0, "
        f"{ended_sums}, sum({flag('c.resubmission_count > 0')}) "
        "FROM verification_cases c LEFT JOIN sampling_decisions d ON d.order_id = c.order_id "
        f"WHERE c.status IN ({_quoted(ENDED)}) "
        f"GROUP BY {ended_day}, coalesce(d.rate_bp, 0), c.id % {SHARDS} "
        f"ON CONFLICT (day, rate_bp, shard) DO UPDATE SET {ended_updates}",
    ]


def upgrade() -> None:
    op.create_table(
        "daily_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default="0") for name in COUNTS),
        sa.PrimaryKeyConstraint("day", "rate_bp", "shard", name=op.f("pk_daily_counts")),
    )
    op.create_table(
        "case_counts",
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("status", "shard", name=op.f("pk_case_counts")),
    )
    op.create_index(
        "ix_verification_cases_decided", "verification_cases", ["decided_at"], unique=False
    )
    op.create_index(
        "ix_verification_cases_claimed", "verification_cases", ["claimed_by_id"], unique=False
    )
    op.create_index(
        op.f("ix_quality_reviews_completed_at"), "quality_reviews", ["completed_at"], unique=False
    )
    op.create_index(
        "ix_verification_cases_waiting",
        "verification_cases",
        ["status", sa.text("coalesce(submitted_at, updated_at)")],
        unique=False,
    )
    for name, where in (
        ("ix_documents_keyed", "wrapped_key IS NOT NULL"),
        ("ix_documents_unfinished", "wrapped_key IS NULL AND blob_name IS NOT NULL"),
    ):
        op.create_index(name, "documents", ["id"], unique=False, sqlite_where=sa.text(where),
                        postgresql_where=sa.text(where))  # fmt: skip
    dialect = op.get_bind().dialect.name
    statements = _sqlite_triggers() if dialect == "sqlite" else _pg_functions()
    # The backfill counts what is there; the triggers, created after it, count what comes.
    for statement in _backfill(dialect):
        op.execute(statement)
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("rollup_decision_inserted", "rollup_case_inserted", "rollup_case_moved"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS rollup_decision_inserted ON sampling_decisions")
        op.execute("DROP TRIGGER IF EXISTS rollup_case_changed ON verification_cases")
        op.execute("DROP FUNCTION IF EXISTS rollup_decision_inserted()")
        op.execute("DROP FUNCTION IF EXISTS rollup_case_changed()")
    op.drop_index("ix_documents_unfinished", table_name="documents")
    op.drop_index("ix_documents_keyed", table_name="documents")
    op.drop_index("ix_verification_cases_waiting", table_name="verification_cases")
    op.drop_index("ix_verification_cases_decided", table_name="verification_cases")
    op.drop_index("ix_verification_cases_claimed", table_name="verification_cases")
    op.drop_index(op.f("ix_quality_reviews_completed_at"), table_name="quality_reviews")
    op.drop_table("case_counts")
    op.drop_table("daily_counts")
