"""Verification cases: opening one for a flagged order and moving it through its lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.core.outbox import queue_webhook
from verifier.errors import ConflictError
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    DECLINED,
    EXPIRED,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    Order,
    VerificationCase,
)

# Which state may follow which (DESIGN.md "Order lifecycle").
TRANSITIONS: dict[str, frozenset[str]] = {
    AWAITING_DOCUMENTS: frozenset({IN_REVIEW, EXPIRED, DECLINED}),
    IN_REVIEW: frozenset({APPROVED, REJECTED, RESUBMISSION_REQUESTED}),
    RESUBMISSION_REQUESTED: frozenset({IN_REVIEW, EXPIRED, DECLINED, APPROVED, REJECTED}),
    APPROVED: frozenset(),
    REJECTED: frozenset(),
    EXPIRED: frozenset(),
    DECLINED: frozenset(),
}


def open_case(session: Session, order: Order, reason: str, now: datetime) -> VerificationCase:
    """Open the verification case of a flagged order, awaiting the customer's documents."""
    case = VerificationCase(
        order=order, status=AWAITING_DOCUMENTS, reason=reason, amount_minor=order.amount_minor,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(case)
    session.flush()
    record_event(
        session,
        "case.opened",
        actor_type="system",
        target_type="case",
        target_id=case.id,
        details={"order": order.external_id, "reason": reason},
        now=now,
    )
    return case


def change_status(
    session: Session,
    case: VerificationCase,
    new_status: str,
    *,
    actor_type: str,
    actor_id: str | int | None,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Move a case to `new_status` and audit it; raises ConflictError for a move not allowed."""
    if new_status not in TRANSITIONS[case.status]:
        raise ConflictError(f"A case that is {case.status} cannot become {new_status}.")
    old = case.status
    case.status = new_status
    case.updated_at = now
    record_event(
        session,
        "case.status_changed",
        actor_type=actor_type,
        actor_id=actor_id,
        target_type="case",
        target_id=case.id,
        details={"from": old, "to": new_status} | (details or {}),
        now=now,
    )
    queue_webhook(session, "case.status_changed", case_event_data(case, previous=old), now=now)


def case_event_data(case: VerificationCase, previous: str | None = None) -> dict[str, Any]:
    """What the shop is told about a case: ids and states, never personal data or documents."""
    return {
        "order_external_id": case.order.external_id,
        "case_id": case.id,
        "status": case.status,
        "previous_status": previous,
        "reason": case.reason,
        # Every rule the order matched (force review, exempt or tag), in policy order.
        "rules_matched": list(decision.rules_matched) if (decision := case.order.decision) else [],
        "decision_reason_code": case.decision_reason_code,
        "updated_at": case.updated_at.isoformat(),
    }
