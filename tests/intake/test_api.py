"""The order intake API over HTTP: decisions, idempotency, auth, validation, limits."""

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.factories import order_payload
from verifier.core.policies import create_policy_version
from verifier.intake.apikeys import revoke_api_key
from verifier.models import Order, SamplingDecision, VerificationCase


def set_policy(app, db_session, **changes):
    create_policy_version(db_session, changes=changes, reason="test", actor_label="test",
                          actor_id=None, now=datetime.now(UTC))  # fmt: skip
    db_session.commit()


def test_new_order_gets_a_decision(client, auth):
    resp = client.post("/api/v1/orders", json=order_payload(), headers=auth)
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["external_id"] == "A-1001"
    assert body["decision"]["policy_version"] == 1
    assert body["decision"]["rate_percent"] == "5"
    assert 0 <= body["decision"]["draw"] < 10_000
    assert body["decision"]["flagged"] == (body["decision"]["draw"] < 500)
    assert resp.headers["Location"].endswith("/api/v1/orders/A-1001")


def test_flagged_order_returns_status_and_case(app, client, auth, db_session):
    set_policy(app, db_session, rate_bp=10_000)
    body = client.post("/api/v1/orders", json=order_payload(), headers=auth).get_json()
    assert body["status"] == "awaiting_documents"
    assert body["decision"] | {"draw": 0} == body["decision"] | {"draw": 0}
    assert body["decision"]["reason"] == "random"
    case = db_session.scalar(select(VerificationCase))
    assert body["case"]["id"] == case.id and body["case"]["status"] == "awaiting_documents"


def test_rule_forced_order_says_which_rule(app, client, auth, db_session):
    set_policy(app, db_session, rate_bp=0, rule_country_mismatch=True)
    payload = order_payload()
    payload["shipping_address"] = dict(payload["shipping_address"], country="FR")
    body = client.post("/api/v1/orders", json=payload, headers=auth).get_json()
    assert body["decision"]["flagged"] is True
    assert body["decision"]["reason"] == "country_mismatch"
    assert body["decision"]["policy_version"] == 2


def test_unflagged_order_is_cleared(app, client, auth, db_session):
    set_policy(app, db_session, rate_bp=0)
    body = client.post("/api/v1/orders", json=order_payload(), headers=auth).get_json()
    assert (body["status"], body["case"]) == ("cleared", None)


def test_same_order_again_returns_200_and_the_same_decision(app, client, auth, db_session):
    payload = order_payload()
    first = client.post("/api/v1/orders", json=payload, headers=auth)
    # A rate change between the two sends must not re-draw the stored decision.
    set_policy(app, db_session, rate_bp=10_000)
    second = client.post("/api/v1/orders", json=payload, headers=auth)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json()["decision"] == second.get_json()["decision"]
    assert db_session.scalar(select(func.count(SamplingDecision.id))) == 1


def test_different_payload_under_same_id_is_409(client, auth, db_session):
    client.post("/api/v1/orders", json=order_payload(), headers=auth)
    resp = client.post("/api/v1/orders", json=order_payload(amount="130.00"), headers=auth)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "conflict"
    assert db_session.scalar(select(Order.amount_minor)) == 12_999


@pytest.mark.parametrize("rate_bp", [0, 10_000])
def test_get_order(app, client, auth, db_session, rate_bp):
    set_policy(app, db_session, rate_bp=rate_bp)
    created = client.post("/api/v1/orders", json=order_payload(), headers=auth).get_json()
    resp = client.get("/api/v1/orders/A-1001", headers=auth)
    assert resp.status_code == 200
    if created["case"]:
        # The link is only known when the case is opened: only its hash is stored.
        assert created["case"]["upload_url"].startswith("http")
        created["case"]["upload_url"] = None
    assert resp.get_json() == created


def test_get_unknown_order_is_404_json(client, auth):
    resp = client.get("/api/v1/orders/NOPE-1", headers=auth)
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/orders/bad%20id", headers=auth).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer vk_wrong"}, {"Authorization": "Basic dXNlcjpwYXNz"},
     {"Authorization": "Bearer "}],
)  # fmt: skip
def test_missing_or_wrong_key_is_401(client, headers):
    for resp in (
        client.post("/api/v1/orders", json=order_payload(), headers=headers),
        client.get("/api/v1/orders/A-1001", headers=headers),
    ):
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_401(app, client, auth, api_key, db_session):
    assert client.get("/api/v1/orders/X", headers=auth).status_code == 404
    revoke_api_key(db_session, "test shop", datetime.now(UTC))
    db_session.commit()
    assert client.get("/api/v1/orders/X", headers=auth).status_code == 401


def test_oversized_body_is_413(app, client, auth):
    big = order_payload(customer={"name": "x" * (app.config["API_MAX_BODY_BYTES"] + 10),
                                  "email": "a@example.com"})  # fmt: skip
    resp = client.post("/api/v1/orders", json=big, headers=auth)
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "request_entity_too_large"


def test_invalid_json_is_400(client, auth):
    resp = client.post("/api/v1/orders", data="{not json", headers=auth,
                       content_type="application/json")  # fmt: skip
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "invalid_json"


def test_json_that_is_not_an_object_is_422(client, auth):
    resp = client.post("/api/v1/orders", json=[1, 2], headers=auth)
    assert resp.status_code == 422
    assert resp.get_json()["error"]["message"] == "The order must be a JSON object."


def test_form_body_is_415(client, auth):
    resp = client.post("/api/v1/orders", data={"external_id": "x"}, headers=auth)
    assert resp.status_code == 415


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"external_id": "has space"}, "external_id"),
        ({"external_id": 12}, "external_id"),
        ({"placed_at": "yesterday"}, "placed_at"),
        ({"placed_at": "2026-11-20T14:05:00"}, "placed_at"),
        ({"placed_at": "2999-01-01T00:00:00Z"}, "placed_at"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "1.999"}, "amount"),
        ({"amount": "ten"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": 1.3256016187144255e280}, "amount"),
        ({"amount": "1e40"}, "amount"),
        ({"customer": {"name": "Ann\u0000", "email": "a@example.com"}}, "customer.name"),
        ({"customer": {"name": "Ann\udb77", "email": "a@example.com"}}, "customer.name"),
        ({"card": {"last4": "4242", "holder_name": "A\u001bB"}}, "card.holder_name"),
        ({"currency": "euro"}, "currency"),
        ({"customer": {"name": "A"}}, "customer.email"),
        ({"customer": {"name": "A", "email": "not-an-email"}}, "customer.email"),
        ({"customer": "Alice"}, "customer"),
        ({"billing_address": {"line1": "x", "city": "y", "country": "XX"}},
         "billing_address.country"),
        ({"shipping_address": {"city": "y", "country": "GB"}}, "shipping_address.line1"),
        ({"card": {"last4": "42", "holder_name": "A"}}, "card.last4"),
        ({"card": {"last4": 4242, "holder_name": "A"}}, "card.last4"),
        ({"card": {"last4": "4242"}}, "card.holder_name"),
        ({"card": {"last4": "4242", "holder_name": "A", "number": "4111111111111111"}},
         "card.number"),
        ({"card": {"last4": "4242", "holder_name": "4111 1111 1111 1111"}}, "card.holder_name"),
        ({"coupon": "X"}, "coupon"),
        # An empty object is an object with every required field missing, not a pass.
        ({"customer": {}}, "customer.email"),
        ({"customer": {}}, "customer.name"),
        ({"card": {}}, "card.last4"),
        ({"card": {}}, "card.holder_name"),
        ({"billing_address": {}}, "billing_address.country"),
        ({"shipping_address": {}}, "shipping_address.line1"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field(client, auth, db_session, change, field):
    resp = client.post("/api/v1/orders", json=order_payload(**change), headers=auth)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "validation_failed"
    assert field in error["fields"], error
    assert db_session.scalar(select(func.count(Order.id))) == 0


def test_all_missing_fields_are_reported_at_once(client, auth):
    resp = client.post("/api/v1/orders", json={}, headers=auth)
    fields = resp.get_json()["error"]["fields"]
    assert set(fields) == {"external_id", "placed_at", "amount", "currency", "customer",
                           "billing_address", "shipping_address", "card"}  # fmt: skip


def test_wrong_method_is_405_json(client, auth):
    resp = client.delete("/api/v1/orders/A-1001", headers=auth)
    assert resp.status_code == 405
    assert "GET" in resp.headers["Allow"]
    assert resp.get_json()["error"]["code"] == "method_not_allowed"


def test_concurrent_posts_of_one_order_create_one_order(app, auth, db_session):
    payload = order_payload(external_id="RACE-1")
    barrier = threading.Barrier(6)
    results = []

    def send():
        client = app.test_client()
        barrier.wait()
        resp = client.post("/api/v1/orders", json=payload, headers=auth)
        results.append((resp.status_code, resp.get_json()["decision"]))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(s for s, _ in results)
    assert statuses == [200, 200, 200, 200, 200, 201]
    assert len({str(d) for _, d in results}) == 1
    assert db_session.scalar(select(func.count(Order.id))) == 1
    assert db_session.scalar(select(func.count(SamplingDecision.id))) == 1


def test_openapi_paths_match_the_url_map(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    documented = {
        (method.upper(), "/api/v1" + path.replace("{", "<").replace("}", ">"))
        for path, ops in doc["paths"].items()
        for method in ops
    }
    implemented = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == implemented


def test_api_key_use_is_audited_once_a_minute(client, auth, api_key, db_session):
    from verifier.models import AuditEvent

    for _ in range(3):
        client.get("/api/v1/orders/NOPE-1", headers=auth)
    events = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "api_key.used")).all()
    assert len(events) == 1
    assert events[0].details["name"] == "test shop"
    assert api_key not in str(events[0].details)  # only the short, public prefix
