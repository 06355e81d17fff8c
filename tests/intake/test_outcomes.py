"""POST /api/v1/orders/{external_id}/outcome: recorded once, audited, idempotent, validated."""

from datetime import UTC, datetime

from sqlalchemy import func, select

from tests.factories import order_payload
from verifier.core.outcomes import OrderOutcome
from verifier.models import AuditEvent


def _order(client, auth, external_id="A-1001"):
    resp = client.post("/api/v1/orders", json=order_payload(external_id=external_id), headers=auth)
    assert resp.status_code == 201


def _post(client, auth, body, external_id="A-1001"):
    return client.post(f"/api/v1/orders/{external_id}/outcome", json=body, headers=auth)


def test_outcome_is_recorded_and_audited(client, auth, db_session):
    _order(client, auth)
    body = {"outcome": "chargeback", "amount": "129.99",
            "occurred_at": "2026-11-20T10:00:00+01:00", "note": "Bank 4821"}  # fmt: skip
    resp = _post(client, auth, body)
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["outcome"] == "chargeback" and body["amount"] == "129.99"
    assert body["occurred_at"] == "2026-11-20T09:00:00+00:00"
    assert body["current"] == "chargeback" and len(body["history"]) == 1
    event = db_session.scalar(
        select(AuditEvent).where(AuditEvent.action == "order.outcome_recorded")
    )
    assert event.target_id == "A-1001" and event.details["outcome"] == "chargeback"
    assert "Bank 4821" not in str(event.details)  # the note stays out of the audit details


def test_the_same_outcome_again_answers_200_with_the_stored_record(client, auth, db_session):
    _order(client, auth)
    first = _post(client, auth, {"outcome": "confirmed_fraud", "note": "Police report"})
    again = _post(client, auth, {"outcome": "confirmed_fraud", "note": "Police report"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json() == again.get_json()
    assert db_session.scalar(select(func.count(OrderOutcome.id))) == 1
    audited = select(func.count(AuditEvent.id)).where(AuditEvent.action == "order.outcome_recorded")
    assert db_session.scalar(audited) == 1


def test_a_different_later_outcome_is_added_and_becomes_current(client, auth, db_session):
    _order(client, auth)
    assert _post(client, auth, {"outcome": "delivered_ok"}).status_code == 201
    resp = _post(client, auth, {"outcome": "chargeback"})
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["current"] == "chargeback"
    assert [h["outcome"] for h in body["history"]] == ["delivered_ok", "chargeback"]


def test_the_same_outcome_with_other_details_is_a_conflict(client, auth):
    _order(client, auth)
    _post(client, auth, {"outcome": "chargeback", "amount": "10"})
    resp = _post(client, auth, {"outcome": "chargeback", "amount": "20"})
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "outcome_conflict"


def test_unknown_order_is_404(client, auth):
    resp = _post(client, auth, {"outcome": "chargeback"}, external_id="NOPE-1")
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"


def test_bad_fields_are_422_and_named(client, auth):
    _order(client, auth)
    cases = [
        ({}, "outcome"),
        ({"outcome": "stolen"}, "outcome"),
        ({"outcome": "chargeback", "amount": "1.234"}, "amount"),
        ({"outcome": "chargeback", "amount": -1}, "amount"),
        ({"outcome": "chargeback", "occurred_at": "yesterday"}, "occurred_at"),
        ({"outcome": "chargeback", "occurred_at": "2026-11-20T10:00:00"}, "occurred_at"),
        ({"outcome": "chargeback", "note": "card 4111 1111 1111 1111"}, "note"),
        ({"outcome": "chargeback", "note": "x" * 501}, "note"),
        ({"outcome": "chargeback", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        resp = _post(client, auth, body)
        assert resp.status_code == 422, body
        assert field in resp.get_json()["error"]["fields"], body


def test_not_json_and_no_key(client, auth):
    _order(client, auth)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = client.post(
        "/api/v1/orders/A-1001/outcome", data="outcome=chargeback", headers=auth | form
    )
    assert resp.status_code == 415
    assert (
        client.post("/api/v1/orders/A-1001/outcome", json={"outcome": "chargeback"}).status_code
        == 401
    )


def test_outcome_is_in_the_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    op = doc["paths"]["/orders/{external_id}/outcome"]["post"]
    assert set(op["responses"]) >= {"200", "201", "404", "409", "422"}
    assert "Outcome" in doc["components"]["schemas"]


def test_outcome_occurring_far_in_the_future_is_refused(client, auth):
    _order(client, auth)
    future = datetime(2100, 1, 1, tzinfo=UTC).isoformat()
    resp = _post(client, auth, {"outcome": "chargeback", "occurred_at": future})
    assert resp.get_json()["error"]["fields"]["occurred_at"] == "Is in the future."
