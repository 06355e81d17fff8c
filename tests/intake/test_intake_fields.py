"""The intake's platform address names and optional phone, IP address and device id, through
the parser, the API (stored with their link keys) and the CSV import."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.factories import BASE_ORDER, order_payload
from verifier.core.linkkeys import address_key, phone_key
from verifier.errors import ValidationError
from verifier.intake.payload import parse_order
from verifier.models import Order

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _payload(**changes):
    payload = copy.deepcopy(BASE_ORDER)
    payload.update(changes)
    return payload


def test_platform_address_names_are_stored_under_the_canonical_ones():
    shopify = {"address1": "1 High Street", "address2": "Flat 2", "city": "London",
               "province": "Greater London", "zip": "SW1A 1AA", "country": "GB"}  # fmt: skip
    order = parse_order(_payload(billing_address=shopify), NOW)
    assert order.billing_address == {"line1": "1 High Street", "line2": "Flat 2",
                                     "city": "London", "region": "Greater London",
                                     "postcode": "SW1A 1AA", "country": "GB"}  # fmt: skip
    woo = {"line1": "1 High Street", "city": "London", "state": "LDN",
           "postal_code": "SW1A 1AA", "country": "GB"}  # fmt: skip
    assert parse_order(_payload(billing_address=woo), NOW).billing_address["postcode"] == "SW1A 1AA"
    # The same order under either name hashes the same: a resend is the same order.
    canonical = _payload(billing_address={"line1": "1 High Street", "city": "London",
                                          "postcode": "SW1A 1AA", "country": "GB"})  # fmt: skip
    aliased = _payload(billing_address={"line1": "1 High Street", "city": "London",
                                        "zip": "SW1A 1AA", "country": "GB"})  # fmt: skip
    assert parse_order(canonical, NOW).payload_hash() == parse_order(aliased, NOW).payload_hash()


def test_two_names_for_one_field_must_agree():
    clash = {"line1": "1 High Street", "city": "London", "postcode": "SW1A 1AA",
             "zip": "EC1A 1BB", "country": "GB"}  # fmt: skip
    with pytest.raises(ValidationError) as info:
        parse_order(_payload(billing_address=clash), NOW)
    assert info.value.fields == {"billing_address.zip": "Give either postcode or zip, not both."}


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("phone", "call me", "customer.phone"),
        ("phone", "123", "customer.phone"),
        ("phone", "4111 1111 1111 1111", "customer.phone"),  # a card number in the phone field
        ("ip_address", "999.1.1.1", "ip_address"),
        ("device_id", "has spaces in it", "device_id"),
    ],
)
def test_bad_optional_fields_are_named(field, value, path):
    payload = _payload()
    if field == "phone":
        payload["customer"] = {**payload["customer"], "phone": value}
    else:
        payload[field] = value
    with pytest.raises(ValidationError) as info:
        parse_order(payload, NOW)
    assert list(info.value.fields) == [path]


def test_optional_fields_leave_older_orders_hashes_alone():
    plain = parse_order(_payload(), NOW)
    assert plain.customer_phone is None and plain.ip_address is None
    with_ip = parse_order(_payload(ip_address="::ffff:203.0.113.7"), NOW)
    assert with_ip.ip_address == "203.0.113.7"
    assert with_ip.payload_hash() != plain.payload_hash()
    # The hash of an order without the new fields is what it was before they existed.
    import hashlib
    import json
    from dataclasses import asdict

    data = asdict(plain)
    for name in ("customer_phone", "ip_address", "device_id", "locale", "timezone"):
        del data[name]
    data["placed_at"] = plain.placed_at.isoformat()
    old = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert plain.payload_hash() == hashlib.sha256(old.encode()).hexdigest()


def test_the_api_stores_the_fields_and_their_link_keys(client, auth, db_session):
    payload = order_payload(
        external_id="F-1", ip_address="2001:db8::1", device_id="fp-123",
        customer={"name": "Alice Meyer", "email": "alice@example.com", "phone": "+44 20 7946 0000"},
        shipping_address={"address1": "9 Low Road", "city": "Leeds", "postal_code": "LS1 1AA",
                          "country": "GB"},
    )  # fmt: skip
    assert client.post("/api/v1/orders", json=payload, headers=auth).status_code == 201
    assert client.post("/api/v1/orders", json=payload, headers=auth).status_code == 200
    order = db_session.scalar(select(Order).where(Order.external_id == "F-1"))
    assert (order.customer_phone, order.ip_address, order.device_id) == (
        "+44 20 7946 0000", "2001:db8::1", "fp-123")  # fmt: skip
    assert order.phone_key == phone_key("020 7946 0000")
    assert order.shipping_key == address_key(order.shipping_address) != order.billing_key
    assert order.email_key and order.card_key


def test_csv_takes_the_platform_column_names(app, runner, tmp_path, db_session):
    path = tmp_path / "orders.csv"
    path.write_text(
        "external_id,placed_at,amount,currency,customer_name,customer_email,customer_phone,"
        "billing_address1,billing_city,billing_zip,billing_country,shipping_line1,"
        "shipping_city,shipping_country,card_last4,card_holder_name,ip_address\n"
        "CSV-1,2026-11-20T10:00:00Z,10.00,EUR,Ann,ann@example.com,+33 1 23 45 67 89,"
        "1 Rue,Paris,75001,FR,1 Rue,Paris,FR,1234,Ann,198.51.100.2\n"
    )
    result = runner.invoke(args=["import-orders", str(path)])
    assert result.exit_code == 0, result.output
    order = db_session.scalar(select(Order).where(Order.external_id == "CSV-1"))
    assert order.billing_address["postcode"] == "75001" and order.ip_address == "198.51.100.2"
    assert order.customer_phone == "+33 1 23 45 67 89"
