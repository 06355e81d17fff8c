"""Fast seeding for the benchmarks: a shop's year of orders, on SQLite or PostgreSQL.

    python -m bench.seed --database-url URL [--orders 1000000]

Migrates the database, then loads `orders` orders over the 365 days before `NOW`, each with
its sampling decision; a tenth are flagged and have a case, half of those still open (in
review, awaiting documents, resubmission requested), the rest ended. Bulk paths only:
executemany in one transaction on SQLite, COPY on PostgreSQL; secondary indexes are built
after the load on SQLite. The rollups fill themselves: the database's triggers count every row.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from verifier.core.linkkeys import link_keys
from verifier.db import make_engine, migrate

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=365)
BATCH = 50_000
FLAG_EVERY = 10  # one order in ten has a case
# Case states by position among the cases: half open, half ended.
STATES = (["in_review"] * 8 + ["awaiting_documents"] * 1 + ["resubmission_requested"] * 1
          + ["approved"] * 7 + ["rejected"] * 2 + ["expired"] * 1)  # fmt: skip
OPEN = {"in_review", "awaiting_documents", "resubmission_requested"}
ADDRESS = {"line1": "1 High Street", "city": "London", "postcode": "SW1A 1AA", "country": "GB"}
SURNAMES = ["Meyer", "Murphy", "Okafor", "Silva", "Novak", "Tanaka", "Dubois", "Rossi"]

ORDER_COLUMNS = ("id", "external_id", "payload_hash", "source",
                 "placed_at", "amount_minor", "currency", "customer_name", "customer_email",
                 "billing_address", "shipping_address", "card_brand", "card_last4",
                 "cardholder_name", "created_at", "customer_phone", "ip_address", "device_id",
                 "email_key", "card_key", "billing_key", "shipping_key",
                 "phone_key")  # fmt: skip
DECISION_COLUMNS = ("id", "order_id", "policy_id", "flagged", "reason", "rules_matched", "draw",
                    "rate_bp", "created_at")  # fmt: skip
CASE_COLUMNS = ("id", "order_id", "status", "reason", "created_at", "updated_at",
                "submitted_at", "decided_at", "resubmission_count", "amount_minor")  # fmt: skip


def created_at(i: int, orders: int) -> datetime:
    return NOW - SPAN + SPAN * (i / (orders + 1))


def rows(orders: int, first: int, last: int, sqlite: bool) -> Iterator[tuple[str, tuple]]:
    """("order" | "decision" | "case", row) for orders first..last, in insert order."""
    for i in range(first, last + 1):
        at = created_at(i, orders)
        when = at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at
        name = f"Alex {SURNAMES[i % len(SURNAMES)]}"
        external = f"WEB-{i:07d}"
        # Linked history: a card shared by 25 orders, an address by 20, a device by 5, an IP
        # by 10, a phone (every other order has one) by 2; the email is the order's own.
        place = ADDRESS | {"line1": f"{i % 50_000} High Street"}
        email, last4 = f"customer{i}@example.com", f"{i % 10000:04d}"
        phone = f"+44 20 {i % 500_000:07d}" if i % 2 else None
        keys = link_keys(
            email=email,
            card_brand="visa",
            card_last4=last4,
            cardholder_name=name,
            billing_address=place,
            shipping_address=place,
            phone=phone,
        )
        address = json.dumps(place)
        yield "order", (i, external, "0" * 64, "api", when, 1000 + i % 90000,
                        "EUR", name, email, address, address, "visa", last4, name, when, phone,
                        f"10.{i % 100_000 >> 16}.{i % 100_000 >> 8 & 255}.{i & 255}",
                        f"dev-{i % 200_000}", *keys.columns().values())  # fmt: skip
        flagged = i % FLAG_EVERY == 0
        reason = ("random" if i % 30 else "amount_threshold") if flagged else "not_selected"
        yield "decision", (i, i, 1, flagged, reason, "[]", i % 10000, 500, when)
        if flagged:
            case_no = i // FLAG_EVERY
            state = STATES[case_no % len(STATES)]
            submitted = at + timedelta(hours=2)
            decided = at + timedelta(hours=2 + case_no % 48) if state not in OPEN else None
            ended = decided or at + timedelta(days=7)
            updated = ended if state not in OPEN else submitted

            def fmt(value: datetime | None) -> object:
                if value is None or not sqlite:
                    return value
                return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

            yield "case", (case_no, i, state, reason, when, fmt(updated),
                           fmt(submitted) if state != "awaiting_documents" else None,
                           fmt(decided if state in ("approved", "rejected") else None),
                           1 if state == "resubmission_requested" else 0,
                           1000 + i % 90000)  # fmt: skip


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def seed_sqlite(engine: Engine, orders: int) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA cache_size=-262144")
        tables = ("orders", "sampling_decisions", "verification_cases")
        indexes = cur.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            f" AND tbl_name IN {tables}"
        ).fetchall()
        for name, _sql in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        # The search table is filled once at the end ('rebuild'), not row by row.
        search_triggers = cur.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            " AND name LIKE 'orders_search_%'"
        ).fetchall()
        for name, _sql in search_triggers:
            cur.execute(f'DROP TRIGGER "{name}"')
        cur.execute("BEGIN")
        sql = {
            "order": _insert_sql("orders", ORDER_COLUMNS),
            "decision": _insert_sql("sampling_decisions", DECISION_COLUMNS),
            "case": _insert_sql("verification_cases", CASE_COLUMNS),
        }
        for first in range(1, orders + 1, BATCH):
            batch: dict[str, list[tuple]] = {"order": [], "decision": [], "case": []}
            for kind, row in rows(orders, first, min(first + BATCH - 1, orders), sqlite=True):
                batch[kind].append(row)
            for kind in ("order", "decision", "case"):
                cur.executemany(sql[kind], batch[kind])
        cur.execute("COMMIT")
        for _name, sql_text in indexes:
            cur.execute(sql_text)
        cur.execute("INSERT INTO orders_search (orders_search) VALUES ('rebuild')")
        for _name, sql_text in search_triggers:
            cur.execute(sql_text)
        cur.execute("ANALYZE")
    finally:
        raw.close()


def seed_postgres(engine: Engine, orders: int) -> None:
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            targets = {
                "order": ("orders", ORDER_COLUMNS),
                "decision": ("sampling_decisions", DECISION_COLUMNS),
                "case": ("verification_cases", CASE_COLUMNS),
            }
            for kind, (table, columns) in targets.items():
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for got, row in rows(orders, 1, orders, sqlite=False):
                        if got == kind:
                            copy.write_row(row)
            for table in ("orders", "sampling_decisions", "verification_cases",
                          "sampling_policies"):  # fmt: skip
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))"
                )
        conn.commit()
        with conn.cursor() as cur:
            conn.autocommit = True
            cur.execute("VACUUM ANALYZE")
    finally:
        raw.close()


def seed(database_url: str, orders: int) -> float:
    """Migrate and fill `database_url` with `orders` orders; returns the seconds it took."""
    began = time.perf_counter()
    migrate(database_url)
    engine = make_engine(database_url, immediate=False)
    with Session(engine) as session:
        if session.scalar(text("SELECT count(*) FROM sampling_policies")):
            raise SystemExit(f"{database_url} already has data: seed wants an empty database")
        session.execute(
            text(
                "INSERT INTO sampling_policies (id, version, rate_bp, rule_country_mismatch,"
                " rule_name_mismatch, settings, created_at, created_by_label, reason)"
                " VALUES (1, 1, 1000, false, false, '{}', :at, 'bench', 'bench seed')"
            ),
            {"at": NOW - SPAN - timedelta(days=1)},
        )
        session.commit()
    if database_url.startswith("sqlite"):
        seed_sqlite(engine, orders)
    else:
        seed_postgres(engine, orders)
    engine.dispose()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--orders", type=int, default=1_000_000)
    args = parser.parse_args()
    seconds = seed(args.database_url, args.orders)
    print(f"seeded {args.orders:,} orders in {seconds:.1f} s")


if __name__ == "__main__":
    main()
