"""The purge yields the CPU to the requests: on a small host, intake beside a long purge lost
its rate to the purge's CPU time more than to its database lock (bench.intake_purge)."""

from __future__ import annotations

import os
import threading

# A nice value of 10: the scheduler gives the purge what the web workers leave.
BACKGROUND_NICE = 10


def run_in_background_priority() -> int | None:
    """Lower the calling thread's CPU priority to BACKGROUND_NICE (never raise it) and return
    the nice value it runs at; None where the platform has no per-thread priority.

    On Linux a nice value belongs to a thread, so the worker's purge lane slows alone while the
    worker's other lane (emails, webhooks, link expiry) keeps its priority. Only ever raising
    the value needs no privilege."""
    if not hasattr(os, "setpriority"):
        return None
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        if current < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, thread, BACKGROUND_NICE)
        return os.getpriority(os.PRIO_PROCESS, thread)
    except OSError:
        return None
