"""The endpoints on the webhooks page: add (secret shown once), clear errors, edit, enable and
disable, rotate, delete with confirmation, test ping with its result, order numbers in the log,
and CSRF. Who may reach each route is in tests/web/test_access_matrix.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.notify_helpers import WebhookReceiver, closed_port
from verifier.core.endpoints import WebhookEndpoint
from verifier.core.outbox import queue_webhook
from verifier.models import AuditEvent, WebhookEvent

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def admin(client, login, admin_user):
    login(client, admin_user)
    return client


def add(client, url="https://shop.example/hooks", **extra):
    data = {"url": url, "description": "order system", "scope": "all", "enabled": "y", **extra}
    return client.post("/admin/webhooks/endpoints/new", data=data)


def secret_on(page: str) -> str:
    return re.search(r'<code class="dl-secret" id="secret">([^<]+)</code>', page).group(1)


def reread(db_session, model, **where):
    db_session.rollback()
    db_session.expire_all()
    return db_session.scalar(select(model).filter_by(**where))


def test_adding_shows_the_secret_once_and_audits_who(admin, db_session, admin_user):
    response = add(admin)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    secret = secret_on(page)
    assert "shown only this once" in page
    assert response.headers["Cache-Control"].startswith("no-store")
    endpoint = reread(db_session, WebhookEndpoint)
    assert endpoint.created_by_id == admin_user.id and endpoint.description == "order system"
    assert secret not in endpoint.secret
    for url in ("/admin/webhooks/", f"/admin/webhooks/endpoints/{endpoint.id}"):
        again = admin.get(url).get_data(as_text=True)
        assert "https://shop.example/hooks" in again and secret not in again
    audit = db_session.scalar(select(AuditEvent).where(AuditEvent.action
                                                       == "webhook_endpoint.created"))  # fmt: skip
    assert audit.actor_id == str(admin_user.id)


@pytest.mark.parametrize(
    ("url", "message"),
    [("ftp://shop.example/x", "full http(s) address"), ("", "Enter the endpoint"),
     ("not a url", "full http(s) address")],
)  # fmt: skip
def test_a_bad_address_is_refused_with_a_clear_message(admin, db_session, url, message):
    response = add(admin, url=url)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'aria-invalid="true"' in page
    assert reread(db_session, WebhookEndpoint) is None


def test_production_wants_https_outside_localhost(app, admin, db_session):
    app.config["ENV_NAME"] = "production"
    refused = add(admin, url="http://shop.example/hooks")
    assert refused.status_code == 422 and "https://" in refused.get_data(as_text=True)
    assert add(admin, url="http://127.0.0.1:5100/hooks").status_code == 200


def test_choosing_types_needs_at_least_one(admin):
    response = add(admin, scope="chosen")
    assert response.status_code == 422
    assert "Tick at least one event type" in response.get_data(as_text=True)


def test_edit_changes_url_filter_and_switch(admin, db_session):
    add(admin)
    endpoint = reread(db_session, WebhookEndpoint)
    response = admin.post(f"/admin/webhooks/endpoints/{endpoint.id}",
                          data={"url": "https://erp.example/in", "scope": "chosen",
                                "description": "order system",
                                "event_types": "case.status_changed"})  # fmt: skip
    assert response.status_code == 303
    endpoint = reread(db_session, WebhookEndpoint)
    assert (endpoint.url, endpoint.event_types, endpoint.enabled) == (
        "https://erp.example/in", ["case.status_changed"], False)  # fmt: skip
    audit = db_session.scalar(select(AuditEvent).where(AuditEvent.action
                                                       == "webhook_endpoint.updated"))  # fmt: skip
    assert audit.details["changed"] == ["enabled", "event_types", "url"]
    assert admin.post(f"/admin/webhooks/endpoints/{endpoint.id}",
                      data={"url": "gopher://x"}).status_code == 422  # fmt: skip
    assert admin.get("/admin/webhooks/endpoints/9999").status_code == 404


def test_disable_enable_and_rotate(admin, db_session):
    first = secret_on(add(admin).get_data(as_text=True))
    endpoint = reread(db_session, WebhookEndpoint)
    base = f"/admin/webhooks/endpoints/{endpoint.id}"
    page = admin.post(f"{base}/disable", follow_redirects=True).get_data(as_text=True)
    assert "disabled" in page and reread(db_session, WebhookEndpoint).enabled is False
    admin.post(f"{base}/enable")
    assert reread(db_session, WebhookEndpoint).enabled is True
    rotated = admin.post(f"{base}/rotate", data={"overlap": "24"})
    assert rotated.status_code == 200
    text = rotated.get_data(as_text=True)
    second = secret_on(text)
    assert second != first and "two" in text and "signatures" in text
    endpoint = reread(db_session, WebhookEndpoint)
    assert endpoint.previous_secret and endpoint.previous_expires_at
    assert "also signs every event until" in admin.get(base).get_data(as_text=True)
    assert admin.post(f"{base}/rotate", data={"overlap": "9999"}).status_code == 303


def test_delete_needs_the_confirmation(admin, db_session):
    add(admin)
    endpoint = reread(db_session, WebhookEndpoint)
    path = f"/admin/webhooks/endpoints/{endpoint.id}/delete"
    assert "cannot be undone" in admin.get(path).get_data(as_text=True)
    refused = admin.post(path)
    assert refused.status_code == 422 and "Tick the box" in refused.get_data(as_text=True)
    assert reread(db_session, WebhookEndpoint).deleted_at is None
    done = admin.post(path, data={"confirm": "y"}, follow_redirects=True)
    assert "is deleted" in done.get_data(as_text=True)
    assert reread(db_session, WebhookEndpoint).deleted_at is not None
    assert admin.get(f"/admin/webhooks/endpoints/{endpoint.id}").status_code == 404


def test_send_test_ping_shows_the_result(admin, db_session):
    secret = secret_on(add(admin, url="http://127.0.0.1:5110/hooks").get_data(as_text=True))
    endpoint = reread(db_session, WebhookEndpoint)
    with WebhookReceiver(secret, port=5110) as shop:
        response = admin.post(f"/admin/webhooks/endpoints/{endpoint.id}/ping",
                              follow_redirects=True)  # fmt: skip
    page = response.get_data(as_text=True)
    assert "The test ping was delivered (HTTP 204" in page
    (hook,) = shop.requests
    assert hook.verified
    event = reread(db_session, WebhookEvent, event_type="ping")
    assert event.status == "delivered" and event.endpoint_id == endpoint.id
    assert db_session.scalar(select(AuditEvent).where(AuditEvent.action == "webhook.ping"))


def test_a_failed_ping_says_what_went_wrong(admin, db_session):
    add(admin, url=f"http://127.0.0.1:{closed_port()}/hooks")
    endpoint = reread(db_session, WebhookEndpoint)
    page = admin.post(f"/admin/webhooks/endpoints/{endpoint.id}/ping",
                      follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "The test ping was not accepted (no answer)" in page and "Connection refused" in page


def test_the_log_shows_order_numbers_and_endpoints_and_finds_an_order(admin, db_session):
    add(admin)
    for order in ("WEB-100", "WEB-200"):
        data = {"case_id": 1, "status": "approved", "order_external_id": order}
        queue_webhook(db_session, "case.status_changed", data, now=NOW)
    db_session.commit()
    page = admin.get("/admin/webhooks/").get_data(as_text=True)
    assert "WEB-100" in page and "WEB-200" in page
    assert page.count("https://shop.example/hooks") >= 3  # the endpoint row and each event
    found = admin.get("/admin/webhooks/?order=WEB-200").get_data(as_text=True)
    assert "WEB-200" in found and "WEB-100" not in found
    none = admin.get("/admin/webhooks/?order=NOPE").get_data(as_text=True)
    assert "for order NOPE" in none


def test_forms_need_the_csrf_token(app, admin, db_session):
    app.config["WTF_CSRF_ENABLED"] = True
    assert add(admin).status_code == 400  # refused before the view: nothing created
    assert reread(db_session, WebhookEndpoint) is None
    form = admin.get("/admin/webhooks/endpoints/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    assert add(admin, csrf_token=token).status_code == 200
    endpoint = reread(db_session, WebhookEndpoint)
    for action in ("disable", "ping", "rotate"):
        admin.post(f"/admin/webhooks/endpoints/{endpoint.id}/{action}")
    endpoint = reread(db_session, WebhookEndpoint)
    assert endpoint.enabled and endpoint.secret_rotated_at is None
    assert reread(db_session, WebhookEvent) is None
