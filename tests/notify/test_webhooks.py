"""Shop webhooks: signatures, a real receiver on loopback, retries with back-off, per-case order,
redelivery, and two workers delivering at once."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.notify_helpers import WebhookReceiver, closed_port
from verifier.core.outbox import queue_webhook
from verifier.db import new_session
from verifier.errors import ConflictError, NotFoundError
from verifier.models import AuditEvent, WebhookDelivery, WebhookEvent
from verifier.notify.webhooks import (
    MAX_WEBHOOK_ATTEMPTS,
    deliver_due_webhooks,
    event_body,
    redeliver,
    sign_payload,
    verify_signature,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + "k" * 40


def queue(db_session, n: int = 1, *, case_id: int | None = None, now: datetime = NOW) -> list:
    # With no endpoint configured, each event is one row for the VERIFIER_WEBHOOK_URL default.
    events = [
        event
        for i in range(n)
        for event in queue_webhook(
            db_session,
            "case.status_changed",
            {"case_id": case_id, "status": f"step-{i}", "order_external_id": f"A-{i}"},
            now=now,
        )
    ]
    db_session.commit()
    return [e.event_id for e in events]


def fresh(db_session, event_id: str) -> WebhookEvent:
    db_session.rollback()  # end the read snapshot: see what the workers committed
    db_session.expire_all()
    return db_session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))


def deliver(app, url: str, now: datetime = NOW, **kwargs):
    return deliver_due_webhooks(lambda: new_session(app), url, SECRET, now, timeout=5, **kwargs)


# --- signatures ------------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"id":"e1"}'
    header = sign_payload(SECRET, 1_700_000_000, body)
    t, v1 = header.split(",")
    assert t == "t=1700000000" and v1.startswith("v1=") and len(v1) == 3 + 64
    assert verify_signature(SECRET, header, body, 1_700_000_000 + 299)


@pytest.mark.parametrize(
    ("case", "header_of", "body", "now"),
    [
        ("tampered body", lambda h: h, b'{"id":"e2"}', 1_700_000_000),
        ("old timestamp", lambda h: h, b'{"id":"e1"}', 1_700_000_000 + 301),
        ("future timestamp", lambda h: h, b'{"id":"e1"}', 1_700_000_000 - 301),
        ("wrong secret", lambda h: sign_payload("x" * 40, 1_700_000_000, b'{"id":"e1"}'),
         b'{"id":"e1"}', 1_700_000_000),
        ("timestamp swapped", lambda h: h.replace("t=1700000000", "t=1700000100"),
         b'{"id":"e1"}', 1_700_000_100),
        ("no v1", lambda h: h.split(",")[0], b'{"id":"e1"}', 1_700_000_000),
        ("garbage", lambda h: "nonsense", b'{"id":"e1"}', 1_700_000_000),
        ("empty", lambda h: "", b'{"id":"e1"}', 1_700_000_000),
    ],
)  # fmt: skip
def test_bad_signatures_fail(case, header_of, body, now):
    header = sign_payload(SECRET, 1_700_000_000, b'{"id":"e1"}')
    assert not verify_signature(SECRET, header_of(header), body, now)


def test_several_v1_entries_allow_secret_rotation():
    body = b"{}"
    old = sign_payload("o" * 40, 1_700_000_000, body)
    new = sign_payload(SECRET, 1_700_000_000, body)
    both = f"{new},{old.split(',')[1]}"
    assert verify_signature("o" * 40, both, body, datetime.fromtimestamp(1_700_000_000, UTC))
    assert verify_signature(SECRET, both, body, 1_700_000_000)


# --- delivery to a real receiver -------------------------------------------------------


def test_event_arrives_signed_with_id_headers_and_is_logged(app, db_session):
    (event_id,) = queue(db_session, case_id=None)
    with WebhookReceiver(SECRET, clock=NOW) as receiver:
        report = deliver(app, receiver.url)
    assert (report.sent, report.retried) == (1, 0)
    (hook,) = receiver.requests
    assert hook.verified and hook.answered == 204
    assert hook.header_event_id == event_id == hook.event_id
    assert hook.content_type == "application/json"
    payload = json.loads(hook.body)
    assert payload["type"] == "case.status_changed"
    assert payload["data"]["order_external_id"] == "A-0"
    row = fresh(db_session, event_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 204)
    assert row.delivered_at == NOW
    (attempt,) = db_session.scalars(select(WebhookDelivery)).all()
    assert (attempt.event_id, attempt.status_code, attempt.error) == (row.id, 204, None)
    assert attempt.duration_ms >= 0


def test_failing_receiver_gets_retries_until_it_recovers(app, db_session):
    (event_id,) = queue(db_session)
    now = NOW
    with WebhookReceiver(SECRET, fail_first=3, fail_status=503) as receiver:
        delays = []
        for _ in range(3):
            receiver.clock = now
            assert deliver(app, receiver.url, now).retried == 1
            row = fresh(db_session, event_id)
            assert (row.status, row.last_status_code) == ("pending", 503)
            delays.append(row.next_attempt_at - now)
            # Before the back-off ends, nothing is sent.
            assert deliver(app, receiver.url, row.next_attempt_at - timedelta(seconds=1)).sent == 0
            now = row.next_attempt_at
        receiver.clock = now
        assert deliver(app, receiver.url, now).sent == 1
    assert delays == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert receiver.delivered_ids() == [event_id]
    # Every attempt carried the same event id and body: the shop can drop duplicates.
    assert {h.event_id for h in receiver.requests} == {event_id}
    assert len({h.body for h in receiver.requests}) == 1
    row = fresh(db_session, event_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 4, 204)
    codes = db_session.scalars(
        select(WebhookDelivery.status_code).order_by(WebhookDelivery.id)
    ).all()
    assert codes == [503, 503, 503, 204]


def test_network_error_is_retried_and_recorded(app, db_session):
    (event_id,) = queue(db_session)
    report = deliver(app, f"http://127.0.0.1:{closed_port()}/hook")
    assert report.retried == 1
    row = fresh(db_session, event_id)
    assert (row.status, row.last_status_code) == ("pending", None)
    assert "Connection refused" in row.last_error or "ConnectionRefused" in row.last_error
    attempt = db_session.scalar(select(WebhookDelivery))
    assert attempt.status_code is None and attempt.error == row.last_error


def test_redirect_is_not_followed(app, db_session):
    (event_id,) = queue(db_session)
    with (
        WebhookReceiver(SECRET, clock=NOW) as elsewhere,
        WebhookReceiver(SECRET, clock=NOW, redirect_to=elsewhere.url) as receiver,
    ):
        assert deliver(app, receiver.url).retried == 1
    assert elsewhere.requests == []
    row = fresh(db_session, event_id)
    assert (row.status, row.last_status_code) == ("pending", 307)


def test_gives_up_after_max_attempts(app, db_session, caplog):
    (event_id,) = queue(db_session)
    url, now = f"http://127.0.0.1:{closed_port()}/hook", NOW
    for _ in range(MAX_WEBHOOK_ATTEMPTS):
        deliver(app, url, now)
        row = fresh(db_session, event_id)
        now = row.next_attempt_at if row.status == "pending" else now
    assert (row.status, row.attempts) == ("failed", MAX_WEBHOOK_ATTEMPTS)
    assert f"failed after {MAX_WEBHOOK_ATTEMPTS} attempts" in caplog.text
    assert db_session.scalar(select(func.count(WebhookDelivery.id))) == MAX_WEBHOOK_ATTEMPTS


def test_events_of_one_case_arrive_in_order(app, db_session):
    first, second = queue(db_session, 2, case_id=7)
    (other,) = queue(db_session, 1, case_id=8)
    with WebhookReceiver(SECRET, clock=NOW, fail_first=1) as receiver:
        report = deliver(app, receiver.url)
        # The first event of case 7 failed, so the second waits; case 8 is not held up.
        assert (report.sent, report.retried) == (1, 1)
        assert receiver.delivered_ids() == [other]
        assert fresh(db_session, second).attempts == 0
        later = fresh(db_session, first).next_attempt_at
        receiver.clock = later
        assert deliver(app, receiver.url, later).sent == 2
    assert receiver.delivered_ids() == [other, first, second]


def test_without_url_events_are_skipped_and_kept(app, db_session, caplog):
    caplog.set_level(logging.INFO, logger="verifier")
    (event_id,) = queue(db_session)
    report = deliver_due_webhooks(lambda: new_session(app), "", SECRET, NOW)
    assert report.skipped == 1
    row = fresh(db_session, event_id)
    assert row.status == "skipped" and "VERIFIER_WEBHOOK_URL" in row.last_error
    assert "skipped" in caplog.text
    # Once a URL is configured, an admin can send it after all.
    redeliver(db_session, event_id, NOW, actor_id=None)
    db_session.commit()
    with WebhookReceiver(SECRET, clock=NOW) as receiver:
        assert deliver(app, receiver.url).sent == 1
    assert receiver.delivered_ids() == [event_id]


def test_redeliver_sends_the_same_event_again_and_is_audited(app, db_session):
    (event_id,) = queue(db_session)
    with WebhookReceiver(SECRET, clock=NOW) as receiver:
        deliver(app, receiver.url)
        row = fresh(db_session, event_id)
        redeliver(db_session, event_id, NOW + timedelta(hours=1), actor_id=None)
        db_session.commit()
        receiver.clock = NOW + timedelta(hours=1)
        assert deliver(app, receiver.url, NOW + timedelta(hours=1)).sent == 1
    first, again = receiver.requests
    assert first.body == again.body == event_body(row.payload)
    assert first.signature != again.signature  # a fresh timestamp each time
    assert fresh(db_session, event_id).status == "delivered"
    audit = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "webhook.redeliver"))
    assert audit.target_id == event_id and audit.details == {"previous_status": "delivered"}


def test_redeliver_refuses_unknown_and_in_flight_events(app, db_session):
    with pytest.raises(NotFoundError):
        redeliver(db_session, "nope", NOW)
    (event_id,) = queue(db_session)
    row = fresh(db_session, event_id)
    row.status = "sending"
    db_session.commit()
    with pytest.raises(ConflictError):
        redeliver(db_session, event_id, NOW)


def test_two_workers_at_once_deliver_each_event_once(app, db_session):
    ids = queue(db_session, 30)
    start = threading.Barrier(2)
    per_worker = [0, 0]

    with WebhookReceiver(SECRET, clock=NOW, delay=0.01) as receiver:

        def work(n: int) -> None:
            start.wait()
            while sent := deliver(app, receiver.url, batch=3).sent:
                per_worker[n] += sent

        threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert sorted(receiver.delivered_ids()) == sorted(ids)
    assert len(receiver.requests) == 30
    assert sum(per_worker) == 30 and min(per_worker) > 0, per_worker
    db_session.rollback()
    assert db_session.scalar(select(func.count(WebhookDelivery.id))) == 30
    statuses = set(db_session.scalars(select(WebhookEvent.status)))
    assert statuses == {"delivered"}
