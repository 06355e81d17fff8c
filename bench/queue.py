"""Review queue pagination with a million cases: keyset pages against OFFSET at the same depth.

    python -m bench.queue [--cases 1000000] [--depth 200000]

Builds a throw-away SQLite database with the real schema (Alembic), fills it in bulk, then
times the queue's first page, a deep page by keyset (`list_queue(after=cursor)`), the same
deep page by OFFSET, the per-state counts and a search. Prints the query plans too, so an
index that stops being used shows up here before it shows up in production.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from verifier.core.settings import Settings
from verifier.db import make_engine, migrate
from verifier.models import VerificationCase
from verifier.review.queue import QueueFilters, encode_cursor, list_queue, queue_counts, queue_query

START = datetime(2025, 1, 1, tzinfo=UTC)
BATCH = 50_000
# Share of cases per state, by position: the queue under test (in_review) is the largest.
STATES = ["in_review"] * 4 + ["approved"] * 3 + ["rejected", "awaiting_documents", "expired"]
ADDRESS = json.dumps({"line1": "1 High Street", "city": "London", "country": "GB"})


def _sqlite_time(moment: datetime) -> str:
    # The storage format of SQLAlchemy's SQLite DateTime, which UTCDateTime writes.
    return moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def fill(engine, cases: int) -> float:
    """Insert `cases` orders, each with a case, in batches; return the seconds it took."""
    began = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA cache_size=-262144")  # 256 MB
        # Building the secondary indexes once, after the load, is several times faster than
        # updating them row by row; they are recreated from their own DDL below.
        indexes = cur.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('orders', 'verification_cases')"
        ).fetchall()
        for name, _sql in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute("BEGIN")
        for first in range(1, cases + 1, BATCH):
            ids = range(first, min(first + BATCH, cases + 1))
            orders, rows = [], []
            for i in ids:
                created = _sqlite_time(START + timedelta(seconds=20 * i))
                state = STATES[i % len(STATES)]
                orders.append(
                    (
                        i,
                        f"WEB-{i:07d}",
                        "0" * 64,
                        "api",
                        created,
                        1000 + i % 90000,
                        "EUR",
                        "Alice Meyer",
                        f"customer{i}@example.com",
                        ADDRESS,
                        ADDRESS,
                        "visa",
                        "4242",
                        "Alice Meyer",
                        created,
                    )
                )
                reason = "random" if i % 5 else "amount_threshold"
                rows.append((i, i, state, reason, created, created, created, 0))
            cur.executemany(
                "INSERT INTO orders (id, external_id, payload_hash, source, placed_at,"
                " amount_minor, currency, customer_name, customer_email, billing_address,"
                " shipping_address, card_brand, card_last4, cardholder_name, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                orders,
            )
            cur.executemany(
                "INSERT INTO verification_cases (id, order_id, status, reason, created_at,"
                " updated_at, submitted_at, resubmission_count) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
        cur.execute("COMMIT")
        for _name, sql in indexes:
            cur.execute(sql)
        cur.execute("ANALYZE")
    finally:
        raw.close()
    return time.perf_counter() - began


def timed(fn: Callable[[], object], runs: int = 7) -> tuple[float, object]:
    """Median wall time in milliseconds over `runs`, and the last result."""
    times, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


def plan(session: Session, statement) -> str:
    compiled = statement.compile(session.bind, compile_kwargs={"literal_binds": True})
    rows = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return "; ".join(row[-1] for row in rows)


def run(cases: int, depth: int, workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'bench.db'}"
    migrate(url)
    engine = make_engine(url, immediate=False)
    print(f"Filling {cases:,} orders and cases ...", flush=True)
    print(f"  filled in {fill(engine, cases):.1f} s")

    settings = Settings()
    now = START + timedelta(seconds=20 * (cases + 10))
    filters = QueueFilters(state="in_review")
    with Session(engine) as session:
        in_review = queue_counts(session)["in_review"]
        depth = min(depth, in_review - 60)
        ordered = queue_query(filters).order_by(VerificationCase.created_at, VerificationCase.id)
        # The cursor a reader holds after paging down to `depth` rows.
        last = session.scalars(ordered.offset(depth - 1).limit(1)).one()
        cursor = encode_cursor(last.created_at, last.id)
        session.expunge_all()

        def page(after=None):
            session.expunge_all()
            return list_queue(session, filters=filters, after=after, now=now, settings=settings)

        def offset_page():
            session.expunge_all()
            return session.scalars(ordered.offset(depth).limit(51)).all()

        first_ms, first = timed(page)
        keyset_ms, deep = timed(lambda: page(cursor))
        offset_ms, by_offset = timed(offset_page, runs=3)
        assert [r.case.id for r in deep.rows] == [c.id for c in by_offset[:50]], "pages differ"
        counts_ms, _ = timed(lambda: queue_counts(session), runs=3)
        search_ms, found = timed(
            lambda: list_queue(
                session,
                filters=QueueFilters(state="all", search="web-0004242"),
                now=now,
                settings=settings,
            )
        )

        print(f"  cases in review: {in_review:,}; deep page starts after row {depth:,}")
        print(f"  first page (keyset)           {first_ms:9.2f} ms  ({len(first.rows)} rows)")
        print(f"  deep page  (keyset)           {keyset_ms:9.2f} ms  ({len(deep.rows)} rows)")
        print(f"  deep page  (OFFSET {depth:,})  {offset_ms:9.2f} ms")
        print(f"  counts per state (GROUP BY)   {counts_ms:9.2f} ms")
        print(f"  search 'web-0004242'          {search_ms:9.2f} ms  ({len(found.rows)} rows)")
        print(f"  OFFSET / keyset at that depth: {offset_ms / keyset_ms:,.0f}x slower")
        key = (VerificationCase.created_at, VerificationCase.id)
        keyset_plan = plan(
            session,
            ordered.where(
                text("(verification_cases.created_at, verification_cases.id) > ('2025-01-01', 1)")
            ).limit(51),
        )
        del key
        print(f"  plan, keyset page: {keyset_plan}")
        search_plan = plan(
            session,
            queue_query(QueueFilters(state="all", search="web-0004242"))
            .order_by(VerificationCase.created_at, VerificationCase.id)
            .limit(51),
        )
        print(f"  plan, search:      {search_plan}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--depth", type=int, default=200_000, help="rows before the deep page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verifier-bench-") as tmp:
        run(args.cases, args.depth, Path(tmp))


if __name__ == "__main__":
    main()
