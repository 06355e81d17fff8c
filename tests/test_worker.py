"""The worker: due jobs run in turn, a failing job never stops the others, `--once` for cron,
and a real `verifier worker` process stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import select

from tests.conftest import make_environ
from tests.notify_helpers import WebhookReceiver
from verifier.config import PROJECT_ROOT
from verifier.core.outbox import queue_email, queue_webhook
from verifier.models import OutboxEmail, WebhookEvent
from verifier.worker import JOBS, Job, JobResult, register_job, run_worker


def queue_one_of_each(db_session, now: datetime) -> None:
    queue_email(db_session, kind="invitation", to_address="alice@example.com",
                subject="Please confirm your order", text_body="text", html_body="<p>html</p>",
                now=now)  # fmt: skip
    queue_webhook(db_session, "case.status_changed", {"case_id": None, "status": "x"}, now=now)
    db_session.commit()


def test_run_once_delivers_email_to_file_and_webhook_to_receiver(app, db_session):
    queue_one_of_each(db_session, datetime.now(UTC))
    with WebhookReceiver(app.config["WEBHOOK_SECRET"]) as receiver:
        app.config["WEBHOOK_URL"] = receiver.url
        results = run_worker(app, once=True)
    by_name = {r.name: r for r in results}
    assert by_name["deliver-emails"].ok and by_name["deliver-emails"].summary["sent"] == 1
    assert by_name["deliver-webhooks"].summary["sent"] == 1
    assert len(list((app.config["INSTANCE_DIR"] / "outbox").glob("*.eml"))) == 1
    (hook,) = receiver.requests
    assert hook.verified
    db_session.rollback()
    assert db_session.scalar(select(OutboxEmail.status)) == "sent"
    assert db_session.scalar(select(WebhookEvent.status)) == "delivered"


def test_a_failing_job_does_not_stop_the_others(app, caplog):
    ran = []

    def broken(app, now):
        raise RuntimeError("boom")

    def fine(app, now):
        ran.append(now)
        return {"done": 1}

    jobs = [Job("broken", 1, broken), Job("fine", 1, fine)]
    results = run_worker(app, once=True, jobs=jobs)
    assert [(r.name, r.ok) for r in results] == [("broken", False), ("fine", True)]
    assert len(ran) == 1 and "job broken failed" in caplog.text and "boom" in caplog.text
    assert results[0].line() == "broken: failed (see the log)"
    assert results[1].line() == "fine: done=1"


def test_loop_runs_jobs_when_due_and_stops_on_request(app):
    stop = threading.Event()
    runs = {"fast": 0, "slow": 0, "broken": 0}

    def counter(name):
        def run(app, now):
            runs[name] += 1
            if name == "broken":
                raise ValueError("always")
            if runs["fast"] >= 4:
                stop.set()

        return run

    jobs = [Job("fast", 0.05, counter("fast")), Job("slow", 60, counter("slow")),
            Job("broken", 0.05, counter("broken"))]  # fmt: skip
    worker = threading.Thread(target=run_worker, args=(app,),
                              kwargs={"stop_event": stop, "jobs": jobs})  # fmt: skip
    started = time.monotonic()
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 5
    assert runs["fast"] >= 4 and runs["slow"] == 1 and runs["broken"] >= 3


def test_a_long_job_in_its_own_lane_holds_back_no_other_job(app):
    # A purge of a large backlog runs for minutes: emails, webhooks and link expiry go on.
    stop, release = threading.Event(), threading.Event()
    runs = {"quick": 0, "long": 0}
    released_while_running = []

    def long_job(app, now):
        runs["long"] += 1
        # Still "purging": only a quick job running meanwhile, in another lane, releases it.
        released_while_running.append(release.wait(10))

    def quick_job(app, now):
        runs["quick"] += 1
        if runs["quick"] >= 5:
            release.set()
            stop.set()

    jobs = [Job("long", 60, long_job, lane="purge"), Job("quick", 0.02, quick_job)]
    worker = threading.Thread(target=run_worker, args=(app,),
                              kwargs={"stop_event": stop, "jobs": jobs})  # fmt: skip
    worker.start()
    worker.join(timeout=15)
    assert not worker.is_alive()
    assert runs == {"quick": 5, "long": 1}
    assert released_while_running == [True]  # run one after the other, it would time out


def test_the_purge_has_a_lane_of_its_own():
    lanes = {job.name: job.lane for job in JOBS}
    assert lanes["purge"] != lanes["deliver-emails"] == lanes["deliver-webhooks"]
    assert lanes["expire-links"] == lanes["deliver-emails"]


def test_register_job_appends_and_replaces_by_name():
    before = list(JOBS)
    try:
        job = register_job(Job("purge-test", 3600, lambda app, now: None))
        assert JOBS[-1] is job
        again = register_job(Job("purge-test", 60, lambda app, now: None))
        assert [j for j in JOBS if j.name == "purge-test"] == [again]
    finally:
        JOBS[:] = before
    assert [j.name for j in JOBS[:2]] == ["deliver-emails", "deliver-webhooks"]


def test_cli_once_prints_a_line_per_job(runner, db_session):
    queue_one_of_each(db_session, datetime.now(UTC))
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "deliver-emails: sent=1, failed=0" in result.output
    # No VERIFIER_WEBHOOK_URL in the test settings: the event is kept and marked skipped.
    assert "deliver-webhooks: sent=0, failed=0, skipped=1" in result.output


def test_cli_once_exits_1_when_a_job_failed(runner, monkeypatch):
    monkeypatch.setattr("verifier.worker.JOBS", [Job("broken", 1, lambda a, n: 1 / 0)])
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 1 and "broken: failed" in result.output
    assert JobResult("x", ok=True).line() == "x: done"


def test_real_worker_process_delivers_then_stops_on_sigterm(app, db_session, tmp_path,
                                                            database_url):  # fmt: skip
    queue_one_of_each(db_session, datetime.now(UTC))
    instance = tmp_path / "worker-instance"
    env = {**os.environ, **make_environ(tmp_path, database_url), "PYTHONUNBUFFERED": "1"}
    env.update(VERIFIER_INSTANCE_DIR=str(instance), VERIFIER_LOG_LEVEL="INFO")
    process = subprocess.Popen(
        [sys.executable, "-m", "verifier", "worker"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if "worker started" in line:
                break
        deadline = time.monotonic() + 30
        while not list((instance / "outbox").glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list((instance / "outbox").glob("*.eml")), "".join(output)
        process.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        rest, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, "".join(output) + rest
    assert time.monotonic() - sent_at < 5
    assert "worker stopped" in rest
