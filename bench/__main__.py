"""Every benchmark in one run, with a summary table: `python -m bench` (or `make bench`).

    python -m bench [--database-url postgresql+psycopg://…/test] [--quick]

SQLite always; PostgreSQL too when a server is named (here or in VERIFIER_BENCH_DATABASE_URL:
each benchmark makes a fresh database on it and drops it after). `--quick` runs smaller
sizes, to check that the benchmarks work, not to measure. Exits 1 when any goal is missed.
"""

from __future__ import annotations

import argparse
import os

from bench import cardmask, history, intake, intake_purge, memory, pages, purge, rules, upload
from bench.common import Result


def summary(results: list[Result]) -> str:
    lines = ["", "| benchmark | figure | floor | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio_is_cost else f"{r.ratio:.0%}"
        met = "yes" if r.met else "NO"
        lines.append(f"| {r.name} | {r.figure} | {r.floor} | {ratio} | {r.goal} | {met} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("VERIFIER_BENCH_DATABASE_URL"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    results = [
        *intake.run(3 if quick else 10, args.database_url),
        *pages.run([10_000, 100_000] if quick else [100_000, 1_000_000], args.database_url),
        *history.run(100_000 if quick else 1_000_000, args.database_url),
        *rules.run(100_000 if quick else 1_000_000, args.database_url),
        *purge.run(10_000 if quick else 100_000, args.database_url),
        *intake_purge.run(10_000 if quick else 100_000, 3 if quick else 8, args.database_url),
        *cardmask.run(*((30, 10, 20) if quick else (200, 40, 100))),
        upload.run(3 if quick else 8),
        memory.run(4 if quick else 8),
    ]
    for result in results[-2:]:
        result.report()
    print(summary(results))
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
