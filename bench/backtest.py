"""The settings backtest and the dashboard's outcome counts at a shop's volume.

    python -m bench.backtest [--orders 200000] [--database-url URL]

Seeds a year of orders (bench.seed), reports a chargeback on one order in a hundred, then
times the backtest of a draft (a higher rate and the country rule) over 30 days and over the
largest window it accepts, and the dashboard's false-approval query over 30 days.
Measured (2-core host shared with other work): the largest window (MAX_ORDERS orders) in
4.8 s on SQLite and 11.4 s on PostgreSQL; the outcome counts in 8 ms and 22 ms.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.seed import NOW, seed
from verifier.core.settings import Settings
from verifier.db import make_engine
from verifier.insight.stats import Period, bad_outcomes
from verifier.policy.backtest import MAX_ORDERS, backtest_policy

CURRENT = {"rate_bp": 1000, "amount_threshold_minor": None, "rule_country_mismatch": False,
           "rule_name_mismatch": False} | asdict(Settings())  # fmt: skip
DRAFT = CURRENT | {"rate_bp": 2000, "rule_country_mismatch": True}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=MAX_ORDERS)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        took = seed(url, args.orders)
        print(f"seeded {args.orders} orders in {took:.1f} s")
        engine = make_engine(url, immediate=False)
        with Session(engine) as session:
            session.execute(
                text(
                    "INSERT INTO order_outcomes (order_id, outcome, recorded_at)"
                    " SELECT id, 'chargeback', created_at FROM orders WHERE id % 100 = 7"
                )
            )
            session.commit()
            for days in (30, 366):
                began = time.perf_counter()
                result = backtest_policy(session, current=CURRENT, proposed=DRAFT,
                                         start=NOW - timedelta(days=days), end=NOW)  # fmt: skip
                took = time.perf_counter() - began
                per_order = took / max(result.orders, 1) * 1e6
                caught = f"{result.current.caught} -> {result.proposed.caught} of {result.bad}"
                print(f"backtest {days:>3} days: {result.orders} orders in {took:.2f} s "
                      f"({per_order:.1f} µs/order); caught {caught}")  # fmt: skip
            period = Period.ending(NOW.date(), 30)
            runs = []
            for _ in range(15):
                began = time.perf_counter()
                found = bad_outcomes(session, period)
                runs.append(time.perf_counter() - began)
            runs.sort()
            print(f"dashboard bad outcomes (30 days): {runs[len(runs) // 2] * 1000:.1f} ms "
                  f"median, {found.by_status}")  # fmt: skip
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
