"""Webhook endpoints: sealed secrets, fan-out by filter, the env default, rotation with two
signatures, disable/enable without loss, delete, ping, and master-key rotation of the secrets.

Receivers listen on real loopback ports (5101-5109, this area's range)."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.auth_helpers import make_app
from tests.notify_helpers import WebhookReceiver, closed_port
from verifier.commands import SEALED_COLUMNS
from verifier.core.endpoints import WebhookEndpoint
from verifier.core.outbox import queue_webhook
from verifier.db import new_session
from verifier.errors import ConflictError, ValidationError
from verifier.models import AuditEvent, WebhookEvent
from verifier.notify.endpoints import (
    ENDPOINT_SECRET_PURPOSE,
    EndpointInput,
    Target,
    check_endpoint_url,
    create_endpoint,
    delete_endpoint,
    forget_expired_previous_secrets,
    queue_ping,
    rotate_endpoint_secret,
    secret_binding,
    set_endpoint_enabled,
    update_endpoint,
)
from verifier.notify.webhooks import (
    SIGNATURE_HEADER,
    deliver_due_webhooks,
    deliver_event_now,
    redeliver,
    verify_signature,
)
from verifier.vault.rotation import key_usage, rotate_master_key
from verifier.vault.secretbox import open_sealed
from verifier.vault.storage import Keyring, generate_master_key

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ENV_SECRET = "whsec_" + "e" * 40
PORTS = itertools.cycle(range(5101, 5109))  # 5109: the master-key test


@pytest.fixture
def keyring(app):
    return Keyring.from_config(app.config)


def add(db_session, keyring, url, **spec):
    endpoint, secret = create_endpoint(db_session, keyring, EndpointInput(url=url, **spec),
                                       production=False, actor_id=None, now=NOW)  # fmt: skip
    db_session.commit()
    return endpoint, secret


def status_change(db_session, order="WEB-1", case_id=1, event_type="case.status_changed"):
    rows = queue_webhook(db_session, event_type,
                         {"case_id": case_id, "status": "approved", "order_external_id": order},
                         now=NOW)  # fmt: skip
    db_session.commit()
    return rows


def deliver(app, keyring, now=NOW, url=""):
    return deliver_due_webhooks(lambda: new_session(app), url, ENV_SECRET, now, timeout=5,
                                keyring=keyring)  # fmt: skip


def fresh(db_session, model, **where):
    db_session.rollback()
    db_session.expire_all()
    return db_session.scalar(select(model).filter_by(**where))


def receiver(secret, **kwargs) -> WebhookReceiver:
    return WebhookReceiver(secret, clock=NOW, port=next(PORTS), **kwargs)


# --- secrets and validation ------------------------------------------------------------------


def test_secret_is_sealed_bound_to_its_row_and_never_audited(db_session, keyring):
    endpoint, secret = add(db_session, keyring, "https://shop.example/hooks", description="ERP")
    assert secret.startswith("whsec_") and len(secret) > 40
    assert secret not in endpoint.secret and endpoint.secret.startswith("v1:")
    opened = open_sealed(keyring, ENDPOINT_SECRET_PURPOSE, endpoint.secret,
                         secret_binding(endpoint.id, "current"))  # fmt: skip
    assert opened == secret
    audit = db_session.scalar(
        select(AuditEvent).where(AuditEvent.action == "webhook_endpoint.created")
    )
    assert audit.target_id == str(endpoint.id)
    assert audit.details["url"] == "https://shop.example/hooks"
    assert secret not in json.dumps(audit.details)


@pytest.mark.parametrize(
    ("url", "production", "ok"),
    [("https://shop.example/hooks", True, True),
     ("http://shop.example/hooks", False, True),
     ("http://shop.example/hooks", True, False),
     ("http://localhost:8080/hooks", True, True),
     ("http://127.0.0.1:5100/hooks", True, True),
     ("ftp://shop.example/x", False, False),
     ("https://", False, False),
     ("shop.example/hooks", False, False),
     ("https://shop.example:99999/", False, False),
     ("", False, False)],
)  # fmt: skip
def test_url_rules_follow_the_config_and_want_https_in_production(url, production, ok):
    if ok:
        assert check_endpoint_url(url, production=production) == url
    else:
        with pytest.raises(ValidationError) as caught:
            check_endpoint_url(url, production=production)
        assert "url" in caught.value.fields


def test_unknown_event_type_is_refused(db_session, keyring):
    with pytest.raises(ValidationError, match="Unknown event type"):
        add(db_session, keyring, "https://a.example/", event_types=("order.created",))


# --- fan-out and the env default -------------------------------------------------------------


def test_without_endpoints_one_event_goes_to_the_env_default(app, db_session, keyring):
    (row,) = status_change(db_session)
    assert row.endpoint_id is None
    with receiver(ENV_SECRET) as shop:
        assert deliver(app, keyring, url=shop.url).sent == 1
    assert shop.requests[0].verified


def test_each_matching_enabled_endpoint_gets_its_own_signed_copy(app, db_session, keyring):
    with receiver("unused") as erp, receiver("unused") as crm, receiver("unused") as old:
        erp_ep, erp.secret = add(db_session, keyring, erp.url)
        crm_ep, crm.secret = add(db_session, keyring, crm.url, event_types=("case.status_changed",))
        _off, old.secret = add(db_session, keyring, old.url, enabled=False)
        rows = status_change(db_session, order="WEB-42")
        assert sorted(r.endpoint_id for r in rows) == sorted([erp_ep.id, crm_ep.id])
        assert len({r.event_id for r in rows}) == 2
        # The env URL is only the bootstrap default: not used once endpoints exist.
        with receiver(ENV_SECRET) as env_default:
            assert deliver(app, keyring, url=env_default.url).sent == 2
        assert env_default.requests == []
    for shop in (erp, crm):
        (hook,) = shop.requests
        assert hook.verified and json.loads(hook.body)["data"]["order_external_id"] == "WEB-42"
    assert old.requests == []
    # A type an endpoint's filter does not take is not queued for it.
    update_endpoint(db_session, crm_ep.id, EndpointInput(url=crm.url, event_types=()),
                    production=False, actor_id=None, now=NOW)  # fmt: skip
    db_session.commit()
    assert len(status_change(db_session, event_type="case.other_thing")) == 2
    update_endpoint(db_session, crm_ep.id,
                    EndpointInput(url=crm.url, event_types=("case.status_changed",)),
                    production=False, actor_id=None, now=NOW)  # fmt: skip
    db_session.commit()
    assert [r.endpoint_id for r in status_change(db_session, event_type="case.other_thing")] \
        == [erp_ep.id]  # fmt: skip


def test_endpoints_all_disabled_queue_nothing(db_session, keyring):
    add(db_session, keyring, "https://a.example/", enabled=False)
    assert status_change(db_session) == []


def test_a_failing_endpoint_does_not_hold_up_another_for_the_same_case(app, db_session, keyring):
    with receiver("x", fail_first=10, fail_status=503) as down, receiver("x") as up:
        _, down.secret = add(db_session, keyring, down.url)
        _, up.secret = add(db_session, keyring, up.url)
        status_change(db_session, case_id=9)
        status_change(db_session, case_id=9)
        report = deliver(app, keyring)
    # The healthy endpoint hears both, in order; the failing one waits on its first event.
    assert (report.sent, report.retried) == (2, 1)
    assert len(up.delivered_ids()) == 2 and len(down.requests) == 1


# --- rotation: two signatures during the overlap ---------------------------------------------


def test_rotation_overlap_sends_both_signatures_then_only_the_new(app, db_session, keyring):
    with receiver("x") as old_side, receiver("x") as new_side:
        endpoint, old_secret = add(db_session, keyring, old_side.url)
        old_side.secret = old_secret
        new_secret = rotate_endpoint_secret(db_session, keyring, endpoint.id,
                                            overlap=timedelta(hours=24), actor_id=None,
                                            now=NOW)  # fmt: skip
        db_session.commit()
        new_side.secret = new_secret
        assert new_secret != old_secret
        status_change(db_session)
        deliver(app, keyring)
        (hook,) = old_side.requests
        header = hook.signature
        t, v_new, v_old = header.split(",")
        assert t.startswith("t=") and v_new.startswith("v1=") and v_old.startswith("v1=")
        body = hook.body
        # Whichever secret the shop holds during the overlap, the delivery checks out.
        assert verify_signature(old_secret, header, body, NOW)
        assert verify_signature(new_secret, header, body, NOW)
        assert verify_signature(new_secret, f"{t},{v_new}", body, NOW)
        # After the overlap only the new secret signs.
        later = NOW + timedelta(hours=25)
        old_side.clock = later
        update_endpoint(db_session, endpoint.id, EndpointInput(url=new_side.url),
                        production=False, actor_id=None, now=later)  # fmt: skip
        db_session.commit()
        new_side.clock = later
        status_change(db_session, case_id=2)
        deliver(app, keyring, now=later)
    (late,) = new_side.requests
    assert late.verified and late.signature.count("v1=") == 1
    assert not verify_signature(old_secret, late.signature, late.body, later)
    audit = db_session.scalar(
        select(AuditEvent).where(AuditEvent.action == "webhook_endpoint.secret_rotated")
    )
    assert audit.details["overlap_hours"] == 24
    assert old_secret not in json.dumps(audit.details) and new_secret not in json.dumps(
        audit.details
    )
    # The worker forgets the previous secret once its overlap ended.
    assert forget_expired_previous_secrets(db_session, later) == 1
    db_session.commit()
    row = fresh(db_session, WebhookEndpoint, id=endpoint.id)
    assert row.previous_secret is None and row.previous_expires_at is None


def test_rotation_without_overlap_stops_the_old_secret_at_once(app, db_session, keyring):
    with receiver("x") as shop:
        endpoint, old_secret = add(db_session, keyring, shop.url)
        shop.secret = rotate_endpoint_secret(
            db_session, keyring, endpoint.id, overlap=timedelta(0), actor_id=None, now=NOW
        )
        db_session.commit()
        status_change(db_session)
        deliver(app, keyring)
    (hook,) = shop.requests
    assert hook.verified and hook.signature.count("v1=") == 1
    assert not verify_signature(old_secret, hook.signature, hook.body, NOW)
    with pytest.raises(ValidationError):
        rotate_endpoint_secret(db_session, keyring, endpoint.id, overlap=timedelta(days=8),
                               actor_id=None, now=NOW)  # fmt: skip


# --- disable, delete, ping ------------------------------------------------------------------


def test_disabled_endpoint_holds_its_events_and_sends_them_when_enabled(app, db_session, keyring):
    with receiver("x") as shop:
        endpoint, shop.secret = add(db_session, keyring, shop.url)
        (row,) = status_change(db_session)
        set_endpoint_enabled(db_session, endpoint.id, False, actor_id=None, now=NOW)
        db_session.commit()
        assert deliver(app, keyring).sent == 0
        assert fresh(db_session, WebhookEvent, id=row.id).status == "pending"
        set_endpoint_enabled(db_session, endpoint.id, True, actor_id=None, now=NOW)
        db_session.commit()
        assert deliver(app, keyring).sent == 1
    assert shop.delivered_ids() == [row.event_id]
    actions = set(db_session.scalars(select(AuditEvent.action)))
    assert {"webhook_endpoint.disabled", "webhook_endpoint.enabled"} <= actions


def test_delete_skips_waiting_events_erases_secrets_and_refuses_redelivery(
    app, db_session, keyring
):
    endpoint, _ = add(db_session, keyring, f"http://127.0.0.1:{closed_port()}/hooks")
    (row,) = status_change(db_session)
    assert delete_endpoint(db_session, endpoint.id, actor_id=None, now=NOW) == 1
    db_session.commit()
    gone = fresh(db_session, WebhookEndpoint, id=endpoint.id)
    assert gone.deleted_at is not None and gone.secret == "" and gone.previous_secret is None
    event = fresh(db_session, WebhookEvent, id=row.id)
    assert event.status == "skipped" and "deleted" in event.last_error
    with pytest.raises(ConflictError, match="deleted"):
        redeliver(db_session, event.event_id, NOW)
    # With every endpoint deleted, the env default takes over again.
    (default,) = status_change(db_session)
    assert default.endpoint_id is None


def test_ping_goes_through_the_delivery_path_even_while_disabled(app, db_session, keyring):
    with receiver("x") as shop:
        endpoint, shop.secret = add(db_session, keyring, shop.url, enabled=False)
        event = queue_ping(db_session, endpoint.id, actor_id=None, now=NOW)
        db_session.commit()
        report = deliver_event_now(lambda: new_session(app), event.id, NOW,
                                   default=Target("", ()), keyring=keyring, timeout=5)  # fmt: skip
    assert report.sent == 1
    (hook,) = shop.requests
    assert hook.verified and json.loads(hook.body)["type"] == "ping"
    assert fresh(db_session, WebhookEvent, id=event.id).status == "delivered"


def test_a_failed_ping_is_not_retried(app, db_session, keyring):
    endpoint, _ = add(db_session, keyring, f"http://127.0.0.1:{closed_port()}/hooks")
    event = queue_ping(db_session, endpoint.id, actor_id=None, now=NOW)
    db_session.commit()
    report = deliver_event_now(lambda: new_session(app), event.id, NOW,
                               default=Target("", ()), keyring=keyring, timeout=5)  # fmt: skip
    assert report.failed == 1
    row = fresh(db_session, WebhookEvent, id=event.id)
    assert (row.status, row.attempts) == ("failed", 1) and row.last_error


def test_an_unreadable_secret_is_recorded_and_retried_not_sent(app, db_session, keyring):
    with receiver("x") as shop:
        endpoint, _ = add(db_session, keyring, shop.url)
        row = fresh(db_session, WebhookEndpoint, id=endpoint.id)
        row.secret = row.secret[:-6] + "AAAAAA"  # tampered
        db_session.commit()
        (event,) = status_change(db_session)
        assert deliver(app, keyring).retried == 1
    assert shop.requests == []
    assert "secret unreadable" in fresh(db_session, WebhookEvent, id=event.id).last_error


# --- master-key rotation --------------------------------------------------------------------


def test_rotate_master_key_reseals_current_and_previous_secrets(app, db_session, keyring, tmp_path):
    endpoint, first = add(db_session, keyring, "https://a.example/hooks")
    second = rotate_endpoint_secret(db_session, keyring, endpoint.id, overlap=timedelta(hours=1),
                                    actor_id=None, now=NOW)  # fmt: skip
    db_session.commit()
    with new_session(app) as session:
        assert key_usage(session, SEALED_COLUMNS)[keyring.current_id] == 2

    old_key = app.config["MASTER_KEYS"][app.config["MASTER_KEY_ID"]]
    new_key = generate_master_key()
    (tmp_path / "new").mkdir()
    rotated = make_app(tmp_path / "new", app.config["DATABASE_URL"],
                       {"VERIFIER_MASTER_KEY": base64.b64encode(new_key).decode(),
                        "VERIFIER_OLD_MASTER_KEYS": base64.b64encode(old_key).decode(),
                        "VERIFIER_UPLOADS_DIR": app.config["UPLOADS_DIR"]})  # fmt: skip
    both = Keyring.from_config(rotated.config)
    report = rotate_master_key(lambda: new_session(rotated), both, SEALED_COLUMNS, now=NOW)
    assert report.done and report.resealed == 2 and keyring.current_id in report.retired
    status = rotated.test_cli_runner().invoke(args=["rotate-master-key", "--status"])
    assert f"{both.current_id}  current        2 row(s)" in status.output
    alone = Keyring(both.current_id, {both.current_id: new_key})
    row = fresh(db_session, WebhookEndpoint, id=endpoint.id)
    assert row.secret.startswith(f"v1:{both.current_id}:")
    assert open_sealed(alone, ENDPOINT_SECRET_PURPOSE, row.secret,
                       secret_binding(row.id, "current")) == second  # fmt: skip
    assert open_sealed(alone, ENDPOINT_SECRET_PURPOSE, row.previous_secret,
                       secret_binding(row.id, "previous")) == first  # fmt: skip
    # And deliveries sign with them under the new key alone.
    with WebhookReceiver(second, clock=NOW, port=5109) as shop:
        update_endpoint(db_session, endpoint.id, EndpointInput(url=shop.url), production=False,
                        actor_id=None, now=NOW)  # fmt: skip
        db_session.commit()
        status_change(db_session)
        assert deliver(app, alone).sent == 1
    assert shop.requests[0].verified
    assert SIGNATURE_HEADER == "Verifier-Signature"
    rotated.extensions["verifier.engine"].dispose()
