"""Bulk actions from the queue: release claims, reassign cases, extend upload links.

Each case is handled on its own in a savepoint, so one refusal never undoes the others, and
the caller gets one result per case to show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from verifier.core.audit import record_event
from verifier.core.settings import Settings
from verifier.errors import ConflictError, NotFoundError, VerifierError
from verifier.models import (
    AWAITING_DOCUMENTS,
    IN_REVIEW,
    RESUBMISSION_REQUESTED,
    StaffUser,
    VerificationCase,
)
from verifier.review.claims import release_case

MAX_BULK = 200

Extend = Callable[[VerificationCase], object]
"""Gives the case's upload link a new expiry (the portal's links.extend_links)."""


@dataclass(frozen=True)
class BulkResult:
    case_id: int
    ok: bool
    message: str


def _case_ids(case_ids: Iterable[int]) -> list[int]:
    ids = list(dict.fromkeys(int(i) for i in case_ids))
    if not ids:
        raise ConflictError("Select at least one case.")
    if len(ids) > MAX_BULK:
        raise ConflictError(f"Select at most {MAX_BULK} cases at a time.")
    return ids


def _each(
    session: Session, case_ids: Iterable[int], action: Callable[[VerificationCase], str]
) -> list[BulkResult]:
    ids = _case_ids(case_ids)
    cases = {
        c.id: c
        for c in session.scalars(
            select(VerificationCase)
            .where(VerificationCase.id.in_(ids))
            .options(selectinload(VerificationCase.order))
        )
    }
    results = []
    for case_id in ids:
        case = cases.get(case_id)
        if case is None:
            results.append(BulkResult(case_id, False, "There is no such case."))
            continue
        try:
            with session.begin_nested():
                message = action(case)
        except VerifierError as exc:
            results.append(BulkResult(case_id, False, exc.message))
        else:
            results.append(BulkResult(case_id, True, message))
    return results


def bulk_release(
    session: Session, case_ids: Iterable[int], staff_id: int, now: datetime, *, as_admin: bool
) -> list[BulkResult]:
    """Release the claims on the selected cases: an admin any claim, a reviewer their own."""

    def release(case: VerificationCase) -> str:
        if case.claimed_by_id is None:
            raise ConflictError("Nobody holds this case.")
        if case.claimed_by_id != staff_id and not as_admin:
            raise ConflictError("Only an admin can release another reviewer's claim.")
        if not release_case(session, case.id, staff_id, now, force=as_admin):
            raise ConflictError("The claim changed meanwhile; nothing was released.")
        return "Released."

    return _each(session, case_ids, release)


def bulk_reassign(
    session: Session,
    case_ids: Iterable[int],
    to_staff_id: int,
    actor_id: int,
    now: datetime,
    settings: Settings,
) -> list[BulkResult]:
    """Hand the selected cases in review to one reviewer (admins only, checked by the view).

    The new claim lasts the review target time, so the reviewer has it when they next sign in.
    """
    reviewer = session.get(StaffUser, to_staff_id)
    if reviewer is None or not reviewer.active:
        raise NotFoundError("There is no such active reviewer.")
    until = now + timedelta(hours=settings.review_target_hours)

    def reassign(case: VerificationCase) -> str:
        if case.status != IN_REVIEW:
            raise ConflictError(f"This case is {case.status.replace('_', ' ')}, not in review.")
        if case.proposed_rejection_by_id == to_staff_id:
            raise ConflictError(
                "That reviewer proposed the rejection; a different one must confirm it."
            )
        previous = case.claimed_by_id
        case.claimed_by_id = to_staff_id
        case.lease_expires_at = until
        session.flush()
        record_event(
            session, "case.reassigned", actor_type="staff", actor_id=actor_id,
            target_type="case", target_id=case.id,
            details={"from": previous, "to": to_staff_id, "lease_expires_at": until.isoformat()},
            now=now,
        )  # fmt: skip
        return f"Assigned to {reviewer.email}."

    return _each(session, case_ids, reassign)


def bulk_extend_links(
    session: Session, case_ids: Iterable[int], actor_id: int, now: datetime, *, extend: Extend
) -> list[BulkResult]:
    """Give the upload links of cases waiting for the customer a new expiry via `extend`."""

    def extend_one(case: VerificationCase) -> str:
        if case.status not in (AWAITING_DOCUMENTS, RESUBMISSION_REQUESTED):
            raise ConflictError(
                f"This case is {case.status.replace('_', ' ')}: it is not waiting for documents."
            )
        until = extend(case)
        record_event(
            session, "case.links_extended", actor_type="staff", actor_id=actor_id,
            target_type="case", target_id=case.id, now=now,
        )  # fmt: skip
        if isinstance(until, datetime):
            return f"Link extended until {until:%Y-%m-%d %H:%M} UTC."
        return "Link extended."

    return _each(session, case_ids, extend_one)
