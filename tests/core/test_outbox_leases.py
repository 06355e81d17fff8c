"""Claimed outbox rows stay leased while a worker works on them, and come free soon after a
worker dies mid-batch (instead of after the longest lease a batch could need)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from verifier.core.outbox import queue_webhook, renewing_claims
from verifier.db import new_session
from verifier.models import WebhookEvent
from verifier.notify.webhooks import claim_due_events

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=1.5)


def _claim(app, now):
    with new_session(app) as session:
        claimed = claim_due_events(session, now, batch=10, lease=LEASE)
        session.commit()
    return claimed


def test_a_busy_worker_keeps_its_claims_and_a_dead_one_gives_them_back(app, db_session):
    for i in range(3):
        queue_webhook(db_session, "case.status_changed", {"case_id": i}, now=NOW)
    db_session.commit()
    claimed = _claim(app, NOW)
    assert len(claimed) == 3
    leases = [(event.id, event.attempt) for event in claimed]
    began = time.monotonic()

    def pass_clock() -> datetime:
        return NOW + timedelta(seconds=time.monotonic() - began)

    # A batch that takes three leases' time: renewed all along, nobody else can take it.
    with renewing_claims(lambda: new_session(app), WebhookEvent, leases, started=NOW,
                         lease=LEASE):  # fmt: skip
        deadline = time.monotonic() + 3 * LEASE.total_seconds()
        while time.monotonic() < deadline:
            assert _claim(app, pass_clock()) == []
            time.sleep(0.1)
    # Renewals stopped (the worker "died" here): one lease later another worker takes them.
    time.sleep(LEASE.total_seconds() * 1.5)
    again = _claim(app, pass_clock())
    assert sorted(e.id for e in again) == sorted(e.id for e in claimed)
    assert all(e.attempt == 2 for e in again)
