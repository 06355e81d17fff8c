"""The JSON answer about an order: its status, sampling decision and case (API and connectors)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.core.sampling import format_rate
from verifier.intake.orders import order_status
from verifier.models import Order
from verifier.portal.links import Invitation, active_expiry


def order_body(
    session: Session,
    order: Order,
    invitation: Invitation | None = None,
    policy_version: int | None = None,
) -> dict[str, Any]:
    """The JSON representation of an order's status and sampling decision.

    `upload_url` is only known in the response that opened the case: only its hash is kept.
    """
    decision = order.decision
    assert decision is not None  # stored with the order, in the same transaction
    case = order.case
    body = {
        "external_id": order.external_id,
        "status": order_status(order),
        "received_at": order.created_at.isoformat(),
        "decision": {
            "flagged": decision.flagged,
            "reason": decision.reason,
            "rules_matched": list(decision.rules_matched),
            "policy_version": policy_version or decision.policy.version,
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
            "upload_url": invitation.url if invitation else None,
            "expires_at": _iso(
                invitation.expires_at if invitation else active_expiry(session, case.id)
            ),
        }
    return body


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
