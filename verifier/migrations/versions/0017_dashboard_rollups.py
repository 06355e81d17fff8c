"""dashboard rollups: review times, reviewer days, waiting days and the estimate's strata

Revision ID: 0017_dashboard_rollups
Revises: 0016_audit_chain_trigger
Create Date: 2026-12-03 12:00:00

The dashboard read the period's decided cases to rank their review times, to group them per
reviewer, the open cases to find the median wait, and the period's cases to count the
estimate's strata: work that grew with the shop. Triggers now keep four small tables in the
same transaction as the change they count (0002's way), so the dashboard reads a bounded
number of rows whatever the table sizes:

- review_times: decided cases per decision day, from flag or from documents (kind 0 / 1), by
  review time in geometric buckets of ratio 1.1 (bucket b holds [1.1^b, 1.1^(b+1)) seconds,
  -1 under a second): a percentile read from the buckets is within ±5 % of the exact one.
- reviewer_days: per reviewer and decision day, cases decided (approved / rejected) and the
  milliseconds from claim to decision of the timed ones.
- waiting_days: cases in review per day they started waiting (documents in).
- case_strata: cases per day opened, rate and shard, by random sample or rule and by state.

Only case_strata is sharded (by order, onto the same 16 shards as the day's daily_counts row
that the order's decision already locks): it moves with every case opened at intake. The
others move at a reviewer's or a customer's pace, and unsharded they stay few to read. A
case's decision is written before the case (intake does so), as 0002 assumes too.
"""

from alembic import op
import sqlalchemy as sa


revision = "0017_dashboard_rollups"
down_revision = "0016_audit_chain_trigger"
branch_labels = None
depends_on = None

SHARDS = 16
DECIDED = "('approved', 'rejected')"
ENDED = ("approved", "rejected", "declined", "expired")
STRATA = tuple(f"{group}_{state}" for group in ("random", "rule") for state in (*ENDED, "open"))


class Sql:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def day(self, ts: str) -> str:
        return f"(({ts}) AT TIME ZONE 'UTC')::date" if self.pg else f"date({ts})"

    def seconds(self, later: str, earlier: str) -> str:
        if self.pg:
            return f"extract(epoch FROM ({later}) - ({earlier}))"
        return f"((julianday({later}) - julianday({earlier})) * 86400.0)"

    def bucket(self, later: str, earlier: str) -> str:
        s = self.seconds(later, earlier)
        whole = (
            f"floor(ln({s}) / ln(1.1))::int" if self.pg else f"CAST(ln({s}) / ln(1.1) AS INTEGER)"
        )
        return f"CASE WHEN {s} < 1 THEN -1 ELSE {whole} END"

    def ms(self, later: str, earlier: str) -> str:
        s = self.seconds(later, earlier)
        return f"round({s} * 1000)::bigint" if self.pg else f"CAST(round({s} * 1000) AS INTEGER)"

    def flag(self, condition: str) -> str:
        return f"({condition})::int" if self.pg else f"({condition})"


class Rollup:
    """One rollup table: its key and value expressions over a case row `r` ("NEW.", "OLD.",
    "c."), and when that row counts at all."""

    def __init__(self, table: str, keys: list[tuple[str, str]], values: list[tuple[str, str]],
                 where: str, joins: str = "") -> None:  # fmt: skip
        self.table, self.keys, self.values, self.where = table, keys, values, where
        self.joins = joins  # LEFT JOINs that the expressions read (the case's decision)

    def _rendered(self, r: str) -> tuple[list[str], list[str], str]:
        def put(expr: str) -> str:
            return expr.replace("R.", r)

        return ([put(e) for _, e in self.keys], [put(e) for _, e in self.values], put(self.where))

    def upsert(self, r: str, sign: int) -> str:
        """The statement that adds (sign 1) or takes away (-1) the contribution of row `r`."""
        keys, values, where = self._rendered(r)
        names = [k for k, _ in self.keys] + [v for v, _ in self.values]
        selected = keys + [f"({sign}) * ({v})" for v in values]
        updates = ", ".join(f"{v} = {self.table}.{v} + excluded.{v}" for v, _ in self.values)
        source = f" FROM (SELECT 1) AS one {self.joins.replace('R.', r)}" if self.joins else ""
        return (
            f"INSERT INTO {self.table} ({', '.join(names)}) SELECT {', '.join(selected)}{source} "
            f"WHERE {where} ON CONFLICT ({', '.join(k for k, _ in self.keys)}) "
            f"DO UPDATE SET {updates};"
        )

    def backfill(self) -> str:
        keys, values, where = self._rendered("c.")
        names = [k for k, _ in self.keys] + [v for v, _ in self.values]
        sums = [f"sum({v})" for v in values]
        return (
            f"INSERT INTO {self.table} ({', '.join(names)}) "
            f"SELECT {', '.join(keys + sums)} FROM verification_cases c "
            f"{self.joins.replace('R.', 'c.')} WHERE {where} "
            f"GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
        )


def rollups(sql: Sql) -> dict[str, list[Rollup]]:
    """The rollups, by the group of case columns whose change moves them."""
    decided = f"R.status IN {DECIDED} AND R.decided_at IS NOT NULL"
    decided_day = sql.day("R.decided_at")
    # The case's decision, joined once for the strata's sampled flag and rate.
    decision = "LEFT JOIN sampling_decisions d ON d.order_id = R.order_id"
    sampled = "(R.reason = 'random' OR coalesce(d.draw < d.rate_bp, false))"
    states = {"open": f"R.status NOT IN ({', '.join(repr(s) for s in ENDED)})"}
    states |= {s: f"R.status = '{s}'" for s in ENDED}
    strata = []
    for name in STRATA:
        group, state = name.split("_", 1)
        in_group = sampled if group == "random" else f"NOT {sampled}"
        strata.append((name, sql.flag(f"{in_group} AND {states[state]}")))
    return {
        "decided": [
            Rollup("review_times",
                   [("day", decided_day), ("kind", "0"),
                    ("bucket", sql.bucket("R.decided_at", "R.created_at"))],
                   [("n", "1")], decided),
            Rollup("review_times",
                   [("day", decided_day), ("kind", "1"),
                    ("bucket", sql.bucket("R.decided_at", "R.submitted_at"))],
                   [("n", "1")], f"{decided} AND R.submitted_at IS NOT NULL"),
            Rollup("reviewer_days",
                   [("day", decided_day), ("staff_id", "R.decided_by_id")],
                   [("decided", "1"), ("approved", sql.flag("R.status = 'approved'")),
                    ("rejected", sql.flag("R.status = 'rejected'")),
                    ("timed", sql.flag("R.claimed_at IS NOT NULL")),
                    ("claim_ms", f"coalesce({sql.ms('R.decided_at', 'R.claimed_at')}, 0)")],
                   f"{decided} AND R.decided_by_id IS NOT NULL"),
        ],
        "waiting": [
            Rollup("waiting_days", [("day", sql.day("coalesce(R.submitted_at, R.updated_at)"))],
                   [("n", "1")], "R.status = 'in_review'"),
        ],
        "stratum": [
            Rollup("case_strata",
                   [("day", sql.day("R.created_at")),
                    ("rate_bp", "coalesce(d.rate_bp, 0)"),
                    ("shard", f"R.order_id % {SHARDS}")],
                   strata, "1 = 1", decision),
        ],
    }  # fmt: skip


# The case columns each group reads: a change to any of them moves the group's rollups.
COLUMNS = {
    "decided": ("status", "decided_at", "created_at", "submitted_at", "decided_by_id",
                "claimed_at"),
    "waiting": ("status", "submitted_at", "updated_at"),
    "stratum": ("status", "created_at", "reason", "order_id"),
}  # fmt: skip
# When an update leaves a group's rollups as they were, its trigger does nothing.
RELEVANT = {
    "decided": f"(OLD.status IN {DECIDED} OR NEW.status IN {DECIDED})",
    "waiting": "(OLD.status = 'in_review' OR NEW.status = 'in_review')",
    "stratum": "1 = 1",
}
TRIGGERS = {
    "sqlite": ("dash_case_inserted", "dash_case_deleted", "dash_case_decided",
               "dash_case_waiting", "dash_case_stratum"),
    "postgresql": ("dash_case_changed",),
}  # fmt: skip


def _changed(group: str) -> str:
    moved = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COLUMNS[group])
    return f"{RELEVANT[group]} AND ({moved})"


def _sqlite_triggers(groups: dict[str, list[Rollup]]) -> list[str]:
    every = [r for rs in groups.values() for r in rs]
    statements = [
        "CREATE TRIGGER dash_case_inserted AFTER INSERT ON verification_cases BEGIN "
        + " ".join(r.upsert("NEW.", 1) for r in every)
        + " END",
        "CREATE TRIGGER dash_case_deleted AFTER DELETE ON verification_cases BEGIN "
        + " ".join(r.upsert("OLD.", -1) for r in every)
        + " END",
    ]
    for group, rs in groups.items():
        moves = [r.upsert("OLD.", -1) for r in rs] + [r.upsert("NEW.", 1) for r in rs]
        # SQLite spells IS DISTINCT FROM as IS NOT.
        when = _changed(group).replace("IS DISTINCT FROM", "IS NOT")
        statements.append(
            f"CREATE TRIGGER dash_case_{group} AFTER UPDATE OF {', '.join(COLUMNS[group])} "
            f"ON verification_cases WHEN {when} BEGIN {' '.join(moves)} END"
        )
    return statements


def _pg_statements(groups: dict[str, list[Rollup]]) -> list[str]:
    every = [r for rs in groups.values() for r in rs]
    updates = " ".join(
        f"IF {_changed(group)} THEN "
        + " ".join(r.upsert("OLD.", -1) for r in rs)
        + " "
        + " ".join(r.upsert("NEW.", 1) for r in rs)
        + " END IF;"
        for group, rs in groups.items()
    )
    columns = sorted({c for cs in COLUMNS.values() for c in cs})
    return [
        "CREATE FUNCTION dash_case_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP = 'INSERT' THEN " + " ".join(r.upsert("NEW.", 1) for r in every) + " "
        "ELSIF TG_OP = 'DELETE' THEN " + " ".join(r.upsert("OLD.", -1) for r in every) + " "
        f"ELSE {updates} END IF; RETURN NULL; END $$",
        "CREATE TRIGGER dash_case_changed AFTER INSERT OR DELETE OR UPDATE OF "
        f"{', '.join(columns)} ON verification_cases "
        "FOR EACH ROW EXECUTE FUNCTION dash_case_changed()",
    ]


def upgrade() -> None:
    counted = [sa.Column("n", sa.Integer(), nullable=False, server_default="0")]
    op.create_table(
        "review_times",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        *counted,
        sa.PrimaryKeyConstraint("day", "kind", "bucket", name=op.f("pk_review_times")),
    )
    op.create_table(
        "reviewer_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default="0")
          for name in ("decided", "approved", "rejected", "timed")),
        sa.Column("claim_ms", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("day", "staff_id", name=op.f("pk_reviewer_days")),
    )  # fmt: skip
    op.create_table(
        "waiting_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_waiting_days")),
    )
    op.create_table(
        "case_strata",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default="0") for name in STRATA),
        sa.PrimaryKeyConstraint("day", "rate_bp", "shard", name=op.f("pk_case_strata")),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # Buckets need SQLite's math functions (built in by default since 3.35): say so
        # here rather than fail at the first decision.
        op.execute("SELECT ln(2)")
    groups = rollups(Sql(dialect))
    # The backfill counts what is there; the triggers, created after it, count what comes.
    for rs in groups.values():
        for rollup in rs:
            op.execute(rollup.backfill())
    statements = _sqlite_triggers(groups) if dialect == "sqlite" else _pg_statements(groups)
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS["sqlite"]:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS dash_case_changed ON verification_cases")
        op.execute("DROP FUNCTION IF EXISTS dash_case_changed()")
    for table in ("case_strata", "waiting_days", "reviewer_days", "review_times"):
        op.drop_table(table)
