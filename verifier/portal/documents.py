"""Upload pipeline: size -> sniff -> decode -> normalise -> quality, in a sandboxed pool.

``process_upload`` is the one entry point. With a ``DecoderPool`` the pixel work (in
`verifier.portal.decoding`) runs in separate processes under memory and CPU limits, so a hostile
file that crashes, exhausts or hangs a decoder fails only its own upload; without one it
runs in-process (tests, simple callers). No Flask here, and nothing is written to disk.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from verifier.errors import UploadRejected
from verifier.portal import admission, decoding, handoff
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


class _Lane:
    """One decoder process, used by one job at a time so a crash has exactly one culprit."""

    def __init__(self) -> None:
        self.executor: ProcessPoolExecutor | None = None
        self.channel: handoff.Channel | None = None  # where its process receives uploads
        self.jobs = 0


class DecoderPool:
    """A thread-safe pool of sandboxed decoder processes that replaces any that die.

    Each of the ``max_workers`` lanes is a one-process executor that runs one job at a
    time: a crash, MemoryError or timeout is then known to belong to that job alone, fails
    only that upload, and only that lane's process is replaced. ``limits`` sets the
    processes' memory and CPU caps (``worker_*``); the other caps travel with each job.
    Processes are recycled after ``recycle_after`` jobs so one customer's pixels do not
    linger in a long-lived process.
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
    ) -> None:
        self.limits = limits
        # Shared with every web worker on the host: at most host_slots.count decodes at once,
        # of which at most heavy_slots.count heavy ones (admission.is_heavy: PDFs, large
        # PNG/WebP/HEIC), so ordinary photos always find a slot the heavy files cannot take.
        self.host_slots = host_slots
        self.heavy_slots = heavy_slots
        self.lane_wait_s = lane_wait_s
        self.max_workers = max_workers
        self.recycle_after = recycle_after
        self._lock = threading.Lock()
        self._closed = False
        self._reset_lanes()

    def process(self, data: bytes, limits: PipelineLimits | None = None) -> ProcessedUpload:
        """Run the pipeline on ``data`` in a worker; raise UploadRejected on any failure."""
        limits = limits or self.limits
        heavy = self.heavy_slots is not None and admission.is_heavy(data)
        return self._call(
            decoding.run_job, limits, timeout=limits.decode_timeout_s, heavy=heavy, payload=data
        )

    def warm(self) -> None:
        """Start every lane's process now (each runs a no-op), so the first uploads do not
        wait seconds for a fork server and decoders to start; failures are only logged."""
        idle = self._idle_lanes()
        lanes = []
        with contextlib.suppress(queue.Empty):  # lanes busy with uploads are started already
            for _ in range(self.max_workers):
                lanes.append(idle.get(timeout=60))

        def start(lane: _Lane) -> None:
            try:
                self._submit(lane, decoding.ready).result(timeout=60)
            except (UploadRejected, RuntimeError, BrokenProcessPool, TimeoutError) as exc:
                log.warning("decoder lane did not start ahead of time: %s", exc)
                self._retire(lane)

        try:
            with ThreadPoolExecutor(max_workers=max(1, len(lanes))) as threads:
                list(threads.map(start, lanes))
        finally:
            for lane in lanes:
                idle.put(lane)

    def shutdown(self, wait: bool = True) -> None:
        """Stop every worker process; later calls raise RuntimeError."""
        with self._lock:
            self._closed = True
            executors = [lane.executor for lane in self._lanes if lane.executor is not None]
            channels = [lane.channel for lane in self._lanes if lane.channel is not None]
            for lane in self._lanes:
                lane.executor, lane.channel = None, None
        for executor in executors:
            executor.shutdown(wait=wait, cancel_futures=True)
        for channel in channels:
            channel.close()

    def _call(
        self, fn: Callable[..., T], *args: Any, timeout: float, host_slot: bool = True,
        heavy: bool = False, payload: bytes | None = None,
    ) -> T:  # fmt: skip
        """Run ``fn(*args)`` on an idle lane, or ``fn(payload, *args)`` with `payload` handed
        over in memory (verifier.portal.handoff); crashes, MemoryError and timeouts become
        rejects.

        No lane free within the wait: "decoder_busy" (try again in a moment), never a verdict
        on the file. A lane whose process died while idle (killed, out of memory) is found
        broken when the job is handed over; it gets a new process and the job runs there.
        """
        idle = self._idle_lanes()
        started = time.monotonic()
        wait_s = min(self.lane_wait_s, HEAVY_WAIT_S) if heavy else self.lane_wait_s
        held: list[tuple[HostSlots, int]] = []
        wanted = [self.heavy_slots] if heavy else []
        wanted += [self.host_slots] if host_slot else []
        memfd = None
        if payload is not None and handoff.available():
            memfd = handoff.Payload(payload)
            fn, args = handoff.run, (fn, memfd.ticket, *args)
        elif payload is not None:
            args = (payload, *args)
        try:
            for slots in wanted:
                if slots is None:
                    continue
                # One wait in all: the heavy slot, then a decode slot, then a lane.
                fd = slots.acquire(max(0.0, wait_s - (time.monotonic() - started)))
                if fd is None:
                    raise reject("decoder_busy")
                held.append((slots, fd))
            answer_by = started + HEAVY_ANSWER_S if heavy else None
            return self._call_on_lane(
                idle, started, fn, *args, timeout=timeout, wait_s=wait_s, answer_by=answer_by,
                memfd=memfd,
            )  # fmt: skip
        finally:
            for slots, fd in reversed(held):
                slots.release(fd)
            if memfd is not None:
                memfd.close()

    def _call_on_lane(
        self, idle: queue.Queue[_Lane], started: float, fn: Callable[..., T], *args: Any,
        timeout: float, wait_s: float, answer_by: float | None,
        memfd: handoff.Payload | None = None,
    ) -> T:  # fmt: skip
        try:
            # Waiting for a free lane is not decoding time: the job's own clock starts later
            # (except a heavy file's, whose answer is due by `answer_by` in any case).
            lane = idle.get(timeout=max(0.0, wait_s - (time.monotonic() - started)))
        except queue.Empty:
            raise reject("decoder_busy") from None
        if answer_by is not None:
            timeout = max(0.1, min(timeout, answer_by - time.monotonic()))
        try:
            future = self._submit(lane, fn, *args, memfd=memfd)
            try:
                return future.result(timeout=timeout)
            except TimeoutError:
                self._retire(lane, kill=True)
                raise reject("decoder_failed") from None
            except BrokenProcessPool as exc:
                self._retire(lane)
                raise reject("decoder_failed") from exc
            except UploadRejected:
                raise
            except Exception as exc:
                # MemoryError under RLIMIT_AS, or a decoder bug surfacing as an odd error;
                # the process itself is fine and stays in service.
                raise reject("decoder_failed") from exc
        finally:
            idle.put(lane)

    def _submit(
        self, lane: _Lane, fn: Callable[..., T], *args: Any, memfd: handoff.Payload | None = None
    ) -> Future[T]:
        """Hand the job (and its upload, first) to the lane's process, replacing a process that
        died while idle."""
        for attempt in range(2):
            executor, channel = self._executor_for(lane)
            if not _alive(executor):
                # Died while idle; the executor may not have noticed yet, and would fail this
                # job as if the file had crashed it.
                log.warning("decoder lane replaced: its process died while idle")
                self._retire(lane)
                executor, channel = self._executor_for(lane)
            try:
                if memfd is not None and channel is not None:
                    channel.send(memfd)
                return executor.submit(fn, *args)
            except (BrokenProcessPool, EOFError, OSError) as exc:
                # BrokenProcessPool: the process died since its last job; EOFError/OSError:
                # the fork server that starts processes died. Either way: a new one.
                log.warning("decoder lane replaced after its process died: %s", type(exc).__name__)
                self._retire(lane)
                if attempt:
                    raise reject("decoder_failed") from exc
        raise AssertionError("unreachable")

    def _reset_lanes(self) -> None:
        for lane in getattr(self, "_lanes", ()):
            if lane.channel is not None:  # a forked copy's: the parent's lanes keep theirs
                lane.channel.close()
        self._pid = os.getpid()
        self._lanes = [_Lane() for _ in range(self.max_workers)]
        # Last in, first out: the lane that just finished (its process warm, its memory mapped)
        # takes the next job; the others are there for uploads at the same time.
        self._idle: queue.Queue[_Lane] = queue.LifoQueue()
        for lane in self._lanes:
            self._idle.put(lane)

    def _idle_lanes(self) -> queue.Queue[_Lane]:
        with self._lock:
            if self._closed:
                raise RuntimeError("The decoder pool has been shut down.")
            if self._pid != os.getpid():
                # Forked (e.g. a gunicorn worker after preload): the parent's processes and
                # executor threads are not ours to use.
                self._reset_lanes()
            return self._idle

    def _executor_for(self, lane: _Lane) -> tuple[ProcessPoolExecutor, handoff.Channel | None]:
        with self._lock:
            if self._closed:
                raise RuntimeError("The decoder pool has been shut down.")
            retired = None
            if lane.executor is not None and lane.jobs >= self.recycle_after:
                retired = (lane.executor, lane.channel)
                lane.executor, lane.channel = None, None
            if lane.executor is None:
                lane.channel = handoff.Channel() if handoff.available() else None
                lane.executor, lane.jobs = self._new_executor(lane.channel), 0
            lane.jobs += 1
            executor, channel = lane.executor, lane.channel
        if retired is not None:
            retired[0].shutdown(wait=False)
            if retired[1] is not None:
                retired[1].close()
        return executor, channel

    def _new_executor(self, channel: handoff.Channel | None) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=_mp_context(),
            initializer=decoding.init_worker,
            initargs=(
                self.limits.worker_memory_bytes,
                self.limits.worker_cpu_seconds,
                os.getpid(),
                channel.theirs if channel is not None else None,
            ),
        )

    def _retire(self, lane: _Lane, *, kill: bool = False) -> None:
        """Drop the lane's process (the next job starts a new one), killing it if asked."""
        with self._lock:
            executor, lane.executor = lane.executor, None
            channel, lane.channel = lane.channel, None
        if channel is not None:
            channel.close()  # with any upload still in flight to the old process
        if executor is None:
            return
        if kill:
            # ProcessPoolExecutor has no public way to stop a running job before 3.14.
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)


def _alive(executor: ProcessPoolExecutor) -> bool:
    """Whether every process the executor started is still running (none started: yes)."""
    processes = getattr(executor, "_processes", None) or {}
    return all(process.is_alive() for process in list(processes.values()))


def _mp_context() -> multiprocessing.context.BaseContext:
    # Never "fork": a web worker has threads, and a forked child could inherit held locks.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # The fork server imports the decoders once, so each new worker starts quickly.
        context.set_forkserver_preload(["verifier.portal.decoding"])
        return context
    return multiprocessing.get_context("spawn")


_default_pool: DecoderPool | None = None
_default_lock = threading.Lock()


def get_default_pool(max_workers: int = 2) -> DecoderPool:
    """Return the process-wide DecoderPool, creating it on first use.

    Its decodes count against the host-wide capacity (VERIFIER_DECODERS, default the CPU
    count), heavy ones against one slot fewer, and it keeps no more decoder processes than
    that capacity could ever use.
    """
    global _default_pool
    with _default_lock:
        if _default_pool is None or _default_pool._closed:
            capacity = default_capacity()
            slots = HostSlots(default_slot_dir(), "decode", capacity)
            # One slot is kept from heavy files (none can be kept on a one-slot host).
            heavy = HostSlots(default_slot_dir(), "heavy", max(1, capacity - 1))
            _default_pool = DecoderPool(
                DEFAULT_LIMITS, max_workers=min(max_workers, capacity), host_slots=slots,
                heavy_slots=heavy,
            )  # fmt: skip
        return _default_pool


def shutdown(wait: bool = True) -> None:
    """Shut down the default pool if one was created; a later get_default_pool makes a new one."""
    global _default_pool
    with _default_lock:
        pool, _default_pool = _default_pool, None
    if pool is not None:
        pool.shutdown(wait=wait)
