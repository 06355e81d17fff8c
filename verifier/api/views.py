"""API views: parse -> one domain call -> JSON; errors are JSON in the app's one handler."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request, url_for

from verifier.api.openapi import openapi_document
from verifier.apikeys import authenticate_api_key
from verifier.db import get_session
from verifier.errors import NotFoundError
from verifier.orderdata import EXTERNAL_ID_RE, parse_order
from verifier.orders import get_order, order_status, submit_order
from verifier.sampling import format_rate
from verifier.web import json_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_system_random = random.SystemRandom()


@bp.before_request
def _limit_body():
    request.max_content_length = current_app.config["API_MAX_BODY_BYTES"]


def require_api_key(view):
    """Reject the request with 401 unless it carries an active `Authorization: Bearer` key."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        key = None
        if scheme.lower() == "bearer" and presented.strip():
            key = authenticate_api_key(get_session(), presented.strip(), datetime.now(UTC))
        if key is None:
            response, status = json_error(
                401,
                "unauthorized",
                "Send a valid API key as 'Authorization: Bearer <key>'."
                if not header
                else "The API key is not valid or has been revoked.",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="verifier"'
            return response, status
        g.api_key = key
        return view(*args, **kwargs)

    return wrapped


def order_body(order) -> dict:
    """The JSON representation of an order's status and sampling decision."""
    decision = order.decision
    case = order.case
    body = {
        "external_id": order.external_id,
        "status": order_status(order),
        "received_at": order.created_at.isoformat(),
        "decision": {
            "flagged": decision.flagged,
            "reason": decision.reason,
            "rules_matched": list(decision.rules_matched),
            "policy_version": decision.policy.version,
            "rate_percent": format_rate(decision.rate_bp),
            "draw": decision.draw,
            "decided_at": decision.created_at.isoformat(),
        },
        "case": None,
    }
    if case is not None:
        body["case"] = {
            "id": case.id,
            "status": case.status,
            "opened_at": case.created_at.isoformat(),
            "decided_at": case.decided_at.isoformat() if case.decided_at else None,
        }
    return body


@bp.post("/orders")
@require_api_key
def create_order():
    if not request.is_json:
        return json_error(
            415,
            "unsupported_media_type",
            "Send the order as JSON with Content-Type: application/json.",
        )
    payload = request.get_json(silent=True)
    if payload is None:
        return json_error(400, "invalid_json", "The request body is not valid JSON.")
    now = datetime.now(UTC)
    data = parse_order(payload, now)
    session = get_session()
    result = submit_order(
        session, data, source="api", rng=_system_random, now=now, actor_id=str(g.api_key.id)
    )
    session.commit()
    response = jsonify(order_body(result.order))
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = url_for("api.read_order", external_id=data.external_id)
    return response


@bp.get("/orders/<external_id>")
@require_api_key
def read_order(external_id: str):
    session = get_session()
    order = get_order(session, external_id) if EXTERNAL_ID_RE.match(external_id) else None
    session.commit()  # keeps the key's last_used_at
    if order is None:
        raise NotFoundError(f"No order with external_id {external_id!r}.")
    return jsonify(order_body(order))


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
