"""The host's decoders: started ahead of the first upload, shared by every web worker, and
never outliving the process they serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.server_helpers import process_running
from verifier.errors import UploadRejected
from verifier.portal import decoding, heap, supervisor
from verifier.portal.documents import DecoderPool

ROOT = Path(__file__).resolve().parents[2]
# A web worker of its own: the host's decoders in DIR (argv[1]), two slots.
WORKER = r"""
import os, sys, time
from pathlib import Path
from verifier.portal.documents import DecoderPool
pool = DecoderPool(max_workers=2, directory=Path(sys.argv[1]))
assert pool.warm()
print(pool._call(os.getpid, timeout=30), flush=True)
time.sleep(120)
"""


def _worker(directory: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(directory)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    return process, int(process.stdout.readline())


def _gone(pids: list[int], within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while any(process_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(process_running(pid) for pid in pids)


def test_warm_starts_every_decoder_before_any_upload():
    pool = DecoderPool(max_workers=2)
    try:
        assert pool.warm()
        pids = pool.decoder_pids()
        assert len(pids) == 2 and all(process_running(pid) for pid in pids)
    finally:
        pool.shutdown()
    assert _gone(pids)


def test_two_web_workers_share_the_hosts_decoders(tmp_path):
    first, used_by_first = _worker(tmp_path)
    second, used_by_second = _worker(tmp_path)
    try:
        decoders = supervisor.decoder_pids(tmp_path)
        # One supervisor and its two decoders for the host, not two for each worker.
        assert len(decoders) == 2
        assert {used_by_first, used_by_second} <= set(decoders)
        assert len([p for p in (first.pid, second.pid) if _children(p)]) <= 1
    finally:
        first.kill()
        second.kill()
        first.wait()
        second.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_no_decoder_outlives_its_owner_killed_with_sigkill(tmp_path):
    worker, _ = _worker(tmp_path)
    try:
        boss = supervisor.supervisor_pid(tmp_path)
        pids = [boss, *supervisor.decoder_pids(tmp_path)]
        assert len(pids) == 3 and all(process_running(pid) for pid in pids)
        os.kill(worker.pid, signal.SIGKILL)  # no hook runs: nothing cleans up
        worker.wait(timeout=10)
        assert _gone(pids), "a decoder or the supervisor outlived its owner"
    finally:
        if worker.poll() is None:
            worker.kill()


def test_no_decoder_outlives_its_supervisor(tmp_path):
    pool = DecoderPool(max_workers=2, directory=tmp_path)
    try:
        assert pool.warm()
        decoders = pool.decoder_pids()
        os.kill(supervisor.supervisor_pid(tmp_path), signal.SIGKILL)
        assert _gone(decoders)
    finally:
        pool.shutdown()


def test_a_dead_supervisors_sockets_and_lock_are_recovered(tmp_path):
    pool = DecoderPool(max_workers=2, directory=tmp_path)
    try:
        assert pool.warm()
        dead = supervisor.supervisor_pid(tmp_path)
        decoders = pool.decoder_pids()
        os.kill(dead, signal.SIGKILL)
        assert _gone([dead, *decoders])
        # Left behind: its lock file (no longer locked) and socket files nobody listens on.
        stale = supervisor.socket_path(tmp_path, 0)
        assert stale.exists() and (tmp_path / supervisor.LOCK_NAME).exists()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(stale))
                raise AssertionError("a dead supervisor's socket still answers")
            except ConnectionRefusedError:
                pass

        # The next job starts a new supervisor, which takes the lock and the sockets over.
        pid = pool._call(os.getpid, timeout=30)

        assert supervisor.supervisor_pid(tmp_path) not in (None, dead)
        assert pid in pool.decoder_pids()
        assert oct(stale.stat().st_mode & 0o777) == oct(0o600)
        assert oct(tmp_path.stat().st_mode & 0o077) == oct(0)
    finally:
        pool.shutdown()


def test_a_decoder_killed_mid_job_is_replaced_on_the_same_socket():
    pool = DecoderPool(max_workers=1)
    try:
        first = pool._call(os.getpid, timeout=30)
        kill = f"import os, time; time.sleep(0.5); os.kill({first}, 9)"
        killer = subprocess.Popen([sys.executable, "-c", kill])
        try:
            pool._call(decoding._sleep_for_test, 5, timeout=10)
            raise AssertionError("the killed job succeeded")
        except UploadRejected as exc:
            assert exc.code == "decoder_failed"
        killer.wait()
        assert pool._call(os.getpid, timeout=30) not in (first, None)
    finally:
        pool.shutdown()


def test_a_decoder_is_recycled_after_its_jobs():
    pool = DecoderPool(max_workers=1, recycle_after=3)
    try:
        pids = [pool._call(os.getpid, timeout=30) for _ in range(7)]
    finally:
        pool.shutdown()
    assert len(set(pids)) == 3 and pids[:3] == [pids[0]] * 3


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
