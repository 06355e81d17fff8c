"""Order webhooks from shop platforms, signed with the connector's secret instead of an API key.

    POST /api/v1/connectors/shopify/orders       connectors.shopify_orders      orders/create
    POST /api/v1/connectors/woocommerce/orders   connectors.woocommerce_orders  order.created

Parse nothing before the signature is checked over the raw body. Never log a body or a secret.
"""

from __future__ import annotations

import json
import logging
import random
import re
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request, url_for

from verifier.db import get_session
from verifier.errors import ValidationError
from verifier.intake.answers import order_body
from verifier.intake.connectors import (
    PLATFORMS,
    connector_for,
    connector_statuses,
    note_delivery,
    open_secret,
    receive_platform_order,
    signature_matches,
)
from verifier.intake.platforms import MAPPERS, NotAnOrder
from verifier.portal.customer_mail import PortalContext
from verifier.vault.storage import Keyring
from verifier.web.http import json_error
from verifier.web.limits import limiter

log = logging.getLogger(__name__)
bp = Blueprint("connectors", __name__, url_prefix="/api/v1/connectors")
_system_random = random.SystemRandom()

SIGNATURE_HEADERS = {"shopify": "X-Shopify-Hmac-Sha256", "woocommerce": "X-WC-Webhook-Signature"}
TOPIC_HEADERS = {"shopify": "X-Shopify-Topic", "woocommerce": "X-WC-Webhook-Topic"}
# WooCommerce's ping body, whatever Content-Type WordPress gives it.
WOO_PING = re.compile(rb"webhook_id=[0-9]{1,20}")
ORDER_TOPICS = {"shopify": "orders/create", "woocommerce": "order.created"}


@bp.before_request
def _limit_body():
    request.max_content_length = current_app.config["API_MAX_BODY_BYTES"]


# Per client address, counting refused signatures only: a platform's good deliveries are never
# throttled, while guessing at a secret is (429 with Retry-After).
DEFAULT_FAILED_SIGNATURE_LIMIT = "30/minute"


def _failed_signature_limit() -> str:
    return current_app.config.get("CONNECTOR_RATE_LIMIT", DEFAULT_FAILED_SIGNATURE_LIMIT)


def _is_refused(response) -> bool:
    return response.status_code == 401


def _receive(platform: str):
    """Check the signature, map the order, store it once, answer with its decision."""
    session = get_session()
    connector = connector_for(session, platform)  # 409 with what to do when not set up
    body = request.get_data(cache=True)
    header = SIGNATURE_HEADERS[platform]
    presented = request.headers.get(header)
    secret = open_secret(Keyring.from_config(current_app.config), connector)
    if not signature_matches(secret, body, presented):
        log.warning("%s webhook refused: %s signature", platform,
                    "missing" if not presented else "wrong")  # fmt: skip
        return json_error(
            401,
            "invalid_signature",
            f"The {header} header is missing." if not presented else
            f"The {header} header does not match the body: the webhook was signed with another "
            f"secret, or the body was changed on the way. Check that the {PLATFORMS[platform]} "
            "connector's secret in Verifier is the one the platform signs with.",
        )  # fmt: skip
    now = datetime.now(UTC)
    note_delivery(connector, now)
    topic = request.headers.get(TOPIC_HEADERS[platform])
    if topic and topic != ORDER_TOPICS[platform]:
        session.commit()
        return _not_imported(
            "topic", f"Topic {topic!r} is not handled: subscribe this address to "
            f"{ORDER_TOPICS[platform]!r} only. Nothing was stored.")  # fmt: skip
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        session.commit()
        return json_error(400, "invalid_json", "The webhook body is not valid JSON.")
    try:
        data = MAPPERS[platform](payload).parse(now)
    except NotAnOrder as exc:
        session.commit()
        return _not_imported(exc.reason, exc.message)
    except ValidationError:
        session.commit()  # keeps last_delivery_at: the wiring works, the order does not fit
        raise
    result = receive_platform_order(
        session,
        platform,
        data,
        rng=_system_random,
        now=now,
        portal=PortalContext.from_config(current_app.config),
    )
    session.commit()
    order = result.intake.order
    answer = order_body(session, order, result.intake.invitation, result.intake.policy_version)
    response = jsonify(answer | {"resend_differs": result.differs})
    response.status_code = 201 if result.intake.created else 200
    response.headers["Location"] = url_for("api.read_order", external_id=order.external_id)
    return response


def _not_imported(reason: str, message: str):
    """A signed delivery that holds no order to verify: 202, so the platform stops retrying."""
    response = jsonify({"imported": False, "reason": reason, "message": message})
    response.status_code = 202
    return response


@bp.post("/shopify/orders")
@limiter.limit(_failed_signature_limit, deduct_when=_is_refused)
def shopify_orders():
    return _receive("shopify")


@bp.post("/woocommerce/orders")
@limiter.limit(_failed_signature_limit, deduct_when=_is_refused)
def woocommerce_orders():
    # Saving a webhook in WooCommerce sends an unsigned form post `webhook_id=<id>` first;
    # it must get a 2xx or WooCommerce reports the address as broken.
    if WOO_PING.fullmatch(request.get_data(cache=True)):
        configured = any(
            row.platform == "woocommerce" and row.configured
            for row in connector_statuses(get_session())
        )
        return jsonify({
            "ping": True,
            "message": "Verifier is reachable. " + (
                "Orders signed with the connector's secret will be imported."
                if configured else "Set the WooCommerce connector's secret in Verifier "
                "(Admin > Integrations) before the first order arrives."),
        })  # fmt: skip
    return _receive("woocommerce")
