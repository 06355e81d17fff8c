"""Upload pipeline: size -> sniff -> decode -> normalise -> quality, in sandboxed decoders.

``process_upload`` is the one entry point. With a ``DecoderPool`` the pixel work (in
`verifier.portal.decoding`) runs in the host's decoder processes (verifier.portal.supervisor)
under memory, CPU and time limits, so a hostile file that crashes, exhausts or hangs a decoder
fails only its own upload; without one it runs in-process (tests, simple callers). No Flask
here, and nothing is written to disk but lock and socket files.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from verifier.errors import UploadRejected
from verifier.portal import admission, decoding, handoff, supervisor
from verifier.portal.capacity import HostSlots, default_capacity, default_slot_dir
from verifier.portal.decoding import (
    DEFAULT_LIMITS,
    SOURCE_TYPES,
    PipelineLimits,
    ProcessedImage,
    ProcessedUpload,
    QualityWarning,
    check_quality,
    reject,
)

__all__ = [
    "DEFAULT_LIMITS",
    "SOURCE_TYPES",
    "DecoderPool",
    "PipelineLimits",
    "ProcessedImage",
    "ProcessedUpload",
    "QualityWarning",
    "check_quality",
    "get_default_pool",
    "process_upload",
    "shutdown",
]

T = TypeVar("T")


def process_upload(
    data: bytes, limits: PipelineLimits = DEFAULT_LIMITS, *, pool: DecoderPool | None = None
) -> ProcessedUpload:
    """Validate and re-encode an upload to clean JPEG pages; raise UploadRejected to refuse."""
    if not data:
        raise reject("empty_file")
    if len(data) > limits.max_bytes:
        raise reject("too_large", megabytes=limits.max_bytes // (1024 * 1024))
    if pool is not None:
        return pool.process(data, limits)
    try:
        return decoding.decode_upload(data, limits)
    except UploadRejected:
        raise
    except Exception as exc:
        # In-process there is no sandbox: a decoder bug or MemoryError still fails only
        # this upload, with the cause chained for the caller's log.
        raise reject("decoder_failed") from exc


log = logging.getLogger(__name__)
# How long an upload waits for a free decoder before it is told to try again in a moment.
LANE_WAIT_S = 5.0
# A heavy file (admission.is_heavy) is answered within 10 s however busy the pool: it waits at
# most HEAVY_WAIT_S for a slot, and its wait and decode together take at most HEAVY_ANSWER_S.
HEAVY_WAIT_S = 2.0
HEAVY_ANSWER_S = 8.5
# How long a job waits for decoders that are only starting (the supervisor loads the OCR
# models first); only the first uploads after a cold start ever wait for it.
START_WAIT_S = 30.0
# Beyond its decode budget (enforced in the decoder), what a job may take to travel.
_TRANSIT_S = 2.0


class DecoderPool:
    """Sandboxed decoder processes, one job at a time each, that replace any that die.

    With ``directory`` these are the host's decoders in that directory, shared by every web
    worker using it (the first one to need them starts their supervisor); without, a private
    set in a temporary directory that ``shutdown`` stops. Decoder i serves whoever holds slot
    i of ``max_workers`` (``decode-<i>.lock``): a crash, MemoryError or timeout is then known
    to belong to that job alone, fails only that upload, and only that decoder is replaced.
    ``limits`` sets the decoders' memory and CPU caps (``worker_*``); the other caps travel
    with each job. Decoders are recycled after ``recycle_after`` jobs so one customer's pixels
    do not linger in a long-lived process.
    """

    def __init__(
        self,
        limits: PipelineLimits = DEFAULT_LIMITS,
        max_workers: int = 2,
        *,
        recycle_after: int = 200,
        lane_wait_s: float = LANE_WAIT_S,
        host_slots: HostSlots | None = None,
        heavy_slots: HostSlots | None = None,
        directory: Path | None = None,
    ) -> None:
        self.limits = limits
        # Further caps shared with other pools: at most host_slots.count decodes at once, of
        # which at most heavy_slots.count heavy ones (admission.is_heavy: PDFs, large
        # PNG/WebP/HEIC), so ordinary photos always find a slot the heavy files cannot take.
        self.host_slots = host_slots
        self.heavy_slots = heavy_slots
        self.lane_wait_s = lane_wait_s
        self.max_workers = max_workers
        self.recycle_after = recycle_after
        self.private = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="verifier-decoders-"))
        self.lanes = HostSlots(self.directory, "decode", max_workers)
        self._closed = False
        self._started_at = -1e9

    def process(self, data: bytes, limits: PipelineLimits | None = None) -> ProcessedUpload:
        """Run the pipeline on ``data`` in a decoder; raise UploadRejected on any failure."""
        limits = limits or self.limits
        heavy = self.heavy_slots is not None and admission.is_heavy(data)
        return self._call(
            decoding.run_job, limits, timeout=limits.decode_timeout_s, heavy=heavy, payload=data
        )

    def warm(self, timeout: float = 60.0) -> bool:
        """Start the decoders now unless they run, and wait until they take jobs, so the first
        uploads do not wait seconds for them; False (logged) when they did not start."""
        deadline = time.monotonic() + timeout
        for index in range(self.max_workers):
            try:
                self._connect(index, deadline).close()  # a connection without a job
            except (UploadRejected, RuntimeError) as exc:
                log.warning("decoders did not start ahead of time: %s", exc)
                return False
        # The sockets answer once the models are loaded; the decoders are forked right after.
        while len(self.decoder_pids()) < self.max_workers:
            if time.monotonic() >= deadline:
                log.warning("decoders did not start ahead of time")
                return False
            time.sleep(0.02)
        return True

    def decoder_pids(self) -> list[int]:
        """The pids of the running decoders (for tests and benchmarks)."""
        return supervisor.decoder_pids(self.directory)

    def shutdown(self, wait: bool = True) -> None:
        """Stop using the decoders (and stop them, if this pool's own or started by this
        process for nobody else); later calls raise RuntimeError."""
        self._closed = True
        if self.private or supervisor.owner_pid() == os.getpid():
            supervisor.stop_started(self.directory, wait=wait)
        if self.private:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _start(self) -> None:
        # At most once a second: a supervisor just started takes a moment to take its lock,
        # and one started meanwhile by another worker would only find it taken and exit.
        if time.monotonic() - self._started_at < 1.0:
            return
        self._started_at = time.monotonic()
        supervisor.start(
            self.directory, self.max_workers, memory_bytes=self.limits.worker_memory_bytes,
            cpu_seconds=self.limits.worker_cpu_seconds, recycle_after=self.recycle_after,
            owner=os.getpid() if self.private else None,
        )  # fmt: skip

    def _connect(self, index: int, deadline: float) -> socket.socket:
        """A connection to decoder `index`, starting the supervisor when none runs."""
        path = str(supervisor.socket_path(self.directory, index))
        while True:
            if self._closed:
                raise RuntimeError("The decoder pool has been shut down.")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.connect(path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                # None running (or a dead one's socket): start one; the lock keeps it single.
                sock.close()
                self._start()
            except BaseException:
                sock.close()
                raise
            if time.monotonic() >= deadline:
                raise reject("decoder_failed")
            time.sleep(0.05)

    def _call(
        self, fn: Callable[..., T], *args: Any, timeout: float, host_slot: bool = True,
        heavy: bool = False, payload: bytes | None = None,
    ) -> T:  # fmt: skip
        """Run ``fn(*args)`` in a free decoder, or ``fn(payload, *args)`` with `payload` handed
        over in memory (verifier.portal.handoff); crashes, MemoryError and timeouts become
        rejects.

        No decoder free within the wait: "decoder_busy" (try again in a moment), never a
        verdict on the file. Waiting is not decoding time: the job's own clock starts once it
        is handed over (except a heavy file's, whose answer is due by HEAVY_ANSWER_S anyway).
        """
        if self._closed:
            raise RuntimeError("The decoder pool has been shut down.")
        started = time.monotonic()
        wait_s = min(self.lane_wait_s, HEAVY_WAIT_S) if heavy else self.lane_wait_s
        held: list[tuple[HostSlots, int]] = []
        wanted = [self.heavy_slots] if heavy else []
        wanted += [self.host_slots] if host_slot else []
        try:
            # One wait in all: the heavy slot, then a host slot, then a decoder's own slot.
            for slots in [*wanted, self.lanes]:
                if slots is None:
                    continue
                fd = slots.acquire(max(0.0, wait_s - (time.monotonic() - started)))
                if fd is None:
                    raise reject("decoder_busy")
                held.append((slots, fd))
            index = self.lanes.index_of(held[-1][1])
            if heavy:
                timeout = max(0.1, min(timeout, started + HEAVY_ANSWER_S - time.monotonic()))
            return self._run(index, fn, args, timeout, payload)
        finally:
            for slots, fd in reversed(held):
                slots.release(fd)

    def _run(
        self, index: int, fn: Callable[..., T], args: tuple[Any, ...], timeout: float,
        payload: bytes | None,
    ) -> T:  # fmt: skip
        memfd = handoff.Payload(payload) if payload is not None and handoff.available() else None
        if memfd is not None:
            job = handoff.Job(fn, args, timeout, size=memfd.size)
        else:
            job = handoff.Job(fn, args, timeout, data=payload)
        try:
            for attempt in range(2):
                try:
                    outcome = self._exchange(index, job, memfd)
                    break
                except (ConnectionResetError, BrokenPipeError) as exc:
                    # Closed with the job unread: the decoder died while idle (the job was
                    # already queued for it). It never ran, so it goes to the replacement.
                    if attempt:
                        log.warning("decoder %d failed its job: %s", index, type(exc).__name__)
                        raise reject("decoder_failed") from None
                except (EOFError, OSError, pickle.UnpicklingError) as exc:
                    # It crashed, was killed, ran out of time (its alarm ended it) or out of
                    # memory outright; the supervisor has started another in its place.
                    log.warning("decoder %d failed its job: %s", index, type(exc).__name__)
                    raise reject("decoder_failed") from None
        finally:
            if memfd is not None:
                memfd.close()
        status, value = outcome
        if status == "ok":
            return value  # type: ignore[no-any-return]
        if isinstance(value, UploadRejected):
            raise value
        # MemoryError under RLIMIT_AS, or a decoder bug surfacing as an odd error; the
        # process itself is fine and stays in service.
        raise reject("decoder_failed") from value

    def _exchange(self, index: int, job: handoff.Job, memfd: handoff.Payload | None) -> Any:
        with self._connect(index, time.monotonic() + START_WAIT_S) as sock:
            handoff.send_message(sock, job, memfd.fd if memfd is not None else None)
            outcome, fds = handoff.receive_message(
                sock, time.monotonic() + job.timeout + _TRANSIT_S, from_decoder=True
            )
            handoff.close_all(fds)
            return outcome


_default_pool: DecoderPool | None = None
_default_lock = threading.Lock()


def default_decoders() -> tuple[Path, int]:
    """Where the host's decoders are and how many: VERIFIER_DECODERS, default the CPU count."""
    return default_slot_dir(), default_capacity()


def start_decoders(owner: int | None = None) -> None:
    """Start the host's decoders unless they run, without waiting (gunicorn's master)."""
    directory, count = default_decoders()
    supervisor.start(
        directory, count, memory_bytes=DEFAULT_LIMITS.worker_memory_bytes,
        cpu_seconds=DEFAULT_LIMITS.worker_cpu_seconds, recycle_after=200, owner=owner,
    )  # fmt: skip


def get_default_pool() -> DecoderPool:
    """Return the process-wide DecoderPool, creating it on first use: the host's decoders,
    one per slot of the host-wide capacity, heavy files held to one slot fewer."""
    global _default_pool
    with _default_lock:
        if _default_pool is None or _default_pool._closed:
            directory, capacity = default_decoders()
            # One slot is kept from heavy files (none can be kept on a one-slot host).
            heavy = HostSlots(directory, "heavy", max(1, capacity - 1))
            _default_pool = DecoderPool(
                DEFAULT_LIMITS, max_workers=capacity, heavy_slots=heavy, directory=directory
            )
        return _default_pool


def shutdown(wait: bool = True) -> None:
    """Shut down the default pool if one was created; a later get_default_pool makes a new one."""
    global _default_pool
    with _default_lock:
        pool, _default_pool = _default_pool, None
    if pool is not None:
        pool.shutdown(wait=wait)
