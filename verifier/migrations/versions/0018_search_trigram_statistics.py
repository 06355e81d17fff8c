"""search trigram statistics: how common each trigram of the searched columns is (PostgreSQL)

Revision ID: 0018_search_trigram_statistics
Revises: 0017_dashboard_rollups
Create Date: 2026-12-03 15:00:00

The queue's search asks the pg_trgm GIN index for every trigram of the term, and the index
reads each trigram's posting list: a trigram that most orders share ("com", or a prefix every
customer number has) costs a read of a list that grows with the table, whatever the term
finds. Statistics objects on the trigram arrays of the three searched columns make ANALYZE
(and autovacuum) keep each column's most common trigrams with their frequencies
(pg_stats_ext_exprs), so the search can ask the index for the part of the term made of
uncommon trigrams and check the whole term on the rows found (verifier.review.search). SQLite
searches an FTS5 table, which reads its doclists by seeking, and needs nothing.
"""

from alembic import op
import sqlalchemy as sa

revision = "0018_search_trigram_statistics"
down_revision = "0017_dashboard_rollups"
branch_labels = None
depends_on = None

# statistics object -> the searched expression (as the GIN index of 0006 names it).
STATISTICS = {
    "st_orders_external_id_trgm": "external_id_lower",
    "st_orders_email_trgm": "customer_email",
    "st_orders_name_trgm": "lower(customer_name)",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().scalar(
        sa.text(
            "SELECT n.nspname FROM pg_extension e"
            " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
        )
    )
    for name, expression in STATISTICS.items():
        op.execute(f'CREATE STATISTICS {name} ON ("{schema}".show_trgm({expression})) FROM orders')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in STATISTICS:
        op.execute(f"DROP STATISTICS IF EXISTS {name}")
