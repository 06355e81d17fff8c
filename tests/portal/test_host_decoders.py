"""Under gunicorn, as `make serve` runs it: one set of decoders for the host, whatever the
number of workers, started by the master and gone with it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.server_helpers import BIN, free_port, process_running, run_cli, server_env
from verifier.portal import supervisor

ROOT = Path(__file__).resolve().parents[2]


def _serves(pid: str, slots: Path) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"verifier.portal.supervisor" in command and str(slots).encode() in command


def test_workers_share_the_hosts_decoders_and_none_outlives_the_master(tmp_path):
    port = free_port()
    env = server_env(tmp_path, port, VERIFIER_DECODERS="2")
    run_cli(env, "migrate")
    master = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"), "--workers", "3",
         "--threads", "2", "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null",
         "wsgi:app"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    slots = tmp_path / "instance" / "decoder-slots"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read()
                if len(supervisor.decoder_pids(slots)) == 2:
                    break
            except OSError:
                pass
            assert master.poll() is None and time.monotonic() < deadline, "no gunicorn"
            time.sleep(0.2)
        boss = supervisor.supervisor_pid(slots)
        decoders = supervisor.decoder_pids(slots)
        supervisors = [pid for pid in os.listdir("/proc") if pid.isdigit() and _serves(pid, slots)]
        # 3 workers, 2 decoders in all (not 2 each), and one supervisor for them.
        assert len(decoders) == 2 and len(supervisors) == 1 + len(decoders)
        workers = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
        assert len(workers) == 3 + 1  # and the supervisor, which the master started
        for worker in workers:  # no worker has decoders (or a fork server) of its own
            assert int(worker) == boss or not Path(f"/proc/{worker}/task/{worker}/children"
                                                   ).read_text().split()  # fmt: skip

        os.kill(master.pid, signal.SIGKILL)  # no hook runs
        master.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(process_running(p) for p in [boss, *decoders]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(process_running(p) for p in [boss, *decoders]), (
            "a decoder outlived the master"
        )
    finally:
        if master.poll() is None:
            master.kill()
        os.killpg(master.pid, signal.SIGKILL)  # its workers
        master.wait(timeout=30)
