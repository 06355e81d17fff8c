"""The platform mappers alone (no app): what is read from Shopify's and WooCommerce's orders."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.intake.connector_helpers import sample, woo_card_order
from verifier.errors import ValidationError
from verifier.intake.platforms import NotAnOrder, map_shopify_order, map_woocommerce_order

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("masked", "last4"),
    [("•••• •••• •••• 4242", "4242"), ("XXXX-XXXX-XXXX-1111", "1111"),
     ("4111111111111111", "1111"), ("1234", "1234")],
)  # fmt: skip
def test_only_the_last_four_digits_of_a_card_number_are_taken(masked, last4):
    order = sample("shopify_orders_create.json")
    order["payment_details"]["credit_card_number"] = masked
    mapped = map_shopify_order(order)
    assert mapped.payload["card"]["last4"] == last4
    assert masked not in str(mapped.payload) or masked == last4


@pytest.mark.parametrize("masked", [None, "", "•••• ••", "123"])
def test_no_last_four_means_not_imported(masked):
    order = sample("shopify_orders_create.json")
    order["payment_details"]["credit_card_number"] = masked
    with pytest.raises(NotAnOrder) as info:
        map_shopify_order(order)
    assert info.value.reason == "no_card" and info.value.status == 202


def test_shopify_region_falls_back_to_the_province_code_and_address_to_the_other_one():
    order = sample("shopify_orders_create.json")
    order["billing_address"] = order["billing_address"] | {"province": None}
    order["shipping_address"] = None
    data = map_shopify_order(order).parse(NOW)
    assert data.billing_address["region"] == "KY"
    assert data.shipping_address == data.billing_address


def test_errors_name_the_shopify_field_even_when_the_address_was_borrowed():
    order = sample("shopify_orders_create.json") | {"shipping_address": None}
    order["billing_address"] = order["billing_address"] | {"city": ""}
    with pytest.raises(ValidationError) as info:
        map_shopify_order(order).parse(NOW)
    assert set(info.value.fields) == {"billing_address.city"}


@pytest.mark.parametrize("order_id", [None, "abc", -1, True, "1" * 31, 1.5])
def test_an_order_id_must_be_the_platforms_number(order_id):
    with pytest.raises(ValidationError) as info:
        map_woocommerce_order(woo_card_order(id=order_id))
    assert "id" in info.value.fields


@pytest.mark.parametrize(
    ("given", "stored"),
    [("2017-03-22T19:28:02", "2017-03-22T19:28:02+00:00"),
     ("2017-03-22T19:28:02Z", "2017-03-22T19:28:02+00:00"),
     ("2017-03-22T19:28:02+02:00", "2017-03-22T17:28:02+00:00")],
)  # fmt: skip
def test_woocommerce_gmt_time_is_read_as_utc(given, stored):
    data = map_woocommerce_order(woo_card_order(date_created_gmt=given)).parse(NOW)
    assert data.placed_at.isoformat() == stored


def test_woocommerce_card_details_come_from_the_payment_plugins_meta_data():
    order = woo_card_order(meta_data=[{"key": "_wc_gateway_card_type", "value": "Mastercard"},
                                      {"key": "_payment_card_last_four", "value": "5454"},
                                      {"key": "unrelated", "value": {"x": 1}}])  # fmt: skip
    data = map_woocommerce_order(order).parse(NOW)
    assert (data.card_brand, data.card_last4, data.cardholder_name) == (
        "mastercard",
        "5454",
        "John Doe",
    )
    with pytest.raises(NotAnOrder):
        map_woocommerce_order(woo_card_order(meta_data=[{"key": "card_last4", "value": "42"}]))


def test_a_woocommerce_address_name_is_the_persons_name():
    data = map_woocommerce_order(woo_card_order()).parse(NOW)
    assert data.billing_address["name"] == "John Doe"
    assert data.external_id == "woocommerce:727"
