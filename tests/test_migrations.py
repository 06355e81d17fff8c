"""Alembic migrations produce exactly the schema the models describe."""

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from verifier.db import get_engine
from verifier.models import Base

# SQLAlchemy cannot reflect an index on an expression, so the comparison leaves these out
# and the test below checks that the migration made them.
EXPRESSION_INDEXES = {"ix_verification_cases_waiting", "ix_verification_cases_queue_wait"}
# The queue's search index lives outside the models: an FTS5 table (and its shadow tables) on
# SQLite, a pg_trgm GIN index on PostgreSQL.
SEARCH_INDEXES = {"sqlite": "orders_search", "postgresql": "ix_orders_search_trgm"}
# PostgreSQL keeps the searched columns' trigram frequencies (migration 0018).
SEARCH_STATISTICS = {"st_orders_external_id_trgm", "st_orders_email_trgm", "st_orders_name_trgm"}
TRIGGERS = {
    "sqlite": {"rollup_decision_inserted", "rollup_case_inserted", "rollup_case_moved",
               "orders_search_inserted", "orders_search_changed", "orders_search_deleted",
               "rejected_links_case_inserted", "rejected_links_case_moved",
               "rejected_links_case_deleted", "rejected_links_order_keys", "audit_chain_follow",
               "dash_case_inserted", "dash_case_deleted", "dash_case_decided",
               "dash_case_waiting", "dash_case_stratum"},
    "postgresql": {"rollup_decision_inserted", "rollup_case_changed",
                   "audit_events_append_only", "rejected_links_case", "rejected_links_order",
                   "audit_chain_follow", "dash_case_changed"},
}  # fmt: skip


def _not_an_expression_index(obj, name, type_, reflected, compare_to):
    if type_ == "table" and name and name.startswith("orders_search"):
        return False
    return not (type_ == "index" and name in EXPRESSION_INDEXES | {"ix_orders_search_trgm"})


def test_migrated_schema_matches_models(app):
    with get_engine(app).connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _not_an_expression_index}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_the_migration_makes_the_expression_indexes_and_the_rollup_triggers(app):
    engine = get_engine(app)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            indexes = {
                r[0]
                for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
            }
            triggers = {
                r[0]
                for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
            }
            indexes |= {
                r[0]
                for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
            }
        else:
            schema = inspect(conn).default_schema_name
            indexes = {
                r[0]
                for r in conn.execute(
                    text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"), {"s": schema}
                )
            }
            triggers = {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT DISTINCT trigger_name FROM information_schema.triggers"
                        " WHERE trigger_schema = :s"
                    ),
                    {"s": schema},
                )
            }
    assert indexes >= EXPRESSION_INDEXES | {SEARCH_INDEXES[engine.dialect.name]}
    assert triggers == TRIGGERS[engine.dialect.name]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            statistics = {r[0] for r in conn.execute(text("SELECT stxname FROM pg_statistic_ext"))}
        assert statistics >= SEARCH_STATISTICS
