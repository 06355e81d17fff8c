"""The OpenAPI 3.1 document of exactly the routes implemented under /api/v1."""

from __future__ import annotations

from typing import Any

from verifier.core.checks import COUNTRIES, EMAIL_RE, PAN_RE
from verifier.core.sampling import DECISION_REASONS
from verifier.intake.openapi_connectors import SCHEMAS, connector_paths, outgoing_webhooks

# What orderdata._text refuses, said as JSON Schema: control characters, and digit runs that
# look like a card number.
_NO_CONTROL = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


def _text(max_len: int, *, required: bool = False) -> dict[str, Any]:
    schema = {
        "type": "string",
        "maxLength": max_len,
        "pattern": _NO_CONTROL,
        "not": {"pattern": PAN_RE.pattern},
    }
    if required:
        schema |= {"minLength": 1, "allOf": [{"pattern": "\\S"}]}
    else:
        schema["type"] = ["string", "null"]  # null or "" is the same as leaving it out
    return schema


_address = {
    "type": "object",
    "additionalProperties": False,
    "required": ["city", "country"],
    "anyOf": [{"required": ["line1"]}, {"required": ["address1"]}],
    "properties": {
        "name": _text(200),
        "line1": _text(200, required=True),
        "line2": _text(200),
        "city": _text(200, required=True),
        "region": _text(200),
        "postcode": _text(200),
        # Other platforms' names for the same fields; each is stored under the name above.
        "address1": _text(200) | {"description": "Same as line1 (give one of them)."},
        "address2": _text(200) | {"description": "Same as line2."},
        "state": _text(200) | {"description": "Same as region."},
        "province": _text(200) | {"description": "Same as region."},
        "postal_code": _text(200) | {"description": "Same as postcode."},
        "zip": _text(200) | {"description": "Same as postcode."},
        "country": {
            "type": "string",
            "enum": sorted(COUNTRIES),
            "description": "ISO 3166-1 alpha-2",
        },
    },
}

_order_in = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "external_id", "placed_at", "amount", "currency", "customer",
        "billing_address", "shipping_address", "card",
    ],
    "properties": {
        "external_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$",
                        "description": "The shop's own order reference; the idempotency key."},
        "placed_at": {"type": "string", "format": "date-time",
                      "description": "ISO 8601 with a timezone; not more than a day ahead."},
        "amount": {"oneOf": [{"type": "string", "pattern": "^[0-9]{1,11}(\\.[0-9]{1,2})?$"},
                             {"type": "number", "minimum": 0, "maximum": 99999999999.99,
                              "multipleOf": 0.01}],
                   "description": "Order total, at most two decimals."},
        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
        "customer": {
            "type": "object", "additionalProperties": False, "required": ["name", "email"],
            "properties": {"name": _text(200, required=True),
                           "email": _text(254, required=True) | {
                               "format": "email", "allOf": [{"pattern": EMAIL_RE.pattern}]},
                           "phone": {"type": ["string", "null"], "maxLength": 40,
                                     "pattern": "^\\+?[0-9 ().\\-/]*$",
                                     "description": "Optional; 5-15 digits. Linked history "
                                     "compares its last ten digits."}},
        },
        "ip_address": {"type": ["string", "null"], "maxLength": 64,
                       "description": "Optional: the customer's IPv4 or IPv6 address."},
        "device_id": {"type": ["string", "null"], "pattern": "^[\\x21-\\x7e]{0,100}$",
                      "description": "Optional: the shop's device or browser fingerprint id."},
        "locale": {"type": ["string", "null"], "maxLength": 35,
                   "description": "Optional: the customer's language tag (en, de, fr, es; "
                   "else the browser's). Their emails and pages use it."},
        "timezone": {"type": ["string", "null"], "maxLength": 64,
                     "description": "Optional: the customer's IANA time zone, e.g. "
                     "Europe/Berlin; times are shown in UTC without it."},
        "billing_address": _address,
        "shipping_address": _address,
        "card": {
            "type": "object", "additionalProperties": False, "required": ["last4", "holder_name"],
            "properties": {"brand": _text(20),
                           "last4": {"type": "string", "pattern": "^[0-9]{4}$"},
                           "holder_name": _text(200, required=True)},
            "description": "Never the full card number: only the last four digits.",
        },
    },
}  # fmt: skip

_order_out = {
    "type": "object",
    "required": ["external_id", "status", "received_at", "decision", "case"],
    "properties": {
        "external_id": {"type": "string"},
        "status": {
            "type": "string",
            "enum": [
                "cleared", "awaiting_documents", "in_review", "resubmission_requested",
                "approved", "rejected", "expired", "declined",
            ],
        },
        "received_at": {"type": "string", "format": "date-time"},
        "decision": {
            "type": "object",
            "properties": {
                "flagged": {"type": "boolean"},
                "reason": {
                    "type": "string",
                    "maxLength": 40,
                    "examples": list(DECISION_REASONS),
                    "description": "random, not_selected, repeat_customer_exempt, rule_exempt "
                    "(a rule spared the random draw), or the name of the rule that forced "
                    "review: a built-in one or one the admin named.",
                },
                "rules_matched": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Every rule the order matched, in policy order, whatever "
                    "its action (force review, exempt or tag only).",
                },
                "policy_version": {"type": "integer"},
                "rate_percent": {"type": "string"},
                "draw": {"type": "integer", "minimum": 0, "maximum": 9999},
                "decided_at": {"type": "string", "format": "date-time"},
            },
        },
        "case": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "status": {"type": "string"},
                        "opened_at": {"type": "string", "format": "date-time"},
                        "decided_at": {"type": ["string", "null"], "format": "date-time"},
                        "upload_url": {
                            "type": ["string", "null"],
                            "description": "The customer's upload link; only in the response "
                            "that opened the case (201), null afterwards.",
                        },
                        "expires_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
            ]
        },
    },
}  # fmt: skip

_error = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "Dotted field path -> what is wrong with it."},
            },
        }
    },
}  # fmt: skip


_hold = {
    "type": "object",
    "required": ["external_id", "case_id", "held", "reason", "held_since", "documents_purged_at"],
    "properties": {
        "external_id": {"type": "string"},
        "case_id": {"type": "integer"},
        "held": {"type": "boolean"},
        "reason": {"type": ["string", "null"]},
        "held_since": {"type": ["string", "null"], "format": "date-time"},
        "documents_purged_at": {
            "type": ["string", "null"], "format": "date-time",
            "description": "Set when the documents were already destroyed: a hold keeps "
                           "what is left, it cannot bring documents back.",
        },
    },
}  # fmt: skip

_hold_reason = {
    "type": "object",
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
}


def _hold_paths(unauthorized: dict[str, Any]) -> dict[str, Any]:
    path_param = {"name": "external_id", "in": "path", "required": True,
                  "schema": {"type": "string"}}  # fmt: skip
    common = {
        "401": unauthorized,
        "404": _resp("No order with that external_id."),
        "409": _resp("The order was not sampled: it has no verification case (no_case)."),
    }
    return {
        "post": {
            "operationId": "holdOrder",
            "summary": "Put the order's case on legal hold (for example a chargeback).",
            "description": "The purge keeps the case's documents and the order's details until "
            "the hold is released, and erasure requests are refused meanwhile. Sending it "
            "again keeps the hold and replaces the reason.",
            "parameters": [path_param],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _hold_reason | {"required": ["reason"]}}
                },
            },
            "responses": {
                "200": _resp("The case is on hold.", "Hold"),
                **common,
                "422": _resp("The reason is missing, empty or longer than 500 characters."),
            },
        },
        "delete": {
            "operationId": "releaseOrderHold",
            "summary": "Release the order's legal hold; retention applies again.",
            "description": "Idempotent: releasing a case that is not held answers 200 with "
            'held false. An optional JSON body {"reason": ...} is kept in the audit log.',
            "parameters": [path_param],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _hold_reason}},
            },
            "responses": {
                "200": _resp("The hold is released (or there was none).", "Hold"),
                **common,
                "422": _resp("The reason given is empty or longer than 500 characters."),
            },
        },
    }


# --- outcomes: POST /orders/{external_id}/outcome (verifier.core.outcomes) -----------------
_outcome_fields = {
    "outcome": {"type": "string", "enum": ["chargeback", "confirmed_fraud", "delivered_ok"]},
    "occurred_at": {"type": ["string", "null"], "format": "date-time",
                    "description": "When it happened (ISO 8601 with a timezone)."},
    "amount": {"type": ["string", "null"], "description": "E.g. the amount charged back."},
    "note": {"type": ["string", "null"], "maxLength": 500,
             "description": "Free text for the reviewers; never a card number."},
}  # fmt: skip

_outcome = {
    "type": "object",
    "required": ["external_id", "outcome", "recorded_at", "current", "history"],
    "properties": _outcome_fields | {
        "external_id": {"type": "string"},
        "recorded_at": {"type": "string", "format": "date-time"},
        "current": {"type": "string", "description": "The order's newest outcome."},
        "history": {"type": "array", "items": {"type": "object"},
                    "description": "Every outcome of the order, oldest first."},
    },
}  # fmt: skip


def _outcome_paths(unauthorized: dict[str, Any]) -> dict[str, Any]:
    body = {
        "type": "object", "additionalProperties": False, "required": ["outcome"],
        "properties": _outcome_fields | {"amount": {"oneOf": [
            {"type": "string", "pattern": "^[0-9]{1,11}(\\.[0-9]{1,2})?$"},
            {"type": "number", "minimum": 0, "multipleOf": 0.01}]}},
    }  # fmt: skip
    return {
        "post": {
            "operationId": "recordOutcome",
            "summary": "Report what the shop learned later about an order.",
            "description": "Idempotent: the same outcome with the same details again answers "
            "200 with the stored record. A different outcome (a chargeback after "
            "delivered_ok) is added beside the earlier ones and becomes `current`; outcomes "
            "are never edited, so the same outcome with other details answers 409.",
            "parameters": [
                {
                    "name": "external_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "201": _resp("The outcome is recorded.", "Outcome"),
                "200": _resp("The same outcome was reported before: the stored record.", "Outcome"),
                "400": _resp("The body is not valid JSON."),
                "401": unauthorized,
                "404": _resp("No order with that external_id."),
                "409": _resp("This outcome was reported before with other details."),
                "415": _resp("The body is not sent as application/json."),
                "422": _resp("A field is invalid; error.fields names it."),
            },
        }
    }


def _resp(description: str, schema: str = "Error") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def openapi_document() -> dict[str, Any]:
    """Build the document; a test checks its paths against the app's URL map both ways."""
    unauthorized = _resp("Missing, invalid or revoked API key.")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Verifier order intake API",
            "version": "1.0.0",
            "description": "Send every order; read whether it was sampled for verification.",
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "OrderIn": _order_in,
                "Order": _order_out,
                "Hold": _hold,
                "Outcome": _outcome,
                "Error": _error,
                **SCHEMAS,
            },
        },
        "security": [{"bearer": []}],
        # What Verifier sends to the shop (OpenAPI 3.1 webhooks).
        "webhooks": outgoing_webhooks(),
        "paths": {
            "/orders": {
                "post": {
                    "operationId": "createOrder",
                    "summary": "Send an order; returns its sampling decision.",
                    "description": "Idempotent on external_id: the same payload again returns "
                    "200 and the stored decision; different details under the same id give 409.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/OrderIn"}}
                        },
                    },
                    "responses": {
                        "201": _resp("Order stored and sampled.", "Order"),
                        "200": _resp("The same order was sent before; stored decision.", "Order"),
                        "400": _resp("The body is not valid JSON or not an object."),
                        "401": unauthorized,
                        "409": _resp("external_id exists with different details."),
                        "413": _resp("The body is larger than the limit."),
                        "415": _resp("The body is not sent as application/json."),
                        "422": _resp("One or more fields are invalid; see error.fields."),
                    },
                }
            },
            "/orders/{external_id}": {
                "get": {
                    "operationId": "getOrder",
                    "summary": "Read an order's status and sampling decision.",
                    "parameters": [
                        {
                            "name": "external_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _resp("The order.", "Order"),
                        "401": unauthorized,
                        "404": _resp("No order with that external_id."),
                    },
                }
            },
            "/orders/{external_id}/hold": _hold_paths(unauthorized),
            **connector_paths(),
            "/orders/{external_id}/outcome": _outcome_paths(unauthorized),
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document."}},
                }
            },
        },
    }
