"""A bounded mixed load against the layout `make serve` runs (nginx in front of gunicorn,
scripts/serve.sh), then a check in the database that nothing was lost or doubled.

    python -m bench.loadtest [--seconds 60] [--database-url postgresql+psycopg://…/test]

Clients send orders through the API (half of them twice, as a shop retrying would) and real
JPEG photos through the portal (link, session, CSRF, upload). Reports throughput and
p50/p95/p99 per kind, then proves every accepted order is stored exactly once, every accepted
upload is stored exactly once, and no final answer was a 5xx. A "busy" answer (429 or 503 with
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
    status, body, ms, _ = _timed_with_retry_after(opener, request)
    return status, body, ms


def _timed_with_retry_after(opener: urllib.request.OpenerDirector, request: urllib.request.Request):
    began = time.perf_counter()
    retry_after = None
    try:
        response = opener.open(request, timeout=60)
        body, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
        retry_after = error.headers.get("Retry-After")
    except OSError:
        body, status = b"", 0
    return status, body, (time.perf_counter() - began) * 1000, retry_after


# A polite client waits as told, at most this many times for one request.
RETRIES = 6


def _polite(kind: Kind, opener: urllib.request.OpenerDirector,
            make: Callable[[], urllib.request.Request]) -> tuple[int, bytes]:  # fmt: skip
    """Send, and after a "busy" answer (429 or 503 with Retry-After) wait and send again; only
    the final answer is counted, an error if it is still busy."""
    for attempt in range(RETRIES + 1):
        status, body, ms, retry_after = _timed_with_retry_after(opener, make())
        busy = status in (429, 503) and retry_after is not None
        if not busy:
            kind.add(status, ms)
            return status, body
        if attempt == RETRIES:
            kind.gave_up += 1
            kind.add(status, ms)
            return status, body
        kind.retried += 1
        time.sleep(min(float(retry_after), 10.0))
    raise AssertionError("unreachable")


def _photo() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((1600, 1000), 60).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def run_one(label: str, database_url: str | None, seconds: float, clients: int) -> bool:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="verifier-load-") as tmp:
        port = free_port()
        env = app_environment(Path(tmp), port, database_url)
        env |= {"BIN": str(BIN), "PORT": str(port), "GUNICORN_ARGS": "--access-logfile /dev/null"}
        verifier_cli(env, "migrate")
        verifier_cli(env, "set-rate", "50", "--reason", "loadtest")
        key = verifier_cli(env, "create-api-key", "load").strip().splitlines()[-1]
        server = subprocess.Popen(
            [str(ROOT / "scripts" / "serve.sh")], env=env, cwd=ROOT, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        api = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        photo = _photo()
        orders, uploads = Kind(), Kind()
        accepted: list[str] = []
        stored_uploads = [0]
        links: list[str] = []
        lock = threading.Lock()
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
                        with lock:
                            accepted.append(external_id)
                        link = (json.loads(body).get("case") or {}).get("upload_url")
                        if link and index % 4 == 0:
                            _upload(link)

            def _upload(link: str) -> None:
                opener = urllib.request.build_opener(
                    urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
                )
                status, page, _ = _timed(opener, urllib.request.Request(link))
                found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
                if status != 200 or not found:
                    uploads.add(status or 599, 0.0)
                    return
                body, ctype = multipart({"csrf_token": found.group(1).decode()}, photo)
                status, _ = _polite(uploads, opener, lambda: urllib.request.Request(
                    base + "/portal/documents/photo_id", data=body, method="POST",
                    headers={"Content-Type": ctype, "Accept": "application/json"},
                ))  # fmt: skip
                if status == 201:
                    with lock:
                        stored_uploads[0] += 1
                        links.append(link)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
            began = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - began
        finally:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(timeout=60)
        url = database_url or f"sqlite:///{env['VERIFIER_INSTANCE_DIR']}/verifier.db"
        with create_engine(url).connect() as conn:
            rows = dict(
                conn.execute(text("SELECT external_id, count(*) FROM orders GROUP BY 1")).all()
            )
            documents = conn.execute(text("SELECT count(*) FROM documents")).scalar_one()
        lost = [e for e in accepted if rows.get(e) != 1]
        doubled = [e for e, c in rows.items() if c != 1]
        server_errors = sum(c for k in (orders, uploads) for s, c in k.errors.items() if s >= 500)
        print(
            f"loadtest on {label}: {clients} clients for {elapsed:.0f} s through nginx + gunicorn"
        )
        print(orders.line("orders (API, half sent twice)", elapsed))
        print(uploads.line("uploads (portal, 1.6 MP JPEG)", elapsed))
        print(
            f"  check: {len(accepted)} accepted orders, {len(lost)} lost, {len(doubled)} doubled; "
            f"{stored_uploads[0]} accepted uploads, {documents} documents stored; "
            f"{server_errors} 5xx"
        )
        # Every upload answered 201 is stored exactly once (one page each), nothing else is.
        return not lost and not doubled and documents == stored_uploads[0] and not server_errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", default=os.environ.get("VERIFIER_LOADTEST_DATABASE_URL"))
    args = parser.parse_args()
    ok = all(
        run_one(label, url, args.seconds, args.clients)
        for label, url in databases(args.database_url)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
