"""The host's decoders: one supervisor process per slot directory, forking one decoder a slot.

    python -m verifier.portal.supervisor DIR --count N --owner PID [...]

Every web worker on the host shares them (verifier.portal.documents.DecoderPool): a worker
that holds decode slot i (verifier.portal.capacity) connects to ``DIR/decoder-i.sock`` and
hands its job over (verifier.portal.handoff). The supervisor loads the decoder libraries and
the OCR engine once, then forks its decoders, so those pages are shared copy on write instead
of loaded again by every decoder of every worker.

Single per directory: it holds ``DIR/supervisor.lock`` (flock; the file holds its pid and no
data) for its whole life, and removes the socket files of a dead predecessor. It creates each
decoder's listening socket itself and keeps it open, so a decoder that dies (killed, out of
memory, a crash, its job's timeout, recycled after ``--recycle-after`` jobs) is replaced on
the same socket: a client connecting meanwhile waits in its backlog for the new decoder, never
for an error. Decoders die with the supervisor (PR_SET_PDEATHSIG), the supervisor with its
owner (a pidfd: the gunicorn master, or the process that started it).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import gc
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = "supervisor.lock"
_PR_SET_PDEATHSIG = 1
# A decoder that could not even start (its exit status) is replaced after a pause, so a broken
# installation does not fork in a busy loop; any other is replaced at once.
_START_FAILED = 3
_RESPAWN_PAUSE_S = 0.5


def socket_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"decoder-{index}.sock"


def supervisor_pid(directory: Path) -> int | None:
    """The running supervisor's pid, or None when none holds the directory's lock."""
    path = Path(directory) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 32, 0).strip()
            return int(raw) if raw.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def decoder_pids(directory: Path) -> list[int]:
    """The running decoders of the directory's supervisor (for tests and benchmarks)."""
    pid = supervisor_pid(directory)
    if pid is None:
        return []
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _owner_fd(owner: int) -> int:
    try:
        return os.pidfd_open(owner)
    except ProcessLookupError:
        raise SystemExit(0) from None  # the owner is gone already


def _take_lock(directory: Path) -> int | None:
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _listen(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead supervisor's
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    listener.bind(str(path))
    os.chmod(path, 0o600)  # only this user's processes may connect (in a 0700 directory too)
    listener.listen(64)
    return listener


class Supervisor:
    def __init__(self, directory: Path, count: int, options: argparse.Namespace) -> None:
        self.directory = directory
        self.count = count
        self.options = options
        self.listeners: list[socket.socket] = []
        self.children: dict[int, tuple[int, int]] = {}  # pidfd -> (index, pid)

    def run(self, owner_fd: int, lock_fd: int) -> None:
        from verifier.portal import decoding

        decoding.preload()
        # The preloaded objects are never collected: the collector would otherwise write to
        # (and so unshare) every page of them in each decoder.
        gc.collect()
        gc.freeze()
        self.listeners = [_listen(socket_path(self.directory, i)) for i in range(self.count)]
        self.keep = {owner_fd, lock_fd}
        for index in range(self.count):
            self._spawn(index)
        while True:
            ready, _, _ = select.select([owner_fd, *self.children], [], [])
            if owner_fd in ready:
                return
            for pidfd in ready:
                index, pid = self.children.pop(pidfd)
                os.close(pidfd)
                status = 0
                with contextlib.suppress(ChildProcessError):
                    status = os.waitpid(pid, 0)[1]
                if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _START_FAILED:
                    time.sleep(_RESPAWN_PAUSE_S)
                self._spawn(index)

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            status = _START_FAILED
            try:
                _die_with_parent()
                if os.getppid() == parent:
                    self._decoder(index)
                    status = 0
            finally:
                os._exit(status)
        self.children[os.pidfd_open(pid)] = (index, pid)

    def _decoder(self, index: int) -> None:
        from verifier.portal import decoding

        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for fd in [*self.keep, *self.children]:
            with contextlib.suppress(OSError):
                os.close(fd)
        listener = self.listeners[index]
        for other in self.listeners:
            if other is not listener:
                other.close()
        decoding.sandbox(self.options.memory, self.options.cpu)
        try:
            serve(listener, self.options.recycle_after)
        except BaseException:
            os._exit(1)

    def stop(self) -> None:
        for pidfd, (_, pid) in list(self.children.items()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            os.close(pidfd)
        self.children.clear()
        for index, listener in enumerate(self.listeners):
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                socket_path(self.directory, index).unlink()


def serve(listener: socket.socket, recycle_after: int) -> None:
    """A decoder's life: one connection, one job at a time, then a fresh process."""
    jobs = 0
    while jobs < recycle_after:
        conn, _ = listener.accept()
        with conn:
            jobs += _serve_one(conn)


def _serve_one(conn: socket.socket) -> int:
    """Run the connection's job and send its outcome back; 0 when no job came."""
    from verifier.portal import handoff

    fds: list[int] = []
    try:
        job, fds = handoff.receive_message(conn, time.monotonic() + handoff.RECEIVE_TIMEOUT_S)
    except (EOFError, OSError, pickle.UnpicklingError):
        return 0  # a client that gave up (or only looked) before sending its job
    # The job's wall-clock budget: SIGALRM's default action ends the process even inside C
    # code, and the supervisor starts another.
    signal.setitimer(signal.ITIMER_REAL, max(0.01, job.timeout))
    try:
        try:
            data = handoff.read_payload(fds, job.size) if job.size is not None else job.data
        finally:
            handoff.close_all(fds)
        outcome: tuple[str, object]
        try:
            value = job.fn(*job.args) if data is None else job.fn(data, *job.args)
            outcome = ("ok", value)
        except Exception as exc:  # MemoryError under RLIMIT_AS included: this job only
            outcome = ("error", exc)
        del data
        try:
            handoff.send_message(conn, outcome)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            handoff.send_message(conn, ("error", RuntimeError(f"unpicklable outcome: {exc!r}")))
    except OSError:
        pass  # the client is gone: nobody to answer
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return 1


# --- in the web worker: starting the supervisor ----------------------------------------

# What a supervisor's environment keeps of its starter's: no database address, key or secret
# reaches a process that parses hostile files.
_ENV_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "VIRTUAL_ENV")
_launch_lock = threading.Lock()
_launched: dict[Path, subprocess.Popen[bytes]] = {}


def owner_pid() -> int:
    """Whose life the host's decoders share: VERIFIER_DECODER_OWNER (gunicorn.conf.py sets it
    to the master's pid for its workers) while that process runs, else this process."""
    raw = os.environ.get("VERIFIER_DECODER_OWNER", "").strip()
    if raw.isdigit():
        try:
            os.kill(int(raw), 0)
            return int(raw)
        except ProcessLookupError:
            pass
        except PermissionError:
            return int(raw)
    return os.getpid()


def start(
    directory: Path, count: int, *, memory_bytes: int, cpu_seconds: int, recycle_after: int,
    owner: int | None = None,
) -> subprocess.Popen[bytes] | None:  # fmt: skip
    """Start the directory's supervisor unless one runs (or this process started one that
    is still starting); returns the process started, else None. Does not wait for it."""
    directory = Path(directory)
    with _launch_lock:
        mine = _launched.get(directory)
        if mine is not None and mine.poll() is None:
            return None
        if supervisor_pid(directory) is not None:
            return None
        package_root = str(Path(__file__).resolve().parents[2])
        env = {key: os.environ[key] for key in _ENV_KEPT if key in os.environ}
        env |= {
            "PYTHONPATH": os.pathsep.join([package_root, *[p for p in sys.path if p]]),
            # One malloc arena, one BLAS thread: a decoder runs one job on one core.
            "MALLOC_ARENA_MAX": "2",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "verifier.portal.supervisor", str(directory),
             "--count", str(count), "--owner", str(owner or owner_pid()),
             "--recycle-after", str(recycle_after), "--memory", str(memory_bytes),
             "--cpu", str(cpu_seconds)],
            env=env, stdin=subprocess.DEVNULL, close_fds=True, start_new_session=True,
        )  # fmt: skip
        _launched[directory] = process
    # Reaped when it exits, so no zombie is left in a long-lived web worker.
    threading.Thread(target=process.wait, name="decoders-reaper", daemon=True).start()
    return process


def stop_started(directory: Path, wait: bool = True) -> None:
    """Stop the supervisor this process started for `directory`, if it did."""
    with _launch_lock:
        process = _launched.pop(Path(directory), None)
    if process is None or process.poll() is not None:
        return
    process.terminate()
    if wait:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def started_here(directory: Path) -> bool:
    process = _launched.get(Path(directory))
    return process is not None and process.poll() is None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The host's decoder processes.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--recycle-after", type=int, default=200)
    parser.add_argument("--memory", type=int, required=True)
    parser.add_argument("--cpu", type=int, required=True)
    options = parser.parse_args(argv)
    os.umask(0o077)
    directory = options.directory
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    owner_fd = _owner_fd(options.owner)
    lock_fd = _take_lock(directory)
    if lock_fd is None:
        return 0  # another supervisor serves this directory
    supervisor = Supervisor(directory, options.count, options)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    try:
        supervisor.run(owner_fd, lock_fd)
    finally:
        supervisor.stop()
        os.close(lock_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
