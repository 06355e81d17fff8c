"""Builders for realistic test payloads."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

BASE_ORDER = {
    "external_id": "A-1001",
    "placed_at": "2026-11-20T14:05:00Z",
    "amount": "129.99",
    "currency": "EUR",
    "customer": {"name": "Alice Meyer", "email": "alice@example.com"},
    "billing_address": {"line1": "1 High Street", "city": "London", "postcode": "SW1A 1AA",
                        "country": "GB"},
    "shipping_address": {"line1": "1 High Street", "city": "London", "postcode": "SW1A 1AA",
                         "country": "GB"},
    "card": {"brand": "visa", "last4": "4242", "holder_name": "Alice Meyer"},
}  # fmt: skip


def order_payload(**overrides) -> dict:
    """A valid order payload; keyword arguments replace top-level fields."""
    payload = copy.deepcopy(BASE_ORDER)
    payload["placed_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    payload.update(overrides)
    return payload
