"""Shared by the connector tests: the platforms' sample payloads, secrets and signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

from verifier.db import new_session
from verifier.intake.connectors import set_connector_secret
from verifier.vault.storage import Keyring

DATA = Path(__file__).resolve().parents[1] / "data" / "connectors"
SECRETS = {
    "shopify": "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",
    "woocommerce": "wc-secret-9f8e7d6c5b4a",
}
PATHS = {
    "shopify": "/api/v1/connectors/shopify/orders",
    "woocommerce": "/api/v1/connectors/woocommerce/orders",
}
HEADERS = {"shopify": "X-Shopify-Hmac-Sha256", "woocommerce": "X-WC-Webhook-Signature"}


def sample(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def configure(app, platform: str, secret: str | None = None) -> str:
    """Set the platform's secret as an admin would; returns it."""
    secret = secret or SECRETS[platform]
    session = new_session(app)
    set_connector_secret(session, Keyring.from_config(app.config), platform, secret,
                         actor_type="cli", actor_id="cli", actor_label="test",
                         now=datetime.now(UTC))  # fmt: skip
    session.commit()
    session.close()
    return secret


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def deliver(client, platform: str, payload, *, secret: str | None = None, headers=None):
    """POST `payload` as the platform does: the exact bytes, signed (unless secret is '')."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    secret = SECRETS[platform] if secret is None else secret
    sent = {"Content-Type": "application/json"}
    if secret:
        sent[HEADERS[platform]] = sign(secret, body)
    sent.update(headers or {})
    return client.post(PATHS[platform], data=body, headers=sent)


def woo_card_order(**changes) -> dict:
    """WooCommerce's sample order as a card payment plugin leaves it (last four in meta_data)."""
    order = sample("woocommerce_order_created.json")
    order |= {"payment_method": "stripe", "payment_method_title": "Credit card (Stripe)",
              "customer_ip_address": "203.0.113.9",
              "meta_data": [{"id": 1, "key": "card_brand", "value": "visa"},
                            {"id": 2, "key": "card_last4", "value": "4242"}]}  # fmt: skip
    return order | changes
