"""Memory benchmark: the layout `make serve` runs (gunicorn, 4 workers x 4 threads, and the
host's decoders) during 8 concurrent 12-megapixel phone uploads, against the same at rest.

    python -m bench.memory [--uploads 8] [--workers 4] [--threads 4]

The figure is one web worker plus its share of the decoders: the highest peak proportional
set size (PSS: shared pages split between the processes sharing them) of any web worker,
plus the peak PSS of the decoder supervisor and its decoders divided by the number of
workers, sampled every 50 ms while the uploads run. Goal: under 300 MB. The whole tree's
RSS (shared pages counted in every process) and PSS are printed beside it, and each
process's own peak RSS.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import (
    Result,
    app_environment,
    descendants,
    free_port,
    gunicorn,
    order_json,
    verifier_cli,
    workdir,
)
from bench.upload import multipart, phone_photo
from verifier.portal import heap

GOAL_MB = 300.0
DECODING = ("supervisor", "decoder")


def pss_mb(pid: int) -> float:
    """Proportional set size of one process (shared pages split), in MB."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _parent(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])


def _supervisor(master: int) -> int | None:
    for pid in descendants(master):
        try:
            if b"verifier.portal.supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def processes(master: int, boss: int | None) -> dict[int, tuple[str, float, float]]:
    """Each process of the tree: its role, resident memory and PSS in MB."""
    found = {}
    for pid in [master, *descendants(master)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            parent = _parent(pid)
        except (OSError, StopIteration):
            continue
        rss = next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
        if pid == master:
            role = "master"
        elif pid == boss:
            role = "supervisor"
        elif parent == master:
            role = "web worker"
        else:
            role = "decoder" if parent == boss else "other"
        found[pid] = (role, rss / 1024, pss_mb(pid))
    return found


def _customer(base: str, key: str, number: int) -> tuple[urllib.request.OpenerDirector, str, str]:
    """A flagged order's portal session from its own address: (opener, CSRF token, address)."""
    request = urllib.request.Request(
        base + "/api/v1/orders", data=order_json(f"MEM-{number}"), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    link = json.loads(urllib.request.urlopen(request, timeout=60).read())["case"]["upload_url"]
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    address = f"198.51.100.{number}"
    page = opener.open(urllib.request.Request(link, headers={"X-Forwarded-For": address})).read()
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    return opener, csrf, address


def _upload(base: str, customer: tuple[urllib.request.OpenerDirector, str, str], photo: bytes):
    opener, csrf, address = customer
    body, ctype = multipart({"csrf_token": csrf}, photo)
    request = urllib.request.Request(
        base + "/portal/documents/photo_id", data=body, method="POST",
        headers={"Content-Type": ctype, "Accept": "application/json", "X-Forwarded-For": address},
    )  # fmt: skip
    for _ in range(12):  # a polite client: "busy" (503) is retried after its Retry-After
        try:
            return opener.open(request, timeout=120).status
        except urllib.error.HTTPError as error:
            if error.code != 503:
                return error.code
            time.sleep(float(error.headers.get("Retry-After", "5")))
    return 503


def run(uploads: int, workers: int, threads: int) -> Result:
    with workdir() as work:
        port = free_port()
        env = app_environment(work, port, None) | {"VERIFIER_TRUSTED_PROXIES": "1"}
        verifier_cli(env, "migrate")
        verifier_cli(env, "set-rate", "100", "--reason", "bench")
        key = verifier_cli(env, "create-api-key", "bench").strip().splitlines()[-1]
        base = f"http://127.0.0.1:{port}"
        photo = phone_photo()
        print(f"memory: {uploads} concurrent 4032x3024 JPEG uploads, gunicorn {workers} workers "
              f"x {threads} threads and the host's decoders", flush=True)  # fmt: skip
        with gunicorn("wsgi:app", env, port, workers=workers, threads=threads) as server:
            master = server.pid
            customers = [_customer(base, key, n) for n in range(uploads + workers)]
            for customer in customers[uploads:]:  # the decoders started and used
                assert _upload(base, customer, photo) == 201
            time.sleep(heap.IDLE_TRIM_S * 3)  # at rest: idle decoders give their peak back
            boss = _supervisor(master)
            assert boss is not None, "no decoder supervisor under gunicorn's master"
            at_rest = processes(master, boss)
            statuses: list[int] = []
            peaks = dict(at_rest)
            worker_peak = decoders_peak = rss_peak = pss_peak = 0.0
            running = [
                threading.Thread(target=lambda c=c: statuses.append(_upload(base, c, photo)))
                for c in customers[:uploads]
            ]
            for thread in running:
                thread.start()
            while any(t.is_alive() for t in running):
                sample = processes(master, boss)
                for pid, (role, rss, pss) in sample.items():
                    old = peaks.get(pid, (role, 0.0, 0.0))
                    peaks[pid] = (role, max(rss, old[1]), max(pss, old[2]))
                web = [pss for role, _, pss in sample.values() if role == "web worker"]
                worker_peak = max(worker_peak, *web)
                decoders_peak = max(
                    decoders_peak, sum(pss for role, _, pss in sample.values() if role in DECODING)
                )
                rss_peak = max(rss_peak, sum(rss for _, rss, _ in sample.values()))
                pss_peak = max(pss_peak, sum(pss for _, _, pss in sample.values()))
                running[0].join(0.05)
            for thread in running:
                thread.join()
    accepted = statuses.count(201)
    figure = worker_peak + decoders_peak / workers
    rest = at_rest.values()
    rest_figure = (
        max(p for r, _, p in rest if r == "web worker")
        + sum(p for r, _, p in rest if r in DECODING) / workers
    )
    counts = ", ".join(
        f"{sum(1 for r, _, _ in rest if r == role)} {role}"
        for role in ("master", "web worker", "supervisor", "decoder")
    )
    ratio = figure / rest_figure
    result = Result(
        f"memory, 1 of {workers} web workers + its share of the decoders, {uploads} x 12 MP",
        f"peak {figure:.0f} MB PSS (worker {worker_peak:.0f} + decoders "
        f"{decoders_peak:.0f} / {workers})",
        f"{rest_figure:.0f} MB at rest", ratio, f"< {GOAL_MB:.0f} MB", figure < GOAL_MB,
        figure, ratio_is_cost=True,
        notes=[f"whole tree: peak {rss_peak:.0f} MB RSS summed ({pss_peak:.0f} MB PSS); at rest "
               f"{sum(r for _, r, _ in rest):.0f} MB RSS ({sum(p for _, _, p in rest):.0f} MB "
               f"PSS), processes: {counts}",
               ", ".join(f"{role} {rss:.0f}" for role, rss, _ in sorted(peaks.values()))
               + " MB (each process's own peak RSS)",
               f"{accepted} of {uploads} uploads accepted, 503 busy retried after Retry-After "
               f"(others: {sorted(s for s in statuses if s != 201)})"],
    )  # fmt: skip
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    result = run(args.uploads, args.workers, args.threads)
    result.report()
    return 0 if result.met else 1


if __name__ == "__main__":
    raise SystemExit(main())
