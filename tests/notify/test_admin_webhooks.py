"""Admin delivery log (/admin/webhooks): access by role, what it shows, redelivery with CSRF."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from verifier.core.outbox import queue_email, queue_webhook
from verifier.models import AuditEvent, OutboxEmail, WebhookDelivery, WebhookEvent
from verifier.notify.mail import FAILED

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def event(db_session):
    (event,) = queue_webhook(db_session, "case.status_changed",
                          {"case_id": 3, "status": "approved", "order_external_id": "WEB-77"},
                          now=NOW)  # fmt: skip
    event.status, event.attempts, event.last_status_code = "failed", 15, 502
    event.last_error = "HTTP 502: upstream down"
    db_session.flush()
    db_session.add(WebhookDelivery(event_id=event.id, attempted_at=NOW, status_code=502,
                                   error="HTTP 502: upstream down", duration_ms=41))  # fmt: skip
    db_session.commit()
    return event


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/admin/webhooks/"), ("get", "/admin/webhooks/{id}"),
     ("post", "/admin/webhooks/{id}/redeliver")],
)  # fmt: skip
@pytest.mark.parametrize(("who", "expected"), [(None, 302), ("reviewer", 403), ("admin", 200)])
def test_only_admins_get_in(client, login, request, event, method, path, who, expected):
    if who:
        user = request.getfixturevalue("admin_user" if who == "admin" else "reviewer")
        login(client, user)
    response = getattr(client, method)(path.format(id=event.event_id))
    if who == "admin" and method == "post":
        expected = 303
    assert response.status_code == expected
    if who is None:
        assert "/staff/login" in response.headers["Location"]


def test_log_lists_events_attempts_and_failed_emails(client, login, admin_user, event,
                                                     db_session):  # fmt: skip
    db_session.add(OutboxEmail(kind="reminder", to_address="bob@example.com", subject="s",
                               text_body="secret link", html_body="<p>secret link</p>",
                               status=FAILED, attempts=10, last_error="SMTPServerDisconnected",
                               created_at=NOW, next_attempt_at=NOW))  # fmt: skip
    db_session.commit()
    login(client, admin_user)
    page = client.get("/admin/webhooks/").get_data(as_text=True)
    assert event.event_id[:12] in page and "failed" in page and "HTTP 502" in page
    assert "No webhook address is set" in page
    assert "SMTPServerDisconnected" in page and "reminder" in page
    assert "secret link" not in page and "bob@example.com" not in page
    filtered = client.get("/admin/webhooks/?status=delivered").get_data(as_text=True)
    assert event.event_id[:12] not in filtered
    detail = client.get(f"/admin/webhooks/{event.event_id}").get_data(as_text=True)
    assert "WEB-77" in detail and "41 ms" in detail and "upstream down" in detail
    assert client.get("/admin/webhooks/unknown-id").status_code == 404


def test_redeliver_resets_the_event_and_is_audited(client, login, admin_user, event, db_session):
    login(client, admin_user)
    response = client.post(f"/admin/webhooks/{event.event_id}/redeliver")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/admin/webhooks/{event.event_id}")
    db_session.rollback()
    db_session.expire_all()
    row = db_session.scalar(select(WebhookEvent))
    assert (row.status, row.attempts) == ("pending", 0)
    audit = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "webhook.redeliver"))
    assert audit.actor_type == "staff" and audit.actor_id == str(admin_user.id)
    assert "queued" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_redeliver_needs_the_csrf_token(app, client, login, admin_user, event, db_session):
    login(client, admin_user)
    app.config["WTF_CSRF_ENABLED"] = True
    url = f"/admin/webhooks/{event.event_id}/redeliver"
    assert client.post(url).status_code == 400
    db_session.rollback()
    db_session.expire_all()
    assert db_session.scalar(select(WebhookEvent.status)) == "failed"
    page = client.get("/admin/webhooks/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(url, data={"csrf_token": token}).status_code == 303
    db_session.rollback()
    db_session.expire_all()
    assert db_session.scalar(select(WebhookEvent.status)) == "pending"


def test_redeliver_while_sending_is_refused_with_a_message(client, login, admin_user, event,
                                                           db_session):  # fmt: skip
    event.status = "sending"
    db_session.commit()
    login(client, admin_user)
    response = client.post(f"/admin/webhooks/{event.event_id}/redeliver", follow_redirects=True)
    assert "being delivered right now" in response.get_data(as_text=True)


def test_page_shows_the_target_without_credentials(app, client, login, admin_user, event):
    app.config["WEBHOOK_URL"] = "https://user:pw@shop.example:8443/hooks?token=abc"
    login(client, admin_user)
    page = client.get("/admin/webhooks/").get_data(as_text=True)
    assert "https://shop.example:8443/hooks" in page
    assert "pw@" not in page and "token=abc" not in page


def test_queue_email_outbox_counts_show(client, login, admin_user, db_session):
    queue_email(db_session, kind="invitation", to_address="a@example.com", subject="s",
                text_body="t", html_body="h", now=NOW)  # fmt: skip
    db_session.commit()
    login(client, admin_user)
    page = client.get("/admin/webhooks/").get_data(as_text=True)
    assert "Customer emails" in page and "No webhook events yet" in page
