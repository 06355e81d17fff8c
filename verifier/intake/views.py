"""API views: parse -> one domain call -> JSON; errors are JSON in the app's one handler."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request, url_for
from sqlalchemy.orm import Session

from verifier.core.checks import EXTERNAL_ID_RE
from verifier.core.outcomes import order_outcomes, outcome_body, parse_outcome, record_outcome
from verifier.db import get_read_session, get_session
from verifier.errors import NotFoundError, VerifierError
from verifier.intake.answers import order_body
from verifier.intake.apikeys import check_api_key
from verifier.intake.openapi import openapi_document
from verifier.intake.orders import get_order
from verifier.intake.payload import parse_order
from verifier.intake.receiving import receive_order
from verifier.portal.customer_mail import PortalContext
from verifier.retention.holds import hold_body, hold_order, release_order_hold
from verifier.web.http import json_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_system_random = random.SystemRandom()


@bp.before_request
def _limit_body():
    request.max_content_length = current_app.config["API_MAX_BODY_BYTES"]


def require_api_key(view=None, *, reads_first: bool = False):
    """Reject the request with 401 unless it carries an active `Authorization: Bearer` key.

    With `reads_first` the key is read in the request's read session (no write lock on
    SQLite), and the once-a-minute note of its use is committed at once.
    """
    if view is None:
        return lambda view: _with_api_key(view, reads_first)
    return _with_api_key(view, reads_first)


def _with_api_key(view, reads_first: bool):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        found = None
        if scheme.lower() == "bearer" and presented.strip():
            now = datetime.now(UTC)
            if reads_first:
                noted: list[Session] = []

                def writer() -> Session:
                    noted.append(get_session())
                    return noted[0]

                found = check_api_key(get_read_session(), presented.strip(), now, writer)
                if noted:
                    noted[0].commit()  # the key's use, noted once a minute
            else:
                found = check_api_key(get_session(), presented.strip(), now)
        if found is None:
            response, status = json_error(
                401,
                "unauthorized",
                "Send a valid API key as 'Authorization: Bearer <key>'."
                if not header
                else "The API key is not valid or has been revoked.",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="verifier"'
            return response, status
        g.api_key = found  # .id
        g.policy_version = found.policy_version
        g.chain_head = found.chain_head
        return view(*args, **kwargs)

    return wrapped


class _BodyRefused(VerifierError):
    """A request body that is not JSON (415) or not valid JSON (400)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message, code=code)
        self.status = status


def _json_body(what: str) -> object:
    """The request's JSON body; raises _BodyRefused, answered as JSON by the error handler."""
    if not request.is_json:
        raise _BodyRefused(
            415, "unsupported_media_type",
            f"Send the {what} as JSON with Content-Type: application/json.",
        )  # fmt: skip
    payload = request.get_json(silent=True)
    if payload is None:
        raise _BodyRefused(400, "invalid_json", "The request body is not valid JSON.")
    return payload


@bp.post("/orders")
@require_api_key(reads_first=True)
def create_order():
    now = datetime.now(UTC)
    data = parse_order(_json_body("order"), now)
    received = receive_order(
        data, key=g.api_key, reader=get_read_session(), writer=get_session,
        group_commit=current_app.extensions["verifier.group_commit"],
        policies=current_app.extensions["verifier.policy_cache"], rng=_system_random, now=now,
        portal=PortalContext.from_config(current_app.config),
    )  # fmt: skip
    response = jsonify(received.body)
    response.status_code = 201 if received.created else 200
    response.headers["Location"] = url_for("api.read_order", external_id=data.external_id)
    return response


@bp.get("/orders/<external_id>")
@require_api_key
def read_order(external_id: str):
    session = get_session()
    order = get_order(session, external_id) if EXTERNAL_ID_RE.match(external_id) else None
    if order is None:
        session.commit()  # keeps the key's last_used_at
        raise NotFoundError(f"No order with external_id {external_id!r}.")
    body = order_body(session, order)
    session.commit()
    return jsonify(body)


@bp.post("/orders/<external_id>/outcome")
@require_api_key
def record_outcome_view(external_id: str):
    """Record what the shop learned later (chargeback, confirmed fraud, delivered): idempotent."""
    if not EXTERNAL_ID_RE.match(external_id):
        raise NotFoundError(f"No order with external_id {external_id!r}.")
    now = datetime.now(UTC)
    data = parse_outcome(_json_body("outcome"), now)
    session = get_session()
    result = record_outcome(session, external_id, data, api_key_id=g.api_key.id, now=now)
    body = outcome_body(external_id, result.row, order_outcomes(session, result.row.order_id))
    session.commit()
    response = jsonify(body)
    response.status_code = 201 if result.created else 200
    return response


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


def _hold_reason():
    """The optional JSON body's "reason"; None when there is no JSON body."""
    if not request.get_data():
        return None
    payload = request.get_json(silent=True)
    return payload.get("reason") if isinstance(payload, dict) else ""


@bp.post("/orders/<external_id>/hold")
@require_api_key
def hold_order_view(external_id: str):
    """Put the order's case on legal hold (a chargeback): purge keeps its evidence."""
    if not EXTERNAL_ID_RE.match(external_id):
        raise NotFoundError(f"No order with external_id {external_id!r}.")
    session = get_session()
    case = hold_order(session, external_id, _hold_reason(), actor_type="api",
                      actor_id=str(g.api_key.id), now=datetime.now(UTC))  # fmt: skip
    body = hold_body(case)
    session.commit()
    return jsonify(body)


@bp.delete("/orders/<external_id>/hold")
@require_api_key
def release_order_hold_view(external_id: str):
    """Release the order's legal hold; retention applies again from the next purge."""
    if not EXTERNAL_ID_RE.match(external_id):
        raise NotFoundError(f"No order with external_id {external_id!r}.")
    session = get_session()
    case = release_order_hold(session, external_id, _hold_reason(), actor_type="api",
                              actor_id=str(g.api_key.id), now=datetime.now(UTC))  # fmt: skip
    body = hold_body(case)
    session.commit()
    return jsonify(body)
