"""Host-wide decode capacity: slot sets of lock files that every web worker on the host shares.

A slot is a file ``<dir>/<name>-<i>.lock`` held with ``flock``. The kernel releases the lock
when its holder closes the file or dies in any way (kill -9, out of memory), so a slot is
never leaked and no cleanup process is needed; a lock file holds no data. The same mechanism
caps the decodes of one case and of one client address, keyed by a hash of the key (the
file names never show a case id or an address).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from verifier.config import DEFAULT_INSTANCE_DIR

# How often a waiting upload looks for a free slot again.
_POLL_S = 0.02


def default_capacity() -> int:
    """VERIFIER_DECODERS, else the number of CPUs this process may run on (at least 1)."""
    raw = os.environ.get("VERIFIER_DECODERS", "").strip()
    if raw:
        value = int(raw)
        if value < 1:
            raise ValueError("VERIFIER_DECODERS must be at least 1")
        return value
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus)


def default_slot_dir() -> Path:
    """VERIFIER_DECODER_SLOTS_DIR, else ``decoder-slots`` in the instance directory."""
    raw = os.environ.get("VERIFIER_DECODER_SLOTS_DIR")
    if raw:
        return Path(raw)
    instance = Path(os.environ.get("VERIFIER_INSTANCE_DIR") or DEFAULT_INSTANCE_DIR)
    return instance / "decoder-slots"


class HostSlots:
    """``count`` slots named ``name`` under ``directory``, shared by every process using them.

    Within one process the slots are also guarded by a lock, since flock locks belong to an
    open file: two threads must not share one descriptor.
    """

    def __init__(self, directory: Path, name: str, count: int) -> None:
        self.directory = Path(directory)
        self.name = name
        self.count = count
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # descriptor -> slot index

    def try_acquire(self) -> int | None:
        """Take a free slot now and return its descriptor, or None when all are taken."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for index in range(self.count):
            path = self.directory / f"{self.name}-{index}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            with self._lock:
                self._held[fd] = index
            return fd
        return None

    def acquire(self, wait_s: float) -> int | None:
        """Take a slot, waiting up to ``wait_s`` seconds; None when none came free."""
        deadline = time.monotonic() + wait_s
        while True:
            fd = self.try_acquire()
            if fd is not None or time.monotonic() >= deadline:
                return fd
            time.sleep(_POLL_S)

    def index_of(self, fd: int) -> int:
        """Which slot a descriptor from `acquire` holds (decoder i serves slot i)."""
        with self._lock:
            return self._held[fd]

    def release(self, fd: int) -> None:
        with self._lock:
            self._held.pop(fd, None)
        os.close(fd)  # closing the file drops its flock

    @contextmanager
    def held(self, wait_s: float = 0.0) -> Iterator[bool]:
        """Yield True while holding a slot, False when none was free in time."""
        fd = self.acquire(wait_s) if wait_s > 0 else self.try_acquire()
        try:
            yield fd is not None
        finally:
            if fd is not None:
                self.release(fd)


def keyed_slots(directory: Path, kind: str, key: str, count: int) -> HostSlots:
    """The slot set capping concurrent decodes for one case or one client address."""
    digest = hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()[:24]
    return HostSlots(Path(directory) / kind, digest, count)


# At most this many decodes at once for one case (a customer sends a few files at a time)
# and for one client address (a household or an office behind one NAT).
PER_CASE = 2
PER_ADDRESS = 4


@contextmanager
def decode_caps(case_id: int, address: str | None, directory: Path | None = None) -> Iterator[None]:
    """Hold a per-case and a per-address decode slot around an upload's decode; raise
    UploadRejected("decoder_limit") at once, without waiting, when either is used up."""
    from verifier.portal.decoding import reject

    root = directory if directory is not None else default_slot_dir()
    with keyed_slots(root, "case", str(case_id), PER_CASE).held() as case_ok:
        if not case_ok:
            raise reject("decoder_limit")
        with keyed_slots(root, "address", address or "-", PER_ADDRESS).held() as address_ok:
            if not address_ok:
                raise reject("decoder_limit")
            yield
