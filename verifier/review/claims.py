"""Claims on cases in review: who works on a case, with leases that free abandoned ones.

A reviewer works on a case only while holding its claim. A claim is taken with one
conditional UPDATE, so two reviewers can never hold the same case, whatever the number of
processes; it lasts `settings.lease_minutes` and the case page renews it while open.
Decisions lock the case row first (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises
writers with BEGIN IMMEDIATE), so a double submit finds the case decided and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session, selectinload

from verifier.core.audit import record_event
from verifier.core.settings import Settings
from verifier.errors import ConflictError, NotFoundError
from verifier.models import (
    IN_REVIEW,
    StaffUser,
    VerificationCase,
)


def holder_label(session: Session, case: VerificationCase) -> str:
    holder = session.get(StaffUser, case.claimed_by_id) if case.claimed_by_id else None
    who = holder.email if holder is not None else "Another reviewer"
    if case.lease_expires_at is None:
        # The holder let go between our attempt and this read (a release committed in
        # between): the case is free again, so say so rather than name a holder.
        return "Another reviewer just released this case; try again."
    until = case.lease_expires_at.astimezone(UTC).strftime("%H:%M UTC")
    return f"{who} is reviewing this case until {until}."


def load_case(session: Session, case_id: int, *, lock: bool = False) -> VerificationCase:
    """Load a case with its order, fresh from the database; raises NotFoundError."""
    query = (
        select(VerificationCase)
        .where(VerificationCase.id == case_id)
        .options(selectinload(VerificationCase.order))
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    case = session.scalars(query).one_or_none()
    if case is None:
        raise NotFoundError("There is no such case.")
    return case


def _claimable(staff_id: int, now: datetime) -> ColumnElement[bool]:
    """SQL condition: the case is free, its lease ran out, or `staff_id` already holds it."""
    return and_(
        VerificationCase.status == IN_REVIEW,
        or_(
            VerificationCase.claimed_by_id.is_(None),
            VerificationCase.lease_expires_at < now,
            VerificationCase.claimed_by_id == staff_id,
        ),
    )


def _take(session: Session, case_id: int, staff_id: int, now: datetime, lease: timedelta) -> bool:
    """The conditional UPDATE that claims a case; True when this reviewer now holds it."""
    result = session.execute(
        update(VerificationCase)
        .where(VerificationCase.id == case_id, _claimable(staff_id, now))
        .values(
            claimed_by_id=staff_id,
            lease_expires_at=now + lease,
            # Renewing one's own claim keeps its start: time per case counts from the claim.
            claimed_at=sql_case(
                (
                    and_(
                        VerificationCase.claimed_by_id == staff_id,
                        VerificationCase.claimed_at.is_not(None),
                    ),
                    VerificationCase.claimed_at,
                ),
                else_=now,
            ),
        )
        .execution_options(synchronize_session="fetch")
    )
    return cast(CursorResult[Any], result).rowcount == 1


def refuse_own_proposal(case: VerificationCase, staff_id: int) -> None:
    if case.proposed_rejection_by_id == staff_id:
        raise ConflictError(
            "You proposed rejecting this case; a second reviewer must confirm or overturn it."
        )


def claim_case(
    session: Session, case_id: int, staff_id: int, now: datetime, settings: Settings
) -> VerificationCase:
    """Claim a case in review for `staff_id` (or extend their own claim); audits a new claim.

    Raises NotFoundError, or ConflictError naming who holds it and until when.
    """
    case = load_case(session, case_id)
    if case.status != IN_REVIEW:
        raise ConflictError(f"This case is {case.status.replace('_', ' ')}, not in review.")
    refuse_own_proposal(case, staff_id)
    already_mine = case.claimed_by_id == staff_id
    if not _take(session, case_id, staff_id, now, timedelta(minutes=settings.lease_minutes)):
        case = load_case(session, case_id)
        if case.status != IN_REVIEW:
            raise ConflictError(f"This case is {case.status.replace('_', ' ')}, not in review.")
        raise ConflictError(holder_label(session, case))
    case = load_case(session, case_id)
    assert case.lease_expires_at is not None  # just set by _take, in this transaction
    if not already_mine:
        record_event(
            session, "case.claimed", actor_type="staff", actor_id=staff_id, target_type="case",
            target_id=case_id, details={"lease_expires_at": case.lease_expires_at.isoformat()},
            now=now,
        )  # fmt: skip
    return case


def claim_next_case(
    session: Session, staff_id: int, now: datetime, settings: Settings
) -> VerificationCase | None:
    """Claim the oldest free case in review for `staff_id`; None when the queue is empty.

    A case the reviewer already holds comes first, so "next" never piles up claims. On
    PostgreSQL the candidate is locked with FOR UPDATE SKIP LOCKED, so concurrent reviewers
    each get a different case without waiting; SQLite ignores the clause and serialises.
    """
    held = session.scalar(
        select(VerificationCase.id)
        .where(
            VerificationCase.status == IN_REVIEW,
            VerificationCase.claimed_by_id == staff_id,
            VerificationCase.lease_expires_at >= now,
        )
        .order_by(VerificationCase.created_at, VerificationCase.id)
        .limit(1)
    )
    if held is not None:
        return claim_case(session, held, staff_id, now, settings)
    lease = timedelta(minutes=settings.lease_minutes)
    for _attempt in range(5):
        candidate = session.scalar(
            select(VerificationCase.id)
            .where(
                VerificationCase.status == IN_REVIEW,
                or_(
                    VerificationCase.claimed_by_id.is_(None),
                    VerificationCase.lease_expires_at < now,
                ),
                or_(
                    VerificationCase.proposed_rejection_by_id.is_(None),
                    VerificationCase.proposed_rejection_by_id != staff_id,
                ),
            )
            .order_by(VerificationCase.created_at, VerificationCase.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if candidate is None:
            return None
        if _take(session, candidate, staff_id, now, lease):
            case = load_case(session, candidate)
            assert case.lease_expires_at is not None  # just set by _take, in this transaction
            record_event(
                session, "case.claimed", actor_type="staff", actor_id=staff_id,
                target_type="case", target_id=candidate,
                details={"lease_expires_at": case.lease_expires_at.isoformat(), "next": True},
                now=now,
            )  # fmt: skip
            return case
    return None


def renew_lease(
    session: Session, case_id: int, staff_id: int, now: datetime, settings: Settings
) -> datetime:
    """Extend the reviewer's own claim; raises ConflictError when it is no longer theirs."""
    until = now + timedelta(minutes=settings.lease_minutes)
    result = session.execute(
        update(VerificationCase)
        .where(
            VerificationCase.id == case_id,
            VerificationCase.status == IN_REVIEW,
            VerificationCase.claimed_by_id == staff_id,
        )
        .values(lease_expires_at=until)
        .execution_options(synchronize_session="fetch")
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        case = load_case(session, case_id)
        if case.status != IN_REVIEW:
            raise ConflictError(f"This case is {case.status.replace('_', ' ')}, not in review.")
        if case.claimed_by_id is None:
            raise ConflictError("Your claim on this case was released; claim it again.")
        raise ConflictError(holder_label(session, case))
    return until


def release_case(
    session: Session, case_id: int, staff_id: int, now: datetime, *, force: bool = False
) -> bool:
    """Give up a claim (anyone's with `force`, for admins); True when a claim was released."""
    conditions = [VerificationCase.id == case_id, VerificationCase.claimed_by_id.is_not(None)]
    if not force:
        conditions.append(VerificationCase.claimed_by_id == staff_id)
    holder = session.scalar(select(VerificationCase.claimed_by_id).where(*conditions))
    result = session.execute(
        update(VerificationCase)
        .where(*conditions)
        .values(claimed_by_id=None, lease_expires_at=None)
        .execution_options(synchronize_session="fetch")
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        return False
    record_event(
        session, "case.released", actor_type="staff", actor_id=staff_id, target_type="case",
        target_id=case_id, details={"holder": holder} if holder != staff_id else {}, now=now,
    )  # fmt: skip
    return True


def lock_for_decision(session: Session, case_id: int, staff_id: int) -> VerificationCase:
    """Lock the case and check that `staff_id` holds it and it is still in review."""
    case = load_case(session, case_id, lock=True)
    if case.status != IN_REVIEW:
        raise ConflictError(
            f"This case was already {case.status.replace('_', ' ')}; nothing was changed."
        )
    if case.claimed_by_id != staff_id:
        if case.claimed_by_id is None or case.lease_expires_at is None:
            raise ConflictError("Claim this case before deciding it.")
        raise ConflictError(holder_label(session, case))
    return case
