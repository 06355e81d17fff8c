"""A bounded mixed load against the layout `make serve` runs (nginx in front of gunicorn,
scripts/serve.sh), then a check in the database that nothing was lost or doubled.

    python -m bench.loadtest [--seconds 60] [--database-url postgresql+psycopg://…/test]

Clients send orders through the API (half of them twice, as a shop retrying would); a quarter
of the flagged customers complete their case through the portal (link, session, CSRF, a photo
ID and a proof of address as real JPEG photos, then *Send for review*, every third customer
clicking it twice at once). Two reviewers sign in with their passwords and work the queue
(*Next case*, then *Approve* with the checklist answered, every fourth approval double-clicked),
racing each other for the same cases. Reports throughput and p50/p95/p99 per kind, then proves
from the database that every accepted order and upload is stored exactly once, every case sent
for review is in review or decided with one status event for it, every approval is one decision
with one webhook event, every flagged case has one invitation email and every sent case one
receipt, and no final answer was a 5xx. A "busy" answer (429 or 503 with
Retry-After) is a correct answer under deliberate overload: the client waits as told and sends
again (at most 6 times), and only a request still refused after that counts as an error.
PostgreSQL too with --database-url or VERIFIER_LOADTEST_DATABASE_URL (a fresh database is made
on that server). Exits 1 on any loss, double or 5xx.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import io
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image
from sqlalchemy import create_engine, text

from bench.common import BIN, ROOT, app_environment, databases, free_port, order_json, verifier_cli
from bench.upload import multipart


@dataclass
class Kind:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    # "Busy, try again" (429/503 with Retry-After): a correct answer under deliberate overload,
    # which the client retries politely; counted apart from errors.
    retried: int = 0
    gave_up: int = 0

    def add(self, status: int, ms: float) -> None:
        self.latencies_ms.append(ms)
        if status >= 400 or status == 0:
            self.errors[status] = self.errors.get(status, 0) + 1

    def line(self, name: str, seconds: float) -> str:
        ordered = sorted(self.latencies_ms) or [0.0]

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

        return (
            f"  {name}: {len(self.latencies_ms)} in {seconds:.0f} s "
            f"({len(self.latencies_ms) / seconds:.1f}/s), p50 {pct(50):.0f} ms, "
            f"p95 {pct(95):.0f} ms, p99 {pct(99):.0f} ms, errors {self.errors or 'none'}; "
            f"{self.retried} busy answers retried after Retry-After, {self.gave_up} given up"
        )


def _timed(opener: urllib.request.OpenerDirector, request: urllib.request.Request):
    status, body, ms, _ = _timed_with_headers(opener, request)
    return status, body, ms


def _timed_with_headers(opener: urllib.request.OpenerDirector, request: urllib.request.Request):
    """Send; (status, body, milliseconds, headers), a refused connection as status 0."""
    began = time.perf_counter()
    headers: dict[str, str] = {}
    try:
        response = opener.open(request, timeout=60)
        body, status, headers = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        body, status, headers = error.read(), error.code, dict(error.headers)
    except OSError:
        body, status = b"", 0
    return status, body, (time.perf_counter() - began) * 1000, headers


# A polite client waits as told, at most this many times for one request.
RETRIES = 6


def _polite(kind: Kind, opener: urllib.request.OpenerDirector,
            make: Callable[[], urllib.request.Request]) -> tuple[int, bytes]:  # fmt: skip
    status, body, _ = _polite_with_headers(kind, opener, make)
    return status, body


def _polite_with_headers(kind: Kind, opener: urllib.request.OpenerDirector,
                         make: Callable[[], urllib.request.Request]):  # fmt: skip
    """Send, and after a "busy" answer (429 or 503 with Retry-After) wait and send again; only
    the final answer is counted, an error if it is still busy. (status, body, headers)."""
    for attempt in range(RETRIES + 1):
        status, body, ms, headers = _timed_with_headers(opener, make())
        retry_after = headers.get("Retry-After")
        busy = status in (429, 503) and retry_after is not None
        if not busy:
            kind.add(status, ms)
            return status, body, headers
        if attempt == RETRIES:
            kind.gave_up += 1
            kind.add(status, ms)
            return status, body, headers
        kind.retried += 1
        time.sleep(min(float(retry_after), 10.0))
    raise AssertionError("unreachable")


REVIEWERS = ("r1@load.test", "r2@load.test")
REVIEWER_PASSWORD = "load-reviewer-password-1"
CSRF = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')
CASE_URL = re.compile(r"/review/cases/(\d+)$")
# The checklist of a case sent with a photo ID and a proof of address (no card in it).
CHECKLIST = {
    "card_name_matches": "not_applicable", "card_last4_matches": "not_applicable",
    "id_name_matches": "yes", "id_not_expired": "yes", "address_matches_and_recent": "yes",
}  # fmt: skip


def _form(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def _post(url: str, fields: dict[str, str]) -> Callable[[], urllib.request.Request]:
    return lambda: urllib.request.Request(url, data=_form(fields), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip


def _at_once(*calls: Callable[[], object]) -> None:
    """Run the calls at the same instant (a double click), each on its own thread."""
    threads = [threading.Thread(target=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 303 is the answer itself
        return None


def _session() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect()
    )


def _photo() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((1600, 1000), 60).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


@dataclass
class Tally:
    """What the clients were told, to check against the database afterwards."""

    accepted: list[str] = field(default_factory=list)
    stored_uploads: int = 0
    sent_cases: set[int] = field(default_factory=set)
    approved_cases: set[int] = field(default_factory=set)
    flagged_cases: set[int] = field(default_factory=set)
    crashed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_one(
    label: str, database_url: str | None, seconds: float, clients: int, visit_every: int = 4
) -> tuple[bool, Tally]:
    """One timed run and its check: (passed, what the clients were told)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="verifier-load-") as tmp:
        port = free_port()
        env = app_environment(Path(tmp), port, database_url)
        env |= {"BIN": str(BIN), "PORT": str(port), "GUNICORN_ARGS": "--access-logfile /dev/null",
                # Events queue for a receiver that is not running: the check counts the rows.
                "VERIFIER_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hook"}  # fmt: skip
        verifier_cli(env, "migrate")
        verifier_cli(env, "set-rate", "50", "--reason", "loadtest")
        key = verifier_cli(env, "create-api-key", "load").strip().splitlines()[-1]
        for email in REVIEWERS:
            subprocess.run([str(BIN / "verifier"), "create-user", email, "--role", "reviewer",
                            "--password-stdin"], input=REVIEWER_PASSWORD, env=env, check=True,
                           capture_output=True, text=True)  # fmt: skip
        server = subprocess.Popen(
            [str(ROOT / "scripts" / "serve.sh")], env=env, cwd=ROOT, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        api = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        photo = _photo()
        orders, uploads, sends, reviews = Kind(), Kind(), Kind(), Kind()
        tally = Tally()
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "/readyz", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("serve.sh did not start") from None
                    time.sleep(0.3)
            ends = time.monotonic() + seconds
            customers_done = threading.Event()

            def client(index: int) -> None:
                plain = urllib.request.build_opener()
                n = 0
                while time.monotonic() < ends:
                    n += 1
                    external_id = f"LOAD-{index}-{n}"
                    payload = order_json(external_id)
                    for _ in range(2 if n % 2 else 1):  # a retried send must not double
                        status, body = _polite(orders, plain, lambda p=payload: (
                            urllib.request.Request(base + "/api/v1/orders", data=p,
                                                   method="POST", headers=api)
                        ))  # fmt: skip
                    if status in (200, 201):
                        case = json.loads(body).get("case") or {}
                        with tally.lock:
                            tally.accepted.append(external_id)
                            if case:
                                tally.flagged_cases.add(case["id"])
                        if case.get("upload_url") and index % visit_every == 0:
                            _complete(case["upload_url"], case["id"], twice=n % 3 == 0)

            def _complete(link: str, case_id: int, *, twice: bool) -> None:
                """A customer's whole visit: open the link, upload two documents, send."""
                opener = urllib.request.build_opener(
                    urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
                )
                status, page, _ = _timed(opener, urllib.request.Request(link))
                found = CSRF.search(page)
                if status != 200 or not found:
                    uploads.add(status or 599, 0.0)
                    return
                token = found.group(1).decode()
                for slot in ("photo_id", "proof_of_address"):
                    body, ctype = multipart({"csrf_token": token}, photo)
                    status, _ = _polite(uploads, opener, lambda b=body, c=ctype, k=slot: (
                        urllib.request.Request(base + f"/portal/documents/{k}", data=b,
                                               method="POST",
                                               headers={"Content-Type": c,
                                                        "Accept": "application/json"})
                    ))  # fmt: skip
                    if status != 201:
                        return
                    with tally.lock:
                        tally.stored_uploads += 1
                send = _post(base + "/portal/submit", {"csrf_token": token})
                answers: list[int] = []

                def press() -> None:
                    answers.append(_polite(sends, opener, send)[0])

                _at_once(press, press) if twice else press()
                if 200 in answers:  # the status page, after the 303
                    with tally.lock:
                        tally.sent_cases.add(case_id)

            def reviewer(email: str) -> None:
                staff = _session()
                _, page, _ = _timed(staff, urllib.request.Request(base + "/staff/login"))
                token = CSRF.search(page).group(1).decode()  # type: ignore[union-attr]
                status, _ = _polite(
                    reviews,
                    staff,
                    _post(
                        base + "/staff/login",
                        {"csrf_token": token, "email": email, "password": REVIEWER_PASSWORD},
                    ),
                )
                if status != 302:
                    raise RuntimeError(f"{email} could not sign in ({status})")
                # Signing in starts a new session, with a new CSRF token.
                _, page, _ = _timed(staff, urllib.request.Request(base + "/review/"))
                token = CSRF.search(page).group(1).decode()  # type: ignore[union-attr]
                idle_since, n = None, 0
                while True:
                    status, _, headers = _polite_with_headers(
                        reviews, staff, _post(base + "/review/next", {"csrf_token": token})
                    )
                    taken = CASE_URL.search(urllib.parse.urlsplit(headers.get("Location", "")).path)
                    if not taken:
                        # Nothing waiting: stop once the customers are done and the queue stays
                        # empty for 3 s, or 30 s after they are done in any case.
                        idle_since = idle_since or time.monotonic()
                        if customers_done.is_set() and (
                            time.monotonic() - idle_since > 3 or time.monotonic() > ends + 30
                        ):
                            return
                        time.sleep(0.3)
                        continue
                    idle_since, n = None, n + 1
                    case_id = int(taken.group(1))
                    _polite(reviews, staff, lambda c=case_id: urllib.request.Request(
                        f"{base}/review/cases/{c}"))  # fmt: skip
                    approve = _post(f"{base}/review/cases/{case_id}/approve",
                                    {"csrf_token": token, **CHECKLIST})  # fmt: skip
                    answers: list[int] = []

                    def press(a=approve, out=answers) -> None:
                        out.append(_polite(reviews, staff, a)[0])

                    _at_once(press, press) if n % 4 == 0 else press()
                    if 303 in answers:
                        with tally.lock:
                            tally.approved_cases.add(case_id)

            def guarded(work: Callable[..., None], *args: object) -> threading.Thread:
                def run() -> None:
                    try:
                        work(*args)
                    except Exception as exc:  # a client that stops is a failed run
                        with tally.lock:
                            tally.crashed.append(f"{work.__name__}: {exc!r}")

                return threading.Thread(target=run)

            customers = [guarded(client, i) for i in range(clients)]
            staff = [guarded(reviewer, e) for e in REVIEWERS]
            began = time.monotonic()
            for t in customers + staff:
                t.start()
            for t in customers:
                t.join()
            customers_done.set()
            for t in staff:
                t.join()
            elapsed = time.monotonic() - began
        finally:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(timeout=60)
        url = database_url or f"sqlite:///{env['VERIFIER_INSTANCE_DIR']}/verifier.db"
        problems = _check(url, tally)
        server_errors = sum(
            c for k in (orders, uploads, sends, reviews) for s, c in k.errors.items() if s >= 500
        )
        print(f"loadtest on {label}: {clients} customers and {len(REVIEWERS)} reviewers "
              f"for {elapsed:.0f} s through nginx + gunicorn")  # fmt: skip
        print(orders.line("orders (API, half sent twice)", elapsed))
        print(uploads.line("uploads (portal, 1.6 MP JPEG, two per case)", elapsed))
        print(sends.line("sends for review (every third clicked twice)", elapsed))
        print(reviews.line("reviewer requests (next, case page, approve)", elapsed))
        print(
            f"  check: {len(tally.accepted)} accepted orders, {len(tally.flagged_cases)} cases, "
            f"{tally.stored_uploads} accepted uploads, {len(tally.sent_cases)} cases sent, "
            f"{len(tally.approved_cases)} approved; {server_errors} 5xx; "
            + ("; ".join(problems) if problems else "nothing lost or doubled")
        )
        # A refusal other than "busy" or a double click's "already done" (409) is a failure too.
        refused = sum(c for k in (uploads, sends, reviews) for s, c in k.errors.items()
                      if 400 <= s < 500 and s not in (409, 429))  # fmt: skip
        if refused:
            print(f"  {refused} requests refused with a 4xx other than 409/429")
        return not problems and not server_errors and not refused, tally


def _check(url: str, tally: Tally) -> list[str]:
    """Everything the clients were told, against the database: what is wrong, if anything."""
    with create_engine(url).connect() as conn:
        orders = dict(
            conn.execute(text("SELECT external_id, count(*) FROM orders GROUP BY 1")).all()
        )
        documents = conn.execute(text("SELECT count(*) FROM documents")).scalar_one()
        status = dict(conn.execute(text("SELECT id, status FROM verification_cases")).all())
        decided = dict(
            conn.execute(
                text(
                    "SELECT id, decided_by_id FROM verification_cases WHERE decided_at IS NOT NULL"
                )
            ).all()
        )
        emails = list(conn.execute(text("SELECT case_id, kind FROM outbox_emails")))
        payloads = [
            json.loads(p) if isinstance(p, str) else p
            for (p,) in conn.execute(text("SELECT payload FROM webhook_events"))
        ]
    events: dict[tuple[int, str], int] = {}
    for payload in payloads:
        data = payload["data"]
        events[(data["case_id"], data["status"])] = (
            events.get((data["case_id"], data["status"]), 0) + 1
        )
    mails: dict[tuple[int, str], int] = {}
    for case_id, kind in emails:
        mails[(case_id, kind)] = mails.get((case_id, kind), 0) + 1
    problems = [f"a client stopped: {c}" for c in tally.crashed]

    def wrong(what: str, items: list) -> None:
        if items:
            problems.append(f"{len(items)} {what} (e.g. {items[:3]})")

    wrong("orders lost", [e for e in tally.accepted if orders.get(e) != 1])
    wrong("orders doubled", [e for e, c in orders.items() if c != 1])
    if documents != tally.stored_uploads:
        problems.append(f"{documents} documents stored for {tally.stored_uploads} accepted uploads")
    wrong("cases without one invitation email",
          [c for c in tally.flagged_cases if mails.get((c, "invitation")) != 1])  # fmt: skip
    wrong(
        "sent cases not in review or decided",
        [c for c in tally.sent_cases if status.get(c) not in ("in_review", "approved")],
    )
    wrong("sent cases without one 'in review' event and one receipt (case, events, receipts)",
          [(c, events.get((c, "in_review")), mails.get((c, "receipt"))) for c in tally.sent_cases
           if events.get((c, "in_review")) != 1 or mails.get((c, "receipt")) != 1])  # fmt: skip
    wrong("approvals not stored as one decision with one event",
          [c for c in tally.approved_cases
           if status.get(c) != "approved" or c not in decided
           or events.get((c, "approved")) != 1])  # fmt: skip
    wrong(
        "decisions no reviewer was told of", [c for c in decided if c not in tally.approved_cases]
    )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", default=os.environ.get("VERIFIER_LOADTEST_DATABASE_URL"))
    args = parser.parse_args()
    ok = all(
        run_one(label, url, args.seconds, args.clients)[0]
        for label, url in databases(args.database_url)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
