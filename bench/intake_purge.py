"""Intake while a large purge runs: `POST /api/v1/orders` under 16 clients with the purge of a
100,000-document backlog running beside it (`verifier purge`, as the worker's purge lane runs
it), against the same intake with nothing else running, same server, same run.

    python -m bench.intake_purge [--documents 100000] [--seconds 8] [--database-url …]

Goal: intake keeps at least 80 % of its rate while the purge runs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets
import subprocess
import time

from bench.common import (
    BIN,
    Result,
    app_environment,
    databases,
    free_port,
    gunicorn,
    order_json,
    post_load,
    verifier_cli,
    workdir,
)
from bench.purge import DOCS_PER_CASE, add_documents
from bench.seed import seed
from verifier.db import make_engine

CLIENTS = 16
GOAL = 0.8


def purged_so_far(url: str) -> int:
    """Documents the running purge has shredded (its count moves with each batch's commit)."""
    engine = make_engine(url, immediate=False)
    try:
        with engine.connect() as conn:
            query = "SELECT documents_purged FROM purge_runs ORDER BY id DESC LIMIT 1"
            return conn.exec_driver_sql(query).scalar() or 0
    finally:
        engine.dispose()


def measure(database: str, url: str | None, documents: int, seconds: float) -> Result:
    with workdir() as work:
        url = url or f"sqlite:///{work / 'bench.db'}"
        port = free_port()
        env = app_environment(work, port, url)
        seed(url, documents // DOCS_PER_CASE * 28 + 1000)
        engine = make_engine(url)
        add_documents(engine, work / "uploads", documents)
        engine.dispose()
        key = verifier_cli(env, "create-api-key", "bench").strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        run_id, counter = secrets.token_hex(3), itertools.count()

        def body(client: int, n: int) -> bytes:
            return order_json(f"P{run_id}-{client}-{n}-{next(counter)}")

        with gunicorn("wsgi:app", env, port):
            post_load(port, "/api/v1/orders", body, headers, clients=CLIENTS, seconds=1)
            alone = post_load(port, "/api/v1/orders", body, headers, clients=CLIENTS,
                              seconds=seconds)  # fmt: skip
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            purge = subprocess.Popen([str(BIN / "verifier"), "purge"], env=env, **quiet)
            began = time.perf_counter()
            try:
                during = post_load(port, "/api/v1/orders", body, headers, clients=CLIENTS,
                                   seconds=seconds)  # fmt: skip
                still_purging = purge.poll() is None
                purged, elapsed = purged_so_far(url), time.perf_counter() - began
            finally:
                purge.wait(timeout=600)
    ratio = during.rate / alone.rate
    notes = [f"the purge meanwhile: {purged:,} documents in {elapsed:.1f} s"
             f" ({purged / elapsed:,.0f}/s, start-up included)"]  # fmt: skip
    if not still_purging:
        notes.append("the purge ended before the measurement did")
    return Result(f"intake during a purge on {database}", during.describe(), alone.describe(),
                  ratio, f">= {GOAL:.0%} of intake alone", ratio >= GOAL and still_purging,
                  notes=notes)  # fmt: skip


def run(documents: int, seconds: float, postgres_url: str | None) -> list[Result]:
    results = []
    for database, url in databases(postgres_url):
        print(f"intake during a purge of {documents:,} documents on {database}", flush=True)
        result = measure(database, url, documents, seconds)
        result.report()
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--database-url", default=os.environ.get("VERIFIER_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    results = run(args.documents, args.seconds, args.database_url)
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
