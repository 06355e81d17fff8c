"""Shopify and WooCommerce order webhooks, over HTTP against the real database: signatures,
mapping of the platforms' sample payloads, idempotency, and the answers that say what to do."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import func, select

from tests.intake.connector_helpers import (
    PATHS,
    SECRETS,
    configure,
    deliver,
    sample,
    woo_card_order,
)
from verifier.intake.connectors import Connector, binding, open_secret
from verifier.models import AuditEvent, Order
from verifier.vault.storage import Keyring


def _orders(db_session) -> list[Order]:
    db_session.rollback()  # a fresh read: what the requests committed
    return list(db_session.scalars(select(Order).order_by(Order.id)))


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_connector_without_a_secret_answers_409_with_what_to_do(client, db_session, platform):
    response = deliver(client, platform, {"id": 1})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "connector_not_configured"
    assert "Admin > Integrations" in error["message"]
    assert f"verifier connector set-secret {platform}" in error["message"]
    assert _orders(db_session) == []


def test_shopify_sample_order_is_mapped_to_the_intake(app, client, db_session):
    configure(app, "shopify")
    response = deliver(client, "shopify", sample("shopify_orders_create.json"),
                       headers={"X-Shopify-Topic": "orders/create"})  # fmt: skip
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["external_id"] == "shopify:450789469"
    assert body["resend_differs"] is False
    assert response.headers["Location"].endswith("/api/v1/orders/shopify:450789469")
    [order] = _orders(db_session)
    assert order.source == "shopify"
    assert (order.amount_minor, order.currency) == (59894, "USD")
    assert order.placed_at.isoformat() == "2008-01-10T16:00:00+00:00"
    assert (order.customer_name, order.customer_email) == (
        "Bob Norman",
        "bob.norman@mail.example.com",
    )
    assert order.customer_phone == "+557734881234"
    assert order.billing_address == {
        "name": "Bob Norman", "line1": "Chestnut Street 92", "city": "Louisville",
        "region": "Kentucky", "postcode": "40202", "country": "US",
    }  # fmt: skip
    assert order.shipping_address == order.billing_address
    assert (order.card_brand, order.card_last4, order.cardholder_name) == (
        "visa",
        "4242",
        "Bob Norman",
    )
    assert order.ip_address == "0.0.0.0"
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "order.received"))
    assert (event.actor_type, event.actor_id) == ("api", "connector:shopify")


def test_a_redelivery_answers_200_with_the_same_order_and_stores_nothing_new(
    app, client, db_session
):
    configure(app, "shopify")
    payload = sample("shopify_orders_create.json")
    first = deliver(client, "shopify", payload)
    again = deliver(client, "shopify", payload)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["decision"] == first.get_json()["decision"]
    assert len(_orders(db_session)) == 1
    # A resend with other details is still answered 200 (the platform would retry a 4xx for
    # days), names the difference, and changes nothing.
    changed = deliver(client, "shopify", payload | {"total_price": "1.00"})
    assert changed.status_code == 200
    assert changed.get_json()["resend_differs"] is True
    [order] = _orders(db_session)
    assert order.amount_minor == 59894


def test_shopifys_test_notification_is_signed_but_not_imported(app, client, db_session):
    """The "Send test notification" sample has no card details: 202, nothing stored, and its
    sample phone (555-555-SHIP) does not get in the way."""
    configure(app, "shopify")
    response = deliver(client, "shopify", sample("shopify_test_notification.json"))
    assert response.status_code == 202
    assert response.get_json()["reason"] == "no_card"
    assert _orders(db_session) == []
    assert db_session.scalar(select(Connector.last_delivery_at)) is not None
    # With a card, the same sample goes in; the unusable optional phone is left out.
    carded = sample("shopify_test_notification.json") | {
        "payment_details": {"credit_card_number": "XXXX-XXXX-XXXX-1111",
                            "credit_card_company": "Mastercard"}}  # fmt: skip
    response = deliver(client, "shopify", carded)
    assert response.status_code == 201, response.get_json()
    [order] = _orders(db_session)
    assert (order.customer_name, order.card_last4, order.customer_phone) == (
        "John Smith",
        "1111",
        None,
    )


def test_another_topic_is_acknowledged_and_ignored(app, client, db_session):
    configure(app, "shopify")
    response = deliver(client, "shopify", sample("shopify_orders_create.json"),
                       headers={"X-Shopify-Topic": "orders/updated"})  # fmt: skip
    assert response.status_code == 202
    assert "orders/create" in response.get_json()["message"]
    assert _orders(db_session) == []


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_bad_signature_is_401_naming_the_header_and_logs_no_body_or_secret(
    app, client, db_session, caplog, platform
):
    configure(app, platform)
    payload = sample("shopify_orders_create.json") if platform == "shopify" else woo_card_order()
    caplog.set_level(logging.DEBUG)
    wrong = deliver(client, platform, payload, secret="not-the-secret-at-all-0000")
    missing = deliver(client, platform, payload, secret="")
    for response in (wrong, missing):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "invalid_signature"
    header = "X-Shopify-Hmac-Sha256" if platform == "shopify" else "X-WC-Webhook-Signature"
    assert "does not match the body" in wrong.get_json()["error"]["message"]
    assert header in missing.get_json()["error"]["message"]
    assert _orders(db_session) == []
    logged = caplog.text
    assert SECRETS[platform] not in logged and "Norman" not in logged and "Doe" not in logged
    assert "signature" in logged


def test_a_body_changed_after_signing_is_refused(app, client):
    configure(app, "shopify")
    body = b'{"id": 1, "total_price": "10.00"}'
    from tests.intake.connector_helpers import sign

    response = client.post(PATHS["shopify"], data=body.replace(b"10.00", b"1.00"),
                           headers={"X-Shopify-Hmac-Sha256": sign(SECRETS["shopify"], body),
                                    "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 401


def test_refused_signatures_are_rate_limited_with_retry_after(app, client):
    configure(app, "shopify")
    app.config["CONNECTOR_RATE_LIMIT"] = "3/minute"
    statuses = [deliver(client, "shopify", {"id": 1}, secret="wrong-secret-000000").status_code
                for _ in range(4)]  # fmt: skip
    assert statuses == [401, 401, 401, 429]
    limited = deliver(client, "shopify", {"id": 1}, secret="wrong-secret-000000")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["error"]["code"] == "too_many_requests"


@pytest.mark.parametrize(
    ("platform", "payload", "field"),
    [
        ("shopify", {"total_price": "1.00"}, "id"),
        ("shopify", sample("shopify_orders_create.json") | {"total_price": "lots"}, "total_price"),
        ("shopify", sample("shopify_orders_create.json") | {"email": None, "contact_email": None,
                                                            "customer": None}, "email"),
        ("shopify", sample("shopify_orders_create.json") | {"billing_address": None,
                                                            "shipping_address": None},
         "billing_address"),
        ("shopify", sample("shopify_orders_create.json") | {"shipping_address": {
            **sample("shopify_orders_create.json")["shipping_address"], "country_code": "XX"}},
         "shipping_address.country_code"),
        ("woocommerce", woo_card_order(currency="dollars"), "currency"),
        ("woocommerce", woo_card_order(billing={**woo_card_order()["billing"], "address_1":
                                                "4111 1111 1111 1111"}), "billing.address_1"),
        ("woocommerce", [1, 2], None),
    ],
)  # fmt: skip
def test_an_order_that_does_not_fit_is_422_naming_the_platforms_field(
    app, client, db_session, platform, payload, field
):
    configure(app, platform)
    response = deliver(client, platform, payload)
    assert response.status_code == 422, response.get_json()
    fields = response.get_json()["error"]["fields"]
    if field is not None:
        assert field in fields, fields
    assert _orders(db_session) == []


def test_not_json_is_400(app, client):
    configure(app, "woocommerce")
    response = deliver(client, "woocommerce", b"<xml/>")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_woocommerce_ping_is_answered_even_before_set_up(app, client, db_session):
    response = client.post(PATHS["woocommerce"], data={"webhook_id": "12"})
    assert response.status_code == 200
    assert response.get_json()["ping"] is True
    assert "Set the WooCommerce connector's secret" in response.get_json()["message"]
    configure(app, "woocommerce")
    response = client.post(PATHS["woocommerce"], data={"webhook_id": "12"})
    assert "will be imported" in response.get_json()["message"]
    assert _orders(db_session) == []


def test_woocommerce_sample_order_with_a_card_is_mapped(app, client, db_session):
    configure(app, "woocommerce")
    response = deliver(client, "woocommerce", woo_card_order(),
                       headers={"X-WC-Webhook-Topic": "order.created"})  # fmt: skip
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["external_id"] == "woocommerce:727"
    [order] = _orders(db_session)
    assert order.source == "woo"
    assert order.placed_at.isoformat() == "2017-03-22T19:28:02+00:00"  # date_created_gmt
    assert (order.amount_minor, order.currency) == (2935, "USD")
    assert (order.customer_name, order.customer_email, order.customer_phone) == (
        "John Doe", "john.doe@example.com", "(555) 555-5555")  # fmt: skip
    assert order.billing_address == {"name": "John Doe", "line1": "969 Market",
                                     "city": "San Francisco", "region": "CA",
                                     "postcode": "94103", "country": "US"}  # fmt: skip
    assert (order.card_brand, order.card_last4, order.ip_address) == ("visa", "4242", "203.0.113.9")
    again = deliver(client, "woocommerce", woo_card_order())
    assert again.status_code == 200
    assert len(_orders(db_session)) == 1


def test_woocommerce_sample_order_paid_by_bank_transfer_is_not_imported(app, client, db_session):
    configure(app, "woocommerce")
    response = deliver(client, "woocommerce", sample("woocommerce_order_created.json"))
    assert response.status_code == 202
    body = response.get_json()
    assert body["reason"] == "no_card" and "Direct Bank Transfer" in body["message"]
    assert _orders(db_session) == []


def test_a_virtual_woocommerce_order_ships_to_its_billing_address(app, client, db_session):
    configure(app, "woocommerce")
    empty = dict.fromkeys(woo_card_order()["shipping"], "")
    assert deliver(client, "woocommerce", woo_card_order(shipping=empty)).status_code == 201
    [order] = _orders(db_session)
    assert order.shipping_address == order.billing_address


def test_the_secret_is_sealed_at_rest_and_bound_to_its_platform(app, db_session):
    configure(app, "shopify")
    row = db_session.scalar(select(Connector))
    assert SECRETS["shopify"] not in row.secret_sealed
    assert row.secret_sealed.startswith("v1:")
    assert open_secret(Keyring.from_config(app.config), row) == SECRETS["shopify"]
    assert binding("shopify") == "connector:shopify"
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "connector.secret_set"))
    assert event.details == {"platform": "shopify", "replaced": False}
    assert SECRETS["shopify"] not in str(event.details)
    configure(app, "shopify", "a-brand-new-secret-123456")
    db_session.rollback()
    assert db_session.scalar(select(func.count(Connector.id))) == 1


def test_a_rotated_secret_takes_over_at_once(app, client):
    configure(app, "shopify")
    configure(app, "shopify", "a-brand-new-secret-123456")
    payload = sample("shopify_orders_create.json")
    assert deliver(client, "shopify", payload).status_code == 401
    assert (
        deliver(client, "shopify", payload, secret="a-brand-new-secret-123456").status_code == 201
    )


def test_concurrent_redeliveries_store_one_order(app, db_session):
    """Shopify may deliver one order again while the first delivery is still being handled."""
    configure(app, "shopify")
    payload = sample("shopify_orders_create.json")
    barrier = threading.Barrier(5)
    results = []

    def send():
        client = app.test_client()
        barrier.wait()
        response = deliver(client, "shopify", payload)
        results.append((response.status_code, str(response.get_json()["decision"])))

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in results) == [200, 200, 200, 200, 201]
    assert len({decision for _, decision in results}) == 1
    assert len(_orders(db_session)) == 1


def test_the_openapi_document_describes_connectors_webhooks_and_429(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    shopify = doc["paths"]["/connectors/shopify/orders"]["post"]
    assert shopify["security"] == []
    assert {p["name"] for p in shopify["parameters"]} >= {"X-Shopify-Hmac-Sha256"}
    assert shopify["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    woo = doc["paths"]["/connectors/woocommerce/orders"]["post"]
    assert set(woo["requestBody"]["content"]) == {
        "application/json", "application/x-www-form-urlencoded"}  # fmt: skip
    sent = doc["webhooks"]["caseStatusChanged"]["post"]
    assert {p["name"] for p in sent["parameters"]} == {"Verifier-Signature", "Verifier-Event-Id"}
    event = doc["components"]["schemas"]["CaseStatusChanged"]
    assert set(event["properties"]["data"]["required"]) == {
        "order_external_id", "case_id", "status", "previous_status", "reason",
        "decision_reason_code", "updated_at"}  # fmt: skip
