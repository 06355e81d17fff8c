"""The OpenAPI parts beside the order API: the platform connectors' webhooks that Verifier
receives, the decision webhooks it sends (the document's `webhooks` section), and 429."""

from __future__ import annotations

from typing import Any

RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _resp(
    description: str, schema: str = "Error", headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }
    if headers:
        out["headers"] = headers
    return out


def too_many_requests(what: str) -> dict[str, Any]:
    """The 429 answer of a rate-limited operation, with its Retry-After header."""
    return _resp(what, headers={"Retry-After": RETRY_AFTER})


_text = {"type": ["string", "null"], "maxLength": 200}
_shopify_address = {
    "type": ["object", "null"],
    "properties": {
        "name": _text, "first_name": _text, "last_name": _text, "address1": _text,
        "address2": _text, "city": _text, "province": _text, "province_code": _text,
        "zip": _text, "country_code": {"type": ["string", "null"], "maxLength": 2},
        "phone": _text,
    },
}  # fmt: skip
_woo_address = {
    "type": "object",
    "properties": {
        "first_name": _text, "last_name": _text, "company": _text, "address_1": _text,
        "address_2": _text, "city": _text, "state": _text, "postcode": _text,
        "country": {"type": "string", "maxLength": 2}, "email": _text, "phone": _text,
    },
}  # fmt: skip

SCHEMAS: dict[str, Any] = {
    "ShopifyOrder": {
        "type": "object",
        "description": "Shopify's order resource as its orders/create webhook sends it; only "
        "the fields below are read, the rest are ignored.",
        "required": ["id"],
        "properties": {
            "id": {"type": "integer", "minimum": 1, "description": "Stored as shopify:<id>."},
            "name": {"type": "string"}, "order_number": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "email": _text, "contact_email": _text, "phone": _text,
            "total_price": {"type": "string", "pattern": "^[0-9]{1,11}(\\.[0-9]{1,2})?$"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "browser_ip": {"type": ["string", "null"]},
            "customer": {"type": ["object", "null"], "properties": {
                "first_name": _text, "last_name": _text, "email": _text, "phone": _text}},
            "billing_address": _shopify_address,
            "shipping_address": _shopify_address,
            "payment_details": {"type": ["object", "null"], "properties": {
                "credit_card_company": _text,
                "credit_card_number": {"type": ["string", "null"], "maxLength": 30,
                                       "description": "Masked; only the last four are kept."}}},
        },
    },
    "WooCommerceOrder": {
        "type": "object",
        "description": "WooCommerce's order (REST API v3 shape) as its order.created webhook "
        "sends it. The card's last four digits are read from the payment plugin's meta_data "
        "(a key ending in last4 or last_four).",
        "required": ["id"],
        "properties": {
            "id": {"type": "integer", "minimum": 1, "description": "Stored as woocommerce:<id>."},
            "number": {"type": "string"}, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "total": {"type": "string", "pattern": "^[0-9]{1,11}(\\.[0-9]{1,2})?$"},
            "date_created_gmt": {"type": "string"},
            "customer_ip_address": {"type": "string"},
            "payment_method_title": {"type": "string"},
            "billing": _woo_address, "shipping": _woo_address,
            "meta_data": {"type": "array", "items": {"type": "object", "properties": {
                "key": {"type": "string"}, "value": {}}}},
        },
    },
    "WooCommercePing": {
        "type": "object",
        "required": ["webhook_id"],
        "additionalProperties": False,
        "properties": {"webhook_id": {"type": "string", "pattern": "^[0-9]{1,20}$"}},
    },
    "ConnectorOrder": {
        "allOf": [_ref("Order")],
        "properties": {"resend_differs": {
            "type": "boolean",
            "description": "A redelivery carried other details than the stored order; they "
                           "were not applied (orders do not change once received)."}},
    },
    "NotImported": {
        "type": "object",
        "required": ["imported", "reason", "message"],
        "properties": {
            "imported": {"const": False},
            "reason": {"type": "string", "enum": ["no_card", "topic"]},
            "message": {"type": "string"},
        },
    },
    "Pong": {
        "type": "object",
        "required": ["ping", "message"],
        "properties": {"ping": {"const": True}, "message": {"type": "string"}},
    },
    "WebhookPing": {
        "type": "object",
        "required": ["id", "type", "created_at", "data"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "ping"},
            "created_at": {"type": "string", "format": "date-time"},
            "data": {
                "type": "object",
                "properties": {
                    "case_id": {"type": "null"},
                    "endpoint_id": {"type": "integer"},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "CaseStatusChanged": {
        "type": "object",
        "required": ["id", "type", "created_at", "data"],
        "properties": {
            "id": {"type": "string", "description": "The event id; a redelivery repeats it."},
            "type": {"const": "case.status_changed"},
            "created_at": {"type": "string", "format": "date-time"},
            "data": {
                "type": "object",
                "required": ["order_external_id", "case_id", "status", "previous_status",
                             "reason", "decision_reason_code", "updated_at"],
                "properties": {
                    "order_external_id": {"type": "string"},
                    "case_id": {"type": "integer"},
                    "status": {"type": "string"},
                    "previous_status": {"type": ["string", "null"]},
                    "reason": {"type": "string"},
                    "decision_reason_code": {"type": ["string", "null"]},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
}  # fmt: skip


def _header(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "description": description,
            "schema": {"type": "string"}}  # fmt: skip


def _connector_op(platform: str, label: str, header: str, topic: str) -> dict[str, Any]:
    schema = "ShopifyOrder" if platform == "shopify" else "WooCommerceOrder"
    content: dict[str, Any] = {"application/json": {"schema": _ref(schema)}}
    responses = {
        "201": _resp("Order stored and sampled.", "ConnectorOrder"),
        "200": _resp("A redelivery of a stored order: its stored decision, nothing new.",
                     "ConnectorOrder"),
        "202": _resp("Signed, but nothing to import: an order without a card's last four "
                     "digits, or another topic (reason says which).", "NotImported"),
        "400": _resp("The body is not valid JSON."),
        "401": _resp(f"{header} is missing or does not sign the raw body with the "
                     "connector's secret (error.code invalid_signature)."),
        "413": _resp("The body is larger than the limit."),
        "422": _resp("A field the order needs is missing or invalid; error.fields names it "
                     f"by {label}'s field path."),
        "429": too_many_requests("Too many refused signatures from this address; wait "
                                 "Retry-After seconds."),
        "409": _resp("The connector has no secret yet (connector_not_configured): an admin "
                     "sets it on the Integrations page; the platform's retries then succeed."),
    }  # fmt: skip
    description = (
        f"{label}'s {topic} webhook. Authenticated by {header}: the base64 HMAC-SHA256 of the "
        "raw body under the connector's secret, not by an API key. Idempotent on the "
        "platform's order id: redeliveries answer 200 with the stored order."
    )
    if platform == "woocommerce":
        content["application/x-www-form-urlencoded"] = {"schema": _ref("WooCommercePing")}
        responses["200"] = {
            "description": "A redelivery (the stored order), or the answer to WooCommerce's "
            "unsigned ping (webhook_id=...) sent when a webhook is saved.",
            "content": {"application/json": {"schema": {
                "oneOf": [_ref("ConnectorOrder"), _ref("Pong")]}}},
        }  # fmt: skip
    return {
        "post": {
            "operationId": f"{platform}OrderWebhook",
            "summary": f"Receive a {label} order webhook ({topic}).",
            "description": description,
            "security": [],
            "parameters": [
                _header(
                    header, "base64 HMAC-SHA256 of the raw body.", required=platform == "shopify"
                ),
                _header(
                    "X-Shopify-Topic" if platform == "shopify" else "X-WC-Webhook-Topic",
                    f"When sent, must be {topic}; other topics answer 202.",
                ),
            ],
            "requestBody": {"required": True, "content": content},
            "responses": responses,
        }
    }


def connector_paths() -> dict[str, Any]:
    return {
        "/connectors/shopify/orders": _connector_op(
            "shopify", "Shopify", "X-Shopify-Hmac-Sha256", "orders/create"
        ),
        "/connectors/woocommerce/orders": _connector_op(
            "woocommerce", "WooCommerce", "X-WC-Webhook-Signature", "order.created"
        ),
    }


def outgoing_webhooks() -> dict[str, Any]:
    """The `webhooks` section: what Verifier POSTs to the shop (verifier.notify.webhooks)."""
    signature = _header(
        "Verifier-Signature",
        "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + raw body under the endpoint's "
        "secret>; while a secret is rotated, a second v1 entry is signed with the previous "
        "secret: accept the delivery when either matches.",
        required=True,
    )
    return {
        "ping": {
            "post": {
                "operationId": "webhookPing",
                "summary": "A test ping, sent once when an admin presses Send test ping.",
                "description": "Signed like every delivery; tried once, not retried.",
                "parameters": [signature],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("WebhookPing")}},
                },
                "responses": {
                    "2XX": {"description": "The endpoint works."},
                    "default": {"description": "Shown to the admin as a failure."},
                },
            }
        },
        "caseStatusChanged": {
            "post": {
                "operationId": "caseStatusChanged",
                "summary": "A verification case changed state (sent to the shop's webhook URL).",
                "description": "Sent at least once, in order per case; a redelivery has the "
                "same id and body with a fresh signature. Answer 2xx quickly; anything else "
                "is retried (1 minute, doubling, at most 6 hours apart, 15 attempts).",
                "parameters": [
                    _header(
                        "Verifier-Signature",
                        "t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                        "'<t>.' + raw body under the webhook secret>; several v1 entries "
                        "may be sent while a secret is rotated.",
                        required=True,
                    ),
                    _header(
                        "Verifier-Event-Id", "The event id (also the body's id).", required=True
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CaseStatusChanged")}},
                },
                "responses": {
                    "2XX": {"description": "Received; not sent again."},
                    "default": {"description": "Anything else: retried later."},
                },
            }
        },
    }
