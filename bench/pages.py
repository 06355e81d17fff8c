"""Staff pages at a shop's volume: queue, search, case page, next case and dashboard, at 100k
and 1M orders (a tenth flagged, half of those open: 50,000 open cases at 1M), on SQLite and
PostgreSQL.

    python -m bench.pages [--scales 100000,1000000] [--database-url postgresql+psycopg://…]

Each page is requested through the whole app (routing, sign-in, templates) and timed as
the median of its runs; its floor is the page's main query alone, run in the same process
on the same data. Goals: every page's median under 50 ms at the largest scale, and no page
growing more than 1.5x from the smallest to the largest scale beyond the growth of the rows
it shows (the queue's 50 stay 50; the case page lists more linked orders at 1M, where the
seed's cards and addresses are shared by more orders, at most 50): what grows beyond that is
work that scales with the tables. Each page is warmed three times first, at either
scale, and timed as the median of 31 runs: a cold page cache or one slow run is no growth.
The command exits non-zero when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, text

from bench.common import Result, app_environment, databases, median_ms, workdir
from bench.seed import NOW, seed
from verifier import create_app
from verifier.db import new_session
from verifier.models import Order, VerificationCase
from verifier.review.history import linked_history

GOAL_MS = 50.0
GOAL_GROWTH = 1.5
RUNS = 31
WARM = 3
ROW = re.compile(r'aria-label="Select order ')
PASSWORD = "bench-password-" + secrets.token_hex(8)


Page = tuple[str, str, Callable[[object], object]]


def pages(case_id: int, email: str, external_id: str) -> dict[str, Page]:
    """name -> (method, path, floor): the floor runs the page's main query on a session."""

    def queue_floor(session) -> object:
        return session.execute(
            select(VerificationCase, Order)
            .join(Order)
            .where(VerificationCase.status == "in_review")
            .order_by(VerificationCase.created_at, VerificationCase.id)
            .limit(51)
        ).all()

    def search_floor(session) -> object:
        return session.execute(
            select(VerificationCase.id).join(Order).where(Order.customer_email == email).limit(51)
        ).all()

    def case_floor(session) -> object:
        return session.execute(
            select(VerificationCase, Order).join(Order).where(VerificationCase.id == case_id)
        ).one()

    def next_floor(session) -> object:
        return session.scalar(
            select(VerificationCase.id)
            .where(VerificationCase.status == "in_review", VerificationCase.claimed_by_id.is_(None))
            .order_by(VerificationCase.created_at, VerificationCase.id)
            .limit(1)
        )

    def dashboard_floor(session) -> object:
        return session.execute(
            select(VerificationCase.status, text("count(*)"))
            .where(VerificationCase.status.in_(("in_review", "awaiting_documents")))
            .group_by(VerificationCase.status)
        ).all()

    return {
        "queue": ("GET", "/review/", queue_floor),
        "search": ("GET", f"/review/?state=all&q={email.replace('@', '%40')}", search_floor),
        "case page": ("GET", f"/review/cases/{case_id}", case_floor),
        "next case": ("POST", "/review/next", next_floor),
        "dashboard": ("GET", "/admin/dashboard/", dashboard_floor),
    }


def measure(database_url: str, work: Path) -> dict[str, tuple[float, float, int]]:
    """Page name -> (page median ms, floor median ms, rows shown) on a seeded database.

    Rows shown: the queue's and the search's listed cases, the case itself and its linked
    orders on the case page (their number grows with the seed's shared keys), one for the
    others."""
    env = app_environment(work, 5000, database_url)
    app = create_app({"ENVIRON": env, "TESTING": True, "WTF_CSRF_ENABLED": False})
    from verifier.staff.users import create_user

    with app.app_context():
        session = new_session(app)
        for email, role in (("reviewer@bench.test", "reviewer"), ("admin@bench.test", "admin")):
            create_user(session, email, role, PASSWORD, now=NOW, must_change_password=False)
        # The case page shows an in-review case from the middle of the queue.
        case_id = session.scalars(
            select(VerificationCase.id)
            .where(VerificationCase.status == "in_review")
            .order_by(VerificationCase.id)
            .offset(100)
            .limit(1)
        ).one()
        order = session.get(VerificationCase, case_id).order
        email, external_id = order.customer_email, order.external_id
        linked = len(linked_history(session, order).orders)
        session.commit()
        session.close()
    results = {}
    clients = {}
    for login in ("reviewer@bench.test", "admin@bench.test"):
        client = app.test_client()
        answer = client.post("/staff/login", data={"email": login, "password": PASSWORD})
        assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
        clients[login] = client
    for name, (method, path, floor) in pages(case_id, email, external_id).items():
        client = clients["admin@bench.test" if name == "dashboard" else "reviewer@bench.test"]

        def page(client=client, method=method, path=path, name=name) -> str:
            answer = client.open(path, method=method)
            assert answer.status_code in (200, 302, 303), (path, answer.status_code)
            assert "/staff/login" not in answer.headers.get("Location", ""), path
            if answer.status_code == 200 and name == "search":
                body = answer.get_data(as_text=True)
                assert re.search(external_id, body), ("search found nothing", path, body[:3000])
            return answer.get_data(as_text=True)

        for _ in range(WARM):
            body = page()  # warm caches and templates
        shown = {"queue": len(ROW.findall(body)), "search": len(ROW.findall(body)),
                 "case page": 1 + linked}.get(name, 1)  # fmt: skip
        with app.app_context():
            session = new_session(app)
            floor_ms = median_ms(lambda f=floor, s=session: f(s), RUNS)
            session.close()
        results[name] = (median_ms(page, RUNS), floor_ms, shown)
    app.extensions["verifier.engine"].dispose()
    return results


def run(scales: list[int], postgres_url: str | None) -> list[Result]:
    results = []
    for database, url in databases(postgres_url):
        by_scale: dict[int, dict[str, tuple[float, float, int]]] = {}
        for scale in scales:
            with workdir() as work:
                if url is None:
                    target = f"sqlite:///{work / 'bench.db'}"
                    seconds = seed(target, scale)
                    print(f"{database}: seeded {scale:,} orders in {seconds:.0f} s", flush=True)
                    by_scale[scale] = measure(target, work)
                else:
                    from bench.common import fresh_postgres

                    with fresh_postgres(url) as target:
                        seconds = seed(target, scale)
                        print(f"{database}: seeded {scale:,} orders in {seconds:.0f} s",
                              flush=True)  # fmt: skip
                        by_scale[scale] = measure(target, work)
        small, large = by_scale[scales[0]], by_scale[scales[-1]]
        for name in large:
            page_ms, floor_ms, rows = large[name]
            growth = page_ms / small[name][0]
            # The page may grow with the rows it shows, and GOAL_GROWTH beyond that.
            rows_growth = max(1.0, rows / max(1, small[name][2]))
            allowed = GOAL_GROWTH * rows_growth
            met = page_ms < GOAL_MS and growth <= allowed
            result = Result(
                f"{name} on {database} at {scales[-1]:,}",
                f"median {page_ms:.1f} ms ({small[name][0]:.1f} ms at {scales[0]:,}, "
                f"growth {growth:.2f}x; rows {small[name][2]} -> {rows})",
                f"main query {floor_ms:.2f} ms",
                page_ms / floor_ms,
                f"< {GOAL_MS:.0f} ms, growth <= {GOAL_GROWTH:.1f}x the rows' ({allowed:.2f}x)",
                met,
                ratio_is_cost=True,
            )
            result.report()
            results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="100000,1000000")
    parser.add_argument("--database-url", default=os.environ.get("VERIFIER_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    scales = sorted(int(s) for s in args.scales.split(","))
    results = run(scales, args.database_url)
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
