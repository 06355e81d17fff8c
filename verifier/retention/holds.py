"""Legal holds: a case under hold keeps its documents and details past retention until released."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from verifier.core.audit import record_event
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import Order, VerificationCase

MAX_REASON = 500


def clean_reason(reason: object, field: str = "reason") -> str:
    """The reason stripped; raises ValidationError naming ``field`` when empty or too long."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise ValidationError("Give a reason.", {field: "A reason is required."})
    if len(text) > MAX_REASON:
        raise ValidationError(
            "The reason is too long.", {field: f"At most {MAX_REASON} characters."}
        )
    return text


def case_for_order(session: Session, external_id: str) -> VerificationCase:
    """The case of an order, locked for update; NotFoundError / ConflictError (no case)."""
    order = session.scalar(select(Order).where(Order.external_id == external_id))
    if order is None:
        raise NotFoundError(f"No order with external_id {external_id!r}.")
    case = session.scalar(
        select(VerificationCase)
        .where(VerificationCase.order_id == order.id)
        .options(selectinload(VerificationCase.order))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if case is None:
        raise ConflictError(
            f"Order {external_id!r} was not sampled for verification: there is no case to hold.",
            code="no_case",
        )
    return case


def _locked_case(session: Session, case_id: int) -> VerificationCase:
    case = session.scalar(
        select(VerificationCase)
        .where(VerificationCase.id == case_id)
        .options(selectinload(VerificationCase.order))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if case is None:
        raise NotFoundError("There is no such case.")
    return case


def set_legal_hold(
    session: Session,
    case: VerificationCase,
    reason: str,
    *,
    actor_type: str,
    actor_id: str | int | None,
    now: datetime,
) -> bool:
    """Put ``case`` on hold (or change the reason of its hold); True when newly held. Audited."""
    reason = clean_reason(reason)
    newly = case.legal_hold_at is None
    if not newly and case.legal_hold_reason == reason:
        return False
    case.legal_hold_reason = reason
    if newly:
        case.legal_hold_at = now
    record_event(
        session,
        "case.legal_hold_set",
        actor_type=actor_type,
        actor_id=actor_id,
        target_type="case",
        target_id=case.id,
        details={"order": case.order.external_id, "reason": reason, "new": newly},
        now=now,
    )
    return newly


def release_legal_hold(
    session: Session,
    case: VerificationCase,
    reason: str | None,
    *,
    actor_type: str,
    actor_id: str | int | None,
    now: datetime,
) -> bool:
    """Release the hold of ``case``; False when it was not held. Audited with the reason."""
    if case.legal_hold_at is None:
        return False
    details = {"order": case.order.external_id, "held_since": case.legal_hold_at.isoformat()}
    if reason:
        details["reason"] = clean_reason(reason)
    case.legal_hold_at = None
    case.legal_hold_reason = None
    record_event(
        session,
        "case.legal_hold_released",
        actor_type=actor_type,
        actor_id=actor_id,
        target_type="case",
        target_id=case.id,
        details=details,
        now=now,
    )
    return True


def hold_order(
    session: Session,
    external_id: str,
    reason: object,
    *,
    actor_type: str,
    actor_id: str | int | None,
    now: datetime,
) -> VerificationCase:
    """Put the case of an order on hold; ValidationError, NotFoundError, ConflictError."""
    text = clean_reason(reason)
    case = case_for_order(session, external_id)
    set_legal_hold(session, case, text, actor_type=actor_type, actor_id=actor_id, now=now)
    session.flush()
    return case


def release_order_hold(
    session: Session,
    external_id: str,
    reason: object,
    *,
    actor_type: str,
    actor_id: str | int | None,
    now: datetime,
) -> VerificationCase:
    """Release the hold of an order's case (nothing to do when not held); NotFound/Conflict.

    The reason is optional here, but one that is given must be valid (ValidationError).
    """
    text = None if reason is None else clean_reason(reason)
    case = case_for_order(session, external_id)
    release_legal_hold(session, case, text, actor_type=actor_type, actor_id=actor_id, now=now)
    session.flush()
    return case


def release_case_hold(
    session: Session,
    case_id: int,
    reason: object,
    *,
    actor_type: str,
    actor_id: str | int | None,
    now: datetime,
) -> VerificationCase:
    """Release a case's hold by case id (admin page); a reason is required there."""
    text = clean_reason(reason)
    case = _locked_case(session, case_id)
    if not release_legal_hold(session, case, text, actor_type=actor_type, actor_id=actor_id,
                              now=now):  # fmt: skip
        raise ConflictError("This case is not under legal hold.")
    session.flush()
    return case


def list_legal_holds(session: Session) -> list[VerificationCase]:
    """Every case under hold, oldest hold first, with its order loaded."""
    return list(
        session.scalars(
            select(VerificationCase)
            .where(VerificationCase.legal_hold_at.is_not(None))
            .options(selectinload(VerificationCase.order))
            .order_by(VerificationCase.legal_hold_at, VerificationCase.id)
        )
    )


def hold_body(case: VerificationCase) -> dict[str, Any]:
    """The API's JSON view of a case's hold."""
    return {
        "external_id": case.order.external_id,
        "case_id": case.id,
        "held": case.legal_hold_at is not None,
        "reason": case.legal_hold_reason,
        "held_since": case.legal_hold_at.isoformat() if case.legal_hold_at else None,
        "documents_purged_at": (
            case.documents_purged_at.isoformat() if case.documents_purged_at else None
        ),
    }
