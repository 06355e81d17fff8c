"""The JSON answer about an order: its status, sampling decision and case (API and connectors)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.core.sampling import format_rate
from verifier.intake.orders import ClearedWrite, order_status
from verifier.models import CLEARED, Order
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
    body = _body(
        order.external_id, order_status(order), order.created_at, decision.flagged,
        decision.reason, decision.rules_matched, policy_version or decision.policy.version,
        decision.rate_bp, decision.draw, decision.created_at,
    )  # fmt: skip
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


def cleared_body(write: ClearedWrite, policy_version: int) -> dict[str, Any]:
    """`order_body` of a cleared order just written, from the values it was written with
    (no ORM objects to build: the API's group commit path)."""
    order, decision = write.order, write.decision
    return _body(
        order["external_id"], CLEARED, order["created_at"], decision["flagged"],
        decision["reason"], decision["rules_matched"], policy_version, decision["rate_bp"],
        decision["draw"], decision["created_at"],
    )  # fmt: skip


def _body(
    external_id: str, status: str, received_at: datetime, flagged: bool, reason: str,
    rules_matched: list[str], policy_version: int, rate_bp: int, draw: int,
    decided_at: datetime,
) -> dict[str, Any]:  # fmt: skip
    return {
        "external_id": external_id,
        "status": status,
        "received_at": received_at.isoformat(),
        "decision": {
            "flagged": flagged,
            "reason": reason,
            "rules_matched": list(rules_matched),
            "policy_version": policy_version,
            "rate_percent": format_rate(rate_bp),
            "draw": draw,
            "decided_at": decided_at.isoformat(),
        },
        "case": None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
