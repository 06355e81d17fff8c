"""The long-running `verifier worker`: runs each registered job when it is due, one app context
(so one session and transaction) per run; several worker processes may run at once."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from verifier.core.policies import current_settings
from verifier.db import new_session
from verifier.notify.endpoints import forget_expired_previous_secrets
from verifier.notify.mail import backend_from_config, deliver_due_emails
from verifier.notify.webhooks import deliver_due_webhooks
from verifier.portal.customer_mail import PortalContext
from verifier.portal.links import expire_overdue_cases, send_due_reminders
from verifier.portal.receipts import send_outcome_receipts
from verifier.retention.priority import run_in_background_priority
from verifier.retention.purge import purge_due_documents
from verifier.vault.storage import Keyring

log = logging.getLogger(__name__)

# How often the loop wakes to look at a stop request while it waits for the next due job.
POLL_SECONDS = 0.25
MAIN_LANE = "main"


@dataclass(frozen=True)
class Job:
    """A timer: `run(app, now)` does one pass and returns counts for the summary (or None).

    A job must be safe with several workers running it at once (claim rows before acting).
    """

    name: str
    interval_seconds: float
    run: Callable[[Flask, datetime], dict[str, Any] | None]
    # Jobs of one lane run one after another; each lane has its own thread, so a long job
    # (a purge of a backlog) never holds back the emails, webhooks and link expiry.
    lane: str = "main"


@dataclass(frozen=True)
class JobResult:
    name: str
    ok: bool
    summary: dict[str, Any] | None = None

    def line(self) -> str:
        if not self.ok:
            return f"{self.name}: failed (see the log)"
        counts = ", ".join(f"{k}={v}" for k, v in (self.summary or {}).items())
        return f"{self.name}: {counts or 'done'}"


def deliver_emails(app: Flask, now: datetime) -> dict[str, Any]:
    report = deliver_due_emails(
        lambda: new_session(app),
        backend_from_config(app.config),
        now,
        mail_from=app.config["MAIL_FROM"],
        keyring=Keyring.from_config(app.config),
        shop_name=app.config["SHOP_NAME"],
    )
    return report.as_dict()


def deliver_webhooks(app: Flask, now: datetime) -> dict[str, Any]:
    with new_session(app) as session:
        forgotten = forget_expired_previous_secrets(session, now)
        session.commit()
    report = deliver_due_webhooks(
        lambda: new_session(app),
        app.config["WEBHOOK_URL"],
        app.config["WEBHOOK_SECRET"],
        now,
        timeout=app.config["WEBHOOK_TIMEOUT"],
        keyring=Keyring.from_config(app.config),
    )
    return report.as_dict() | ({"previous_secrets_forgotten": forgotten} if forgotten else {})


def purge(app: Flask, now: datetime) -> dict[str, Any]:
    session = new_session(app)
    try:
        settings = current_settings(session)
        session.commit()
    finally:
        session.close()
    run_in_background_priority()  # this lane's thread only: the other lane keeps its priority
    report = purge_due_documents(
        lambda: new_session(app), app.config["UPLOADS_DIR"], now, settings, actor="worker"
    )
    return report.counts()


def expire_links(app: Flask, now: datetime) -> dict[str, Any]:
    session = new_session(app)
    try:
        expired = expire_overdue_cases(session, now=now)
        session.commit()
    finally:
        session.close()
    return {"cases_expired": expired}


def send_reminders(app: Flask, now: datetime) -> dict[str, Any]:
    session = new_session(app)
    try:
        portal = PortalContext.from_config(app.config)
        sent = send_due_reminders(
            session, portal=portal, settings=current_settings(session), now=now
        )
        session.commit()
    finally:
        session.close()
    return {"reminders_queued": sent}


def send_outcomes(app: Flask, now: datetime) -> dict[str, Any]:
    session = new_session(app)
    try:
        queued = send_outcome_receipts(session, portal=PortalContext.from_config(app.config),
                                       now=now)  # fmt: skip
        session.commit()
    finally:
        session.close()
    return {"outcomes_queued": queued}


# Every timer of the product. Add yours here (or call register_job from your module's
# import-time code): name, seconds between runs, run(app, now) -> counts.
JOBS: list[Job] = [
    Job("deliver-emails", 10, deliver_emails),
    Job("deliver-webhooks", 10, deliver_webhooks),
    Job("purge", 3600, purge, lane="purge"),
    Job("expire-links", 300, expire_links),
    Job("send-reminders", 300, send_reminders),
    Job("send-outcomes", 60, send_outcomes),
]


def register_job(job: Job) -> Job:
    """Add a job to JOBS, replacing one of the same name; returns it."""
    JOBS[:] = [j for j in JOBS if j.name != job.name]
    JOBS.append(job)
    return job


def run_job(app: Flask, job: Job, now: datetime) -> JobResult:
    """Run one job in a fresh app context; an exception is logged and reported, never raised."""
    try:
        with app.app_context():
            summary = job.run(app, now)
    except Exception:
        log.exception("job %s failed", job.name)
        return JobResult(job.name, ok=False)
    if summary and any(summary.values()):
        log.info("job %s: %s", job.name, summary)
    return JobResult(job.name, ok=True, summary=summary)


class _StopSignals:
    """SIGTERM/SIGINT ask the loop to stop between jobs; a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, _frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        # Only a flag: locking (Event.set) inside a signal handler can deadlock the main thread.
        self.requested = True
        log.info("worker: %s received, stopping after the current job", signal.Signals(signum).name)

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run_worker(
    app: Flask,
    *,
    once: bool = False,
    stop_event: threading.Event | None = None,
    jobs: list[Job] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[JobResult]:
    """Run the jobs until SIGTERM/SIGINT or `stop_event`, each lane in a thread of its own;
    with `once`, run each once and return their results (the loop returns the results of
    each job's last run)."""
    jobs = list(JOBS if jobs is None else jobs)
    stop_event = stop_event or threading.Event()
    if once:
        return [run_job(app, job, clock()) for job in jobs]
    lanes: dict[str, list[Job]] = {}
    for job in jobs:
        lanes.setdefault(job.lane, []).append(job)
    results: dict[str, JobResult] = {}
    with _StopSignals() as signals:
        # Logged once the signal handlers are in place: from here SIGTERM stops it cleanly.
        log.info("worker started with jobs: %s", ", ".join(job.name for job in jobs))

        def stopping() -> bool:
            return signals.requested or stop_event.is_set()

        def run_lane(lane_jobs: list[Job]) -> None:
            next_due = dict.fromkeys((job.name for job in lane_jobs), time.monotonic())
            while not stopping():
                for job in lane_jobs:
                    if stopping():
                        break
                    if time.monotonic() >= next_due[job.name]:
                        results[job.name] = run_job(app, job, clock())
                        next_due[job.name] = time.monotonic() + job.interval_seconds
                wake_at = min(next_due.values(), default=time.monotonic() + 1)
                while not stopping() and time.monotonic() < wake_at:
                    stop_event.wait(min(POLL_SECONDS, max(wake_at - time.monotonic(), 0)))

        # Signals reach the main thread only, so it runs the main lane and the others get
        # threads; each stops after its current job.
        others = [
            threading.Thread(target=run_lane, args=(lane_jobs,), name=f"lane-{lane}")
            for lane, lane_jobs in lanes.items()
            if lane != MAIN_LANE
        ]
        for thread in others:
            thread.start()
        run_lane(lanes.get(MAIN_LANE, []))
        for thread in others:
            thread.join()
    log.info("worker stopped")
    return list(results.values())
