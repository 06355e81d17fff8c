"""What every benchmark shares: a real gunicorn on a free port, a load client, peak memory,
and one way to report a figure against its floor and goal.

Each benchmark prints its figure, the floor measured in the same run, the ratio and peak
memory, and returns a `Result`; `python -m bench` runs them all and prints a summary table.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Result:
    """One benchmark's verdict: `figure` against `floor`, `ratio` against `goal`."""

    name: str
    figure: str
    floor: str
    ratio: float
    goal: str
    met: bool
    peak_mb: float | None = None
    # True when the ratio is figure / floor (a cost, lower is better), else floor share.
    ratio_is_cost: bool = False
    notes: list[str] = field(default_factory=list)

    def report(self) -> None:
        peak = f", peak memory {self.peak_mb:.0f} MB" if self.peak_mb is not None else ""
        ratio = f"{self.ratio:.2f}x" if self.ratio_is_cost else f"{self.ratio:.0%} of the floor"
        print(f"  {self.name}: {self.figure}; floor {self.floor}; ratio {ratio}{peak}")
        print(f"  goal {self.goal}: {'met' if self.met else 'NOT MET'}")
        for note in self.notes:
            print(f"  {note}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_environment(work: Path, port: int, database_url: str | None) -> dict[str, str]:
    """The environment of a throw-away Verifier installation under `work`."""
    (work / "uploads").mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "VERIFIER_INSTANCE_DIR": str(work / "instance"),
        "VERIFIER_UPLOADS_DIR": str(work / "uploads"),
        "VERIFIER_BASE_URL": f"http://127.0.0.1:{port}",
        "VERIFIER_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "VERIFIER_SECRET_KEY": secrets.token_urlsafe(48),
        "VERIFIER_LOG_LEVEL": "WARNING",
    }
    env.pop("VERIFIER_DATABASE_URL", None)
    if database_url:
        env["VERIFIER_DATABASE_URL"] = database_url
    return env


def verifier_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "verifier"), *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="verifier-bench-") as tmp:
        yield Path(tmp)


@contextmanager
def gunicorn(
    app: str, env: dict[str, str], port: int, *, workers: int = 4, threads: int = 4
) -> Iterator[subprocess.Popen[bytes]]:
    """Serve `app` (module:variable) with the project's gunicorn.conf.py, as `make serve` does."""
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"),
         "--workers", str(workers), "--threads", str(threads),
         "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null", app],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"gunicorn for {app} did not start") from None
                time.sleep(0.1)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total = 0
    for proc in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            todo.extend(children)
    return found


@contextmanager
def peak_memory(pid: int, interval: float = 0.2) -> Iterator[Callable[[], float]]:
    """Sample the process tree's RSS while the block runs; yields a getter of the peak."""
    peak = [tree_rss_mb(pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], tree_rss_mb(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        stop.set()
        thread.join()


@dataclass
class Load:
    """What a fixed-time load measured: requests per second and latency percentiles (ms)."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def describe(self) -> str:
        return (
            f"{self.rate:,.0f} req/s (p50 {self.percentile(50):.1f} ms, "
            f"p99 {self.percentile(99):.1f} ms, {self.errors} errors)"
        )


def post_load(
    port: int,
    path: str,
    body_for: Callable[[int, int], bytes],
    headers: dict[str, str],
    *,
    clients: int = 16,
    seconds: float = 10.0,
    ok: tuple[int, ...] = (200, 201),
) -> Load:
    """`clients` keep-alive connections POSTing `body_for(client, n)` for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        n = 0
        while time.perf_counter() < deadline[0]:
            body = body_for(index, n)
            n += 1
            began = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status not in ok:
                    errors[index] += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            latencies[index].append((time.perf_counter() - began) * 1000)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = [x for per in latencies for x in per]
    return Load(len(flat), sum(errors), elapsed, flat)


def median_ms(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def order_json(external_id: str) -> bytes:
    order = json.loads((ROOT / "bench" / "order.json").read_text())
    order["external_id"] = external_id
    order["placed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(order).encode()


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `server_url`, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    name = f"verifier_bench_{secrets.token_hex(4)}"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def databases(postgres_url: str | None) -> Iterator[tuple[str, str | None]]:
    """("SQLite", None) then, when a server is named, ("PostgreSQL", a fresh database's URL)."""
    yield "SQLite", None
    if postgres_url:
        with fresh_postgres(postgres_url) as url:
            yield "PostgreSQL", url
