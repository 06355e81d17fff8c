"""sampling rules: each policy version holds its ordered rules and currency rates

Revision ID: 0015_rules
Revises: 0014_locale_brand
Create Date: 2026-12-02 15:00:00

An order forced into review by one of the admin's rules carries that rule's name as its
reason, so the daily rollup now counts a decision as rule-flagged when it is flagged and not
at random (the same as before for the three built-in rules, and right for every new one).
"""

from alembic import op
import sqlalchemy as sa


revision = "0015_rules"
down_revision = "0014_locale_brand"
branch_labels = None
depends_on = None

SHARDS = 16
COUNTS = ("received", "flagged_random", "flagged_rule", "repeat_exempt", "approved", "rejected",
          "declined", "expired", "resubmitted")
RULES = ("amount_threshold", "country_mismatch", "cardholder_name_mismatch")


def _values(rule_flag: str, cast: str) -> str:
    values = {
        "received": "1",
        "flagged_random": f"(NEW.reason = 'random'){cast}",
        "flagged_rule": f"({rule_flag}){cast}",
        "repeat_exempt": f"(NEW.reason = 'repeat_customer_exempt'){cast}",
    }
    return ", ".join(values.get(c, "0") for c in COUNTS)


def _sqlite_trigger(rule_flag: str) -> str:
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTS)
    return (
        "CREATE TRIGGER rollup_decision_inserted AFTER INSERT ON sampling_decisions BEGIN "
        f"INSERT INTO daily_counts (day, rate_bp, shard, {', '.join(COUNTS)}) "
        "SELECT (SELECT date(created_at) FROM orders WHERE id = NEW.order_id), NEW.rate_bp, "
        f"NEW.order_id % {SHARDS}, {_values(rule_flag, '')} WHERE 1 "
        f"ON CONFLICT (day, rate_bp, shard) DO UPDATE SET {updates}; END"
    )


def _pg_function(rule_flag: str) -> str:
    updates = ", ".join(f"{c} = daily_counts.{c} + excluded.{c}" for c in COUNTS)
    return (
        "CREATE OR REPLACE FUNCTION rollup_decision_inserted() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO daily_counts (day, rate_bp, shard, {', '.join(COUNTS)}) VALUES ("
        "(SELECT (created_at AT TIME ZONE 'UTC')::date FROM orders WHERE id = NEW.order_id), "
        f"NEW.rate_bp, NEW.order_id % {SHARDS}, {_values(rule_flag, '::int')}) "
        f"ON CONFLICT (day, rate_bp, shard) DO UPDATE SET {updates}; RETURN NULL; END $$"
    )


def _set_trigger(rule_flag: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER rollup_decision_inserted")
        op.execute(_sqlite_trigger(rule_flag))
    else:
        op.execute(_pg_function(rule_flag))


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): both databases do it in place.
    op.add_column(
        "sampling_policies",
        sa.Column("rules", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column(
        "sampling_policies",
        sa.Column("currency_rates", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )
    _set_trigger("NEW.flagged AND NEW.reason <> 'random'")


def downgrade() -> None:
    _set_trigger("NEW.reason IN (" + ", ".join(f"'{r}'" for r in RULES) + ")")
    op.drop_column("sampling_policies", "currency_rates")
    op.drop_column("sampling_policies", "rules")
