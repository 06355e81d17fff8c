"""A decoder's heap: at most two malloc arenas, and a job's peak given back once it is idle.

glibc keeps freed memory for reuse; `malloc_trim` hands it back to the system. Trimming after
every job made the next one fault all of it in again (on a 12 MP photo about 11,000 more page
faults and 30-130 ms, measured), so the trim waits until the decoder has been idle for
IDLE_TRIM_S: uploads one after another reuse the memory, and a decoder at rest still shrinks
to its base size (280 -> 140 MB) a second after its last job.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

IDLE_TRIM_S = 1.0
_M_ARENA_MAX = -8  # glibc's mallopt parameter number

_lock = threading.Lock()
_wake = threading.Event()
_running = 0
_last_end = 0.0
_trimmer: threading.Thread | None = None


def limit_arenas(count: int = 2) -> None:
    """ONNX Runtime's and Pillow's threads would each get a malloc arena that keeps its peak."""
    libc_call("mallopt", _M_ARENA_MAX, count)


@contextmanager
def job() -> Iterator[None]:
    """Around one job: its memory is given back once no job has run for IDLE_TRIM_S."""
    global _running, _last_end, _trimmer
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            _last_end = time.monotonic()
            if _trimmer is None:
                _trimmer = threading.Thread(target=_trim_when_idle, name="trim", daemon=True)
                _trimmer.start()
        _wake.set()


def _trim_when_idle() -> None:
    while True:
        _wake.wait()
        time.sleep(IDLE_TRIM_S)
        with _lock:
            idle = not _running and time.monotonic() - _last_end >= IDLE_TRIM_S
            if idle:
                _wake.clear()
        if idle:
            libc_call("malloc_trim", 0)


def libc_call(name: str, *args: int) -> None:
    """Call a glibc memory-tuning function when there is one (not on musl or macOS)."""
    libc = _libc()
    function = getattr(libc, name, None) if libc is not None else None
    if function is not None:
        function(*args)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # Looked up once: find_library runs ldconfig, which costs milliseconds a call.
    path = ctypes.util.find_library("c")
    return ctypes.CDLL(path) if path else None


_kept: list[bytes] = []


def fragment_for_test(megabytes: int) -> None:
    """Test hook: leave `megabytes` of freed heap behind, pinned by a few live blocks."""
    with job():
        blocks = [bytes(1000) for _ in range(megabytes * 1000)]
        _kept.extend(blocks[::10])
