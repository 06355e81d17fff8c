"""Linked history and queue search at a shop's volume (1M orders), on SQLite and PostgreSQL.

    python -m bench.history [--orders 1000000] [--database-url postgresql+psycopg://…]

Seeds with bench.seed (every order with its link keys: a card shared by 25 orders, an
address by 20, a device by 5, an IP address by 10, a phone by 2, one address key hot in
none), then times, as the median of RUNS: a case's linked history (the case page's
statement), the rejection hints of a 50-row queue page, and queue searches (a surname that
an eighth of all orders carry, a part of an order number, a whole email). The floor is one
indexed look-up of the same order by its card key. Goals: history and hints under 20 ms,
each search under 50 ms.
"""

from __future__ import annotations

import argparse
import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.common import Result, databases, median_ms, workdir
from bench.seed import seed
from verifier.db import make_engine
from verifier.models import Order, VerificationCase
from verifier.review.history import linked_history, rejection_hints
from verifier.review.search import match_orders

HISTORY_GOAL_MS = 20.0
SEARCH_GOAL_MS = 50.0
RUNS = 21


def measure(url: str) -> dict[str, tuple[float, float, str]]:
    engine = make_engine(url, immediate=False)
    out: dict[str, tuple[float, float, str]] = {}
    with Session(engine) as session:
        case = session.scalars(
            select(VerificationCase).where(VerificationCase.status == "in_review")
            .order_by(VerificationCase.id).offset(500).limit(1)
        ).one()  # fmt: skip
        order = case.order
        page_ids = list(
            session.scalars(
                select(VerificationCase.order_id).where(VerificationCase.status == "in_review")
                .order_by(VerificationCase.created_at, VerificationCase.id).limit(50)
            )
        )  # fmt: skip

        def floor() -> object:
            return session.scalars(
                select(Order.id).where(Order.card_key == order.card_key).limit(1)
            ).all()

        floor_ms = median_ms(floor, RUNS)
        history = linked_history(session, order)
        out["linked history"] = (
            median_ms(lambda: linked_history(session, order), RUNS), floor_ms,
            f"{history.total} linked orders",
        )  # fmt: skip
        hints = rejection_hints(session, page_ids)
        out["queue hints (50 rows)"] = (
            median_ms(lambda: rejection_hints(session, page_ids), RUNS), floor_ms,
            f"{len(hints)} rows with a hint",
        )  # fmt: skip
        for term in ("murphy", order.external_id[-6:], order.customer_email):
            found = match_orders(session, term)
            assert found.order_ids, term
            out[f"search {term!r}"] = (
                median_ms(lambda t=term: match_orders(session, t), RUNS), floor_ms,
                f"{len(found.order_ids)}{'+' if found.more else ''} matches",
            )  # fmt: skip
    engine.dispose()
    return out


def run(orders: int, postgres_url: str | None) -> list[Result]:
    results = []
    for database, url in databases(postgres_url):
        with workdir() as work:
            target = url or f"sqlite:///{work / 'bench.db'}"
            seconds = seed(target, orders)
            print(f"{database}: seeded {orders:,} orders in {seconds:.0f} s", flush=True)
            for name, (ms, floor_ms, note) in measure(target).items():
                goal = SEARCH_GOAL_MS if name.startswith("search") else HISTORY_GOAL_MS
                result = Result(
                    f"{name} on {database} at {orders:,}", f"median {ms:.2f} ms ({note})",
                    f"one key look-up {floor_ms:.2f} ms", ms / floor_ms, f"< {goal:.0f} ms",
                    ms < goal, ratio_is_cost=True,
                )  # fmt: skip
                result.report()
                results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("VERIFIER_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    return 0 if all(r.met for r in run(args.orders, args.database_url)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
