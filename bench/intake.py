"""Intake benchmark: `POST /api/v1/orders` under 16 clients, against a bare Flask endpoint that
parses the same body, both under the same gunicorn settings (`make serve`'s 4 x 4), same run.

    python -m bench.intake [--seconds 10] [--database-url postgresql+psycopg://…/test]

Goal: at least 50 % of the floor's rate on each database; p99 under 100 ms on PostgreSQL.
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets

from bench.common import (
    Result,
    app_environment,
    databases,
    free_port,
    gunicorn,
    order_json,
    peak_memory,
    post_load,
    verifier_cli,
    workdir,
)

CLIENTS = 16
GOAL_RATIO = 0.5
GOAL_P99_MS = 100.0


def measure(database: str, url: str | None, seconds: float) -> Result:
    with workdir() as work:
        port = free_port()
        env = app_environment(work, port, url)
        verifier_cli(env, "migrate")
        key = verifier_cli(env, "create-api-key", "bench").strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        run_id = secrets.token_hex(3)
        counter = itertools.count()

        def body(client: int, n: int) -> bytes:
            return order_json(f"B{run_id}-{client}-{n}-{next(counter)}")

        with gunicorn("wsgi:app", env, port) as server:
            post_load(port, "/api/v1/orders", body, headers, clients=CLIENTS, seconds=1)
            with peak_memory(server.pid) as peak:
                real = post_load(port, "/api/v1/orders", body, headers, clients=CLIENTS,
                                 seconds=seconds)  # fmt: skip
            peak_mb = peak()
        floor_port = free_port()
        with gunicorn("bench.floor_app:app", env, floor_port):
            post_load(floor_port, "/api/v1/orders", body, headers, clients=CLIENTS, seconds=1)
            floor = post_load(floor_port, "/api/v1/orders", body, headers, clients=CLIENTS,
                              seconds=seconds)  # fmt: skip
    ratio = real.rate / floor.rate
    met = ratio >= GOAL_RATIO and real.errors == 0
    goal = f">= {GOAL_RATIO:.0%} of the floor, no errors"
    if database == "PostgreSQL":
        met = met and real.percentile(99) < GOAL_P99_MS
        goal += f", p99 < {GOAL_P99_MS:.0f} ms"
    return Result(f"intake on {database}", real.describe(), floor.describe(), ratio, goal, met,
                  peak_mb)  # fmt: skip


def run(seconds: float, postgres_url: str | None) -> list[Result]:
    results = []
    for database, url in databases(postgres_url):
        print(f"intake on {database}: {CLIENTS} clients, {seconds:.0f} s each", flush=True)
        result = measure(database, url, seconds)
        result.report()
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("VERIFIER_BENCH_DATABASE_URL"),
        help="a PostgreSQL server to measure on too (a fresh database is made)",
    )
    args = parser.parse_args()
    results = run(args.seconds, args.database_url)
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
