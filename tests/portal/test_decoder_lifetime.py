"""Decoder processes start ahead of the first upload and never outlive their web worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from verifier.portal import heap
from verifier.portal.documents import DecoderPool

ROOT = Path(__file__).resolve().parents[2]
CHILD = r"""
import time
from verifier.portal import heap
from verifier.portal.documents import DecoderPool
pool = DecoderPool(max_workers=2)
pool.warm()
pids = [p.pid for lane in pool._lanes for p in (lane.executor._processes or {}).values()]
print(" ".join(map(str, pids)), flush=True)
time.sleep(120)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan may wait to be reaped by init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def test_warm_starts_every_lane_before_any_upload():
    pool = DecoderPool(max_workers=2)
    try:
        pool.warm()
        processes = [p for lane in pool._lanes for p in (lane.executor._processes or {}).values()]
        assert len(processes) == 2 and all(_running(p.pid) for p in processes)
    finally:
        pool.shutdown()


def test_no_decoder_outlives_a_web_worker_killed_with_sigkill():
    parent = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_running(pid) for pid in pids)
        os.kill(parent.pid, signal.SIGKILL)  # no worker_exit hook runs: nothing cleans up
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(pid) for pid in pids), "a decoder outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_a_decoder_gives_its_peak_back_once_idle_not_between_jobs():
    pool = DecoderPool(max_workers=1)
    try:
        pool.warm()
        pid = pool._call(os.getpid, timeout=30)
        pool._call(heap.fragment_for_test, 200, timeout=60)
        right_after = _rss_mb(pid)  # kept for the next job, which would reuse it
        time.sleep(heap.IDLE_TRIM_S * 3)
        at_rest = _rss_mb(pid)
    finally:
        pool.shutdown()

    assert right_after - at_rest > 100, (right_after, at_rest)
