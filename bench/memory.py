"""Memory benchmark: one gunicorn web worker plus its decoder processes during 8 concurrent
12-megapixel phone uploads, against the same processes at rest, in the same run.

    python -m bench.memory [--uploads 8]

The figure is the peak of the resident memory summed over the web worker and every process
under it (the fork server and the decoders), sampled every 50 ms while the uploads run; the
floor is that sum at rest, once the decoders have started and served one upload. Goal: the
peak stays under 300 MB. Summing RSS counts pages that the decoders share with their fork
server once per process, so the proportional (PSS) sum is printed beside it.
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
    peak_memory,
    tree_rss_mb,
    verifier_cli,
    workdir,
)
from bench.upload import multipart, phone_photo
from verifier.portal import heap

GOAL_MB = 300.0


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process and its descendants (shared pages split), in MB."""
    total = 0
    for proc in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{proc}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _role(pid: int, worker: int) -> str:
    if pid == worker:
        return "web worker"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "gone"
    if b"resource_tracker" in command:
        return "resource tracker"
    parent = int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
    if b"forkserver" in command:
        # The fork server is the worker's child; the decoders are the fork server's.
        return "fork server" if parent == worker else "decoder"
    return "other"


def per_process_mb(worker: int) -> dict[int, tuple[str, float]]:
    """Each process of the worker's tree: its role and its resident memory in MB."""
    found = {}
    for pid in [worker, *descendants(worker)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        rss = next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
        found[pid] = (_role(pid, worker), rss / 1024)
    return found


def _worker_pid(arbiter: int) -> int:
    children = descendants(arbiter)
    direct = Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split()
    assert direct, f"gunicorn has no worker (processes: {children})"
    return int(direct[0])


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


def run(uploads: int) -> Result:
    with workdir() as work:
        port = free_port()
        env = app_environment(work, port, None) | {"VERIFIER_TRUSTED_PROXIES": "1"}
        verifier_cli(env, "migrate")
        verifier_cli(env, "set-rate", "100", "--reason", "bench")
        key = verifier_cli(env, "create-api-key", "bench").strip().splitlines()[-1]
        base = f"http://127.0.0.1:{port}"
        photo = phone_photo()
        print(f"memory: {uploads} concurrent 4032x3024 JPEG uploads to one web worker", flush=True)
        with gunicorn("wsgi:app", env, port, workers=1, threads=uploads) as server:
            worker = _worker_pid(server.pid)
            customers = [_customer(base, key, n) for n in range(uploads + 1)]
            assert _upload(base, customers[-1], photo) == 201  # decoders started and used
            time.sleep(heap.IDLE_TRIM_S * 3)  # at rest: idle decoders give their peak back
            rest_rss, rest_pss = tree_rss_mb(worker), tree_pss_mb(worker)
            processes = 1 + len(descendants(worker))
            statuses: list[int] = []
            pss_peak = [rest_pss]
            peaks: dict[int, tuple[str, float]] = per_process_mb(worker)
            with peak_memory(worker, interval=0.05) as peak:
                threads = [
                    threading.Thread(target=lambda c=c: statuses.append(_upload(base, c, photo)))
                    for c in customers[:uploads]
                ]
                for thread in threads:
                    thread.start()
                while any(t.is_alive() for t in threads):
                    pss_peak[0] = max(pss_peak[0], tree_pss_mb(worker))
                    for pid, (role, mb) in per_process_mb(worker).items():
                        peaks[pid] = (role, max(mb, peaks.get(pid, (role, 0.0))[1]))
                    threads[0].join(0.05)
                for thread in threads:
                    thread.join()
                peak_mb = peak()
    accepted = statuses.count(201)
    ratio = peak_mb / rest_rss
    result = Result(
        f"memory, 1 worker + decoders, {uploads} x 12 MP",
        f"peak {peak_mb:.0f} MB RSS summed ({pss_peak[0]:.0f} MB PSS)",
        f"{rest_rss:.0f} MB at rest ({rest_pss:.0f} MB PSS, {processes} processes)",
        ratio, f"< {GOAL_MB:.0f} MB", peak_mb < GOAL_MB, peak_mb, ratio_is_cost=True,
        notes=[", ".join(f"{role} {mb:.0f} MB" for role, mb in sorted(peaks.values()))
               + " (each process's own peak)",
               f"{accepted} of {uploads} uploads accepted, 503 busy retried after Retry-After "
               f"(others: {sorted(s for s in statuses if s != 201)})"],
    )  # fmt: skip
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=8)
    result = run(parser.parse_args().uploads)
    result.report()
    return 0 if result.met else 1


if __name__ == "__main__":
    raise SystemExit(main())
