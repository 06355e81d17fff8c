"""The purge runs at a background CPU priority, on its own thread only, so requests beside a
long purge come first (the worker's other lane keeps its priority)."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

from verifier import worker
from verifier.retention.priority import BACKGROUND_NICE, run_in_background_priority


def _nice(thread_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, thread_id)


def test_the_purge_thread_yields_the_cpu_and_the_others_keep_their_priority():
    main_before = _nice(threading.get_native_id())
    seen: dict[str, int | None] = {}

    def purge_lane() -> None:
        seen["returned"] = run_in_background_priority()
        seen["measured"] = _nice(threading.get_native_id())
        seen["again"] = run_in_background_priority()  # each run: no further drop

    lane = threading.Thread(target=purge_lane)
    lane.start()
    lane.join()
    expected = max(BACKGROUND_NICE, main_before)
    assert seen == {"returned": expected, "measured": expected, "again": expected}
    assert _nice(threading.get_native_id()) == main_before  # the caller's thread is untouched


def test_the_worker_runs_its_purge_at_background_priority(app):
    measured: list[int] = []

    def purge_lane() -> None:
        worker.purge(app, datetime.now(UTC))  # the real job
        measured.append(_nice(threading.get_native_id()))

    lane = threading.Thread(target=purge_lane)
    lane.start()
    lane.join()
    assert measured and measured[0] >= BACKGROUND_NICE
