"""Shopify's and WooCommerce's order JSON, mapped to the intake's order payload.

Each mapper returns the payload `parse_order` validates, and where each field came from, so a
validation error names the platform's own field (`billing_address.zip`, `billing.postcode`).
Nothing here keeps more of a card than its last four digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from verifier.errors import ValidationError, VerifierError
from verifier.intake.payload import OrderInput, parse_order

_DIGITS = re.compile(r"\d")
_PLATFORM_ID = re.compile(r"^[0-9]{1,30}$")
_LAST4_KEYS = ("last4", "last_4", "last_four", "card_four", "account_four")
_BRAND_KEYS = ("card_brand", "card_type", "cc_type")


class NotAnOrder(VerifierError):
    """A correctly signed delivery with no order to verify (answered 202, stored nowhere)."""

    code = "not_imported"
    status = 202

    def __init__(self, reason: str, message: str):
        super().__init__(message, code="not_imported")
        self.reason = reason


@dataclass
class Mapped:
    payload: dict[str, Any]
    # The intake's field path -> the platform's, for error messages.
    origin: dict[str, str] = field(default_factory=dict)

    def parse(self, now: Any) -> OrderInput:
        """The validated order; a ValidationError names the platform's fields.

        An optional field the intake cannot take (Shopify's sample phone `555-555-SHIP`) is
        left out rather than refusing the order: the platform would only retry it.
        """
        try:
            return parse_order(self.payload, now)
        except ValidationError as exc:
            if exc.fields and all(_optional(path) for path in exc.fields):
                return parse_order(_without(self.payload, exc.fields), now)
            fields = {self._where(path): message for path, message in exc.fields.items()}
            raise ValidationError(exc.message, fields) from None

    def _where(self, path: str) -> str:
        if path in self.origin:
            return self.origin[path]
        head, _, tail = path.partition(".")
        return f"{self.origin[head]}.{tail}" if tail and head in self.origin else path


_OPTIONAL = {"customer.phone", "ip_address", "card.brand"}
_OPTIONAL_ADDRESS = {"name", "line2", "region", "postcode"}


def _optional(path: str) -> bool:
    side, _, name = path.partition(".")
    return path in _OPTIONAL or (side.endswith("_address") and name in _OPTIONAL_ADDRESS)


def _without(payload: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A copy of `payload` without the fields at the dotted `paths`."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in payload.items()}
    for path in paths:
        head, _, tail = path.partition(".")
        if tail:
            out[head].pop(tail, None)
        else:
            out.pop(head, None)
    return out


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _joined(*parts: Any) -> str:
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def _platform_id(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _PLATFORM_ID.match(text):
        raise ValidationError(
            "The webhook carries no order id: is this an order webhook?",
            {key: "Required: the platform's numeric order id."},
        )
    return text


def _require_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValidationError("The webhook body must be a JSON object (an order).", {})
    return payload


def _last4(value: Any) -> str | None:
    """The last four digits of a masked card number (`•••• •••• •••• 4242`), if it has them."""
    digits = "".join(_DIGITS.findall(value)) if isinstance(value, str) else ""
    return digits[-4:] if len(digits) >= 4 else None


# --- Shopify -------------------------------------------------------------------------------


def _shopify_address(raw: dict[str, Any]) -> dict[str, Any]:
    country = raw.get("country_code")
    if not country and isinstance(raw.get("country"), str) and len(raw["country"]) == 2:
        country = raw["country"]
    return {
        "name": _str(raw.get("name")) or _joined(raw.get("first_name"), raw.get("last_name")),
        "line1": _str(raw.get("address1")),
        "line2": _str(raw.get("address2")),
        "city": _str(raw.get("city")),
        "region": _str(raw.get("province")) or _str(raw.get("province_code")),
        "postcode": _str(raw.get("zip")),
        "country": country,
    }


def map_shopify_order(payload: Any) -> Mapped:
    """An `orders/create` webhook's order as the intake's payload; raises NotAnOrder or
    ValidationError (naming Shopify's fields)."""
    order = _require_object(payload)
    order_id = _platform_id(order, "id")
    customer = _object(order, "customer")
    billing = _object(order, "billing_address")
    shipping = _object(order, "shipping_address")
    if not billing and not shipping:
        raise ValidationError(
            "The order has no billing or shipping address, so it cannot be verified.",
            {"billing_address": "Required: Shopify sent no address with this order."},
        )
    billing_key = "billing_address" if billing else "shipping_address"
    shipping_key = "shipping_address" if shipping else billing_key
    billing = billing or shipping
    shipping = shipping or billing
    card = _object(order, "payment_details")
    last4 = _last4(card.get("credit_card_number"))
    if last4 is None:
        raise NotAnOrder(
            "no_card",
            f"Shopify order {order_id} carries no card's last four digits "
            "(payment_details.credit_card_number), so it was not imported: Verifier checks "
            "card payments.",
        )
    name = (
        _joined(customer.get("first_name"), customer.get("last_name"))
        or _str(billing.get("name"))
        or _str(shipping.get("name"))
    )
    client = _object(order, "client_details")
    mapped = {
        "external_id": f"shopify:{order_id}",
        "placed_at": _str(order.get("created_at")),
        "amount": _str(order.get("total_price")),
        "currency": _str(order.get("currency")),
        "customer": {
            "name": name,
            "email": _str(
                order.get("email") or order.get("contact_email") or customer.get("email")
            ),
            "phone": _str(order.get("phone") or customer.get("phone") or billing.get("phone")),
        },
        "billing_address": _shopify_address(billing),
        "shipping_address": _shopify_address(shipping),
        "card": {
            "brand": _str(card.get("credit_card_company")),
            "last4": last4,
            "holder_name": _str(billing.get("name")) or name,
        },
        "ip_address": _str(order.get("browser_ip") or client.get("browser_ip")),
    }
    origin = {
        "external_id": "id", "placed_at": "created_at", "amount": "total_price",
        "currency": "currency", "customer.name": "customer.first_name", "customer.email": "email",
        "customer.phone": "phone", "card.brand": "payment_details.credit_card_company",
        "card.last4": "payment_details.credit_card_number",
        "card.holder_name": f"{billing_key}.name", "ip_address": "browser_ip",
    }  # fmt: skip
    for side, key in (("billing_address", billing_key), ("shipping_address", shipping_key)):
        origin |= {f"{side}.{a}": f"{key}.{b}" for a, b in (
            ("name", "name"), ("line1", "address1"), ("line2", "address2"), ("city", "city"),
            ("region", "province"), ("postcode", "zip"), ("country", "country_code"))}  # fmt: skip
        origin[side] = key
    return Mapped(mapped, origin)


# --- WooCommerce ---------------------------------------------------------------------------


def _woo_address(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": _joined(raw.get("first_name"), raw.get("last_name")) or None,
        "line1": _str(raw.get("address_1")),
        "line2": _str(raw.get("address_2")),
        "city": _str(raw.get("city")),
        "region": _str(raw.get("state")),
        "postcode": _str(raw.get("postcode")),
        "country": _str(raw.get("country")),
    }


def _woo_meta(order: dict[str, Any], suffixes: tuple[str, ...]) -> str | None:
    """A payment plugin's order meta value whose key ends with one of `suffixes`."""
    meta = order.get("meta_data")
    for item in meta if isinstance(meta, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        if item["key"].lower().endswith(suffixes) and isinstance(item.get("value"), str | int):
            return str(item["value"]).strip()
    return None


def _woo_placed_at(order: dict[str, Any]) -> str | None:
    # date_created_gmt is UTC without a zone; date_created is the shop's local time.
    gmt = order.get("date_created_gmt")
    if isinstance(gmt, str) and gmt and not gmt.endswith(("Z", "z")) and "+" not in gmt[10:]:
        return gmt + "+00:00"
    return _str(gmt) or _str(order.get("date_created"))


def map_woocommerce_order(payload: Any) -> Mapped:
    """An `order.created` webhook's order as the intake's payload; raises NotAnOrder or
    ValidationError (naming WooCommerce's fields)."""
    order = _require_object(payload)
    order_id = _platform_id(order, "id")
    billing = _object(order, "billing")
    shipping = _object(order, "shipping")
    # A virtual order (nothing shipped) leaves every shipping field empty.
    shipping_key = "shipping" if shipping.get("address_1") else "billing"
    shipping = shipping if shipping.get("address_1") else billing
    last4 = _woo_meta(order, _LAST4_KEYS)
    if last4 is None or not re.fullmatch(r"[0-9]{4}", last4):
        method = _str(order.get("payment_method_title")) or _str(order.get("payment_method"))
        raise NotAnOrder(
            "no_card",
            f"WooCommerce order {order_id} ({method or 'no payment method'}) carries no card's "
            "last four digits in its meta data, so it was not imported: Verifier checks card "
            "payments.",
        )
    name = _joined(billing.get("first_name"), billing.get("last_name"))
    mapped = {
        "external_id": f"woocommerce:{order_id}",
        "placed_at": _woo_placed_at(order),
        "amount": _str(order.get("total")),
        "currency": _str(order.get("currency")),
        "customer": {"name": name, "email": _str(billing.get("email")),
                     "phone": _str(billing.get("phone"))},
        "billing_address": _woo_address(billing),
        "shipping_address": _woo_address(shipping),
        "card": {"brand": _woo_meta(order, _BRAND_KEYS) or None, "last4": last4,
                 "holder_name": name},
        "ip_address": _str(order.get("customer_ip_address")),
    }  # fmt: skip
    origin = {
        "external_id": "id", "placed_at": "date_created_gmt", "amount": "total",
        "currency": "currency", "customer.name": "billing.first_name",
        "customer.email": "billing.email", "customer.phone": "billing.phone",
        "card.brand": "meta_data", "card.last4": "meta_data",
        "card.holder_name": "billing.first_name", "ip_address": "customer_ip_address",
    }  # fmt: skip
    for side, key in (("billing_address", "billing"), ("shipping_address", shipping_key)):
        origin |= {f"{side}.{a}": f"{key}.{b}" for a, b in (
            ("name", "first_name"), ("line1", "address_1"), ("line2", "address_2"),
            ("city", "city"), ("region", "state"), ("postcode", "postcode"),
            ("country", "country"))}  # fmt: skip
        origin[side] = key
    return Mapped(mapped, origin)


MAPPERS = {"shopify": map_shopify_order, "woocommerce": map_woocommerce_order}
