"""Blind second reviews of decided cases, and how often reviewers agree.

The review queue samples `settings.quality_sample_percent` of decisions into QualityReview
rows (verifier.review.decisions). Here a different reviewer, who is not shown the first decision,
gives their own verdict; agreement is measured per first reviewer and overall.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, selectinload

from verifier.core.audit import record_event
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import (
    APPROVED,
    REJECTED,
    Document,
    Order,
    QualityReview,
    StaffUser,
    VerificationCase,
)

VERDICTS = (APPROVED, REJECTED)


def _not(column: InstrumentedAttribute[int | None], staff_id: int) -> ColumnElement[bool]:
    return or_(column.is_(None), column != staff_id)


def _pending_for(staff_id: int) -> tuple[ColumnElement[bool], ...]:
    """SQL conditions: not yet done, and this reviewer had no hand in the first decision."""
    return (
        QualityReview.completed_at.is_(None),
        _not(QualityReview.first_reviewer_id, staff_id),
        _not(VerificationCase.decided_by_id, staff_id),
        _not(VerificationCase.proposed_rejection_by_id, staff_id),
    )


@dataclass(frozen=True)
class BlindCase:
    """What the second reviewer sees: the order and the documents, never the first verdict."""

    review: QualityReview
    order: Order
    documents: list[Document]
    pending: int  # quality reviews waiting for this reviewer, this one included


def next_quality_review(session: Session, staff_id: int) -> BlindCase | None:
    """The oldest pending quality review this reviewer may do; None when there is none."""
    base = (
        select(QualityReview)
        .join(VerificationCase, QualityReview.case_id == VerificationCase.id)
        .where(*_pending_for(staff_id))
    )
    review = session.scalars(
        base.order_by(QualityReview.created_at, QualityReview.id).limit(1)
    ).first()
    if review is None:
        return None
    pending = session.scalar(
        select(func.count())
        .select_from(QualityReview)
        .join(VerificationCase, QualityReview.case_id == VerificationCase.id)
        .where(*_pending_for(staff_id))
    )
    assert pending is not None  # COUNT(*) with no GROUP BY returns one row
    case = session.scalars(
        select(VerificationCase)
        .where(VerificationCase.id == review.case_id)
        .options(selectinload(VerificationCase.order), selectinload(VerificationCase.documents))
    ).one()
    documents = sorted(
        (d for d in case.documents if d.status == "active"),
        key=lambda d: (d.kind, d.created_at, d.page),
    )
    return BlindCase(review=review, order=case.order, documents=documents, pending=pending)


def record_quality_verdict(
    session: Session, review_id: int, staff_id: int, verdict: str, now: datetime
) -> QualityReview:
    """Store the second reviewer's verdict and whether it agrees with the first decision.

    One conditional UPDATE, so two reviewers answering at once cannot both record a verdict.
    Raises ValidationError for an unknown verdict, NotFoundError, or ConflictError when the
    review is done already or this reviewer took part in the first decision.
    """
    if verdict not in VERDICTS:
        raise ValidationError("Choose approve or reject.", {"verdict": "Choose approve or reject."})
    row = session.execute(
        select(QualityReview, VerificationCase)
        .join(VerificationCase, QualityReview.case_id == VerificationCase.id)
        .where(QualityReview.id == review_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError("There is no such quality review.")
    review, case = row
    if staff_id in (review.first_reviewer_id, case.decided_by_id, case.proposed_rejection_by_id):
        raise ConflictError("You took part in this decision; another reviewer must check it.")
    if case.status not in VERDICTS:
        raise ConflictError("This case has no approve or reject decision to compare with.")
    agrees = verdict == case.status
    result = session.execute(
        update(QualityReview)
        .where(QualityReview.id == review_id, QualityReview.completed_at.is_(None))
        .values(reviewer_id=staff_id, verdict=verdict, agrees=agrees, completed_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise ConflictError("Another reviewer has already done this quality check.")
    record_event(
        session, "quality.reviewed", actor_type="staff", actor_id=staff_id,
        target_type="case", target_id=case.id, details={"verdict": verdict, "agrees": agrees},
        now=now,
    )  # fmt: skip
    if not agrees:
        # Raised to the admins' queue (list_disagreements) with both verdicts.
        record_event(
            session, "quality.disagreement_raised", actor_type="staff", actor_id=staff_id,
            target_type="case", target_id=case.id,
            details={"review": review.id, "first_decision": case.status,
                     "first_reviewer": review.first_reviewer_id, "second_verdict": verdict},
            now=now,
        )  # fmt: skip
    session.refresh(review)
    return review


@dataclass(frozen=True)
class Agreement:
    label: str
    checked: int
    agreed: int

    @property
    def rate(self) -> float | None:
        return self.agreed / self.checked if self.checked else None


@dataclass(frozen=True)
class Disagreement:
    case_id: int
    order_external_id: str
    first_decision: str
    first_reviewer: str
    second_verdict: str
    second_reviewer: str
    completed_at: datetime


@dataclass(frozen=True)
class AgreementReport:
    overall: Agreement
    per_reviewer: list[Agreement]  # by the reviewer whose decision was checked
    disagreements: list[Disagreement]
    pending: int


def agreement_report(session: Session, *, start: datetime, end: datetime) -> AgreementReport:
    """Agreement of quality checks completed in [start, end): overall, per reviewer, and misses.

    Counted in SQL (GROUP BY the first reviewer); only the disagreements, which the page
    lists, come back as rows.
    """
    done = (QualityReview.completed_at >= start, QualityReview.completed_at < end)
    counted = session.execute(
        select(
            QualityReview.first_reviewer_id,
            func.count(),
            func.count().filter(QualityReview.agrees.is_(True)),
        )
        .where(*done)
        .group_by(QualityReview.first_reviewer_id)
    ).all()
    missed = session.execute(
        select(QualityReview, VerificationCase.status, Order.external_id)
        .join(VerificationCase, QualityReview.case_id == VerificationCase.id)
        .join(Order, VerificationCase.order_id == Order.id)
        .where(*done, QualityReview.agrees.is_not(True))
        .order_by(QualityReview.completed_at.desc(), QualityReview.id.desc())
    ).all()
    ids = {r[0] for r in counted} | {r.reviewer_id for r, _, _ in missed}
    wanted = {i for i in ids if i is not None}
    # A None id (no reviewer recorded) finds no label.
    labels: dict[int | None, str] = {
        user_id: email
        for user_id, email in session.execute(
            select(StaffUser.id, StaffUser.email).where(StaffUser.id.in_(wanted))
        )
    }
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for first_id, n, agreed in counted:
        row = tally[labels.get(first_id, "unknown reviewer")]
        row[0] += int(n)
        row[1] += int(agreed)
    disagreements = []
    for review, status, external_id in missed:
        assert review.completed_at is not None  # selected by completed_at above
        disagreements.append(
            Disagreement(
                case_id=review.case_id,
                order_external_id=external_id,
                first_decision=status,
                first_reviewer=labels.get(review.first_reviewer_id, "unknown reviewer"),
                second_verdict=review.verdict or "",
                second_reviewer=labels.get(review.reviewer_id, "unknown reviewer"),
                completed_at=review.completed_at,
            )
        )
    pending = session.scalar(
        select(func.count()).select_from(QualityReview).where(QualityReview.completed_at.is_(None))
    )
    assert pending is not None  # COUNT(*) with no GROUP BY returns one row
    return AgreementReport(
        overall=Agreement(
            "All reviewers", sum(n for n, _ in tally.values()), sum(k for _, k in tally.values())
        ),
        per_reviewer=[Agreement(label, n, k) for label, (n, k) in sorted(tally.items())],
        disagreements=disagreements,
        pending=pending,
    )


# How an admin settles a disagreement; the case's decision itself stands either way (the shop
# was told), so the resolution is a record for coaching and for the audit trail.
RESOLUTIONS: dict[str, str] = {
    "first_stands": "The first decision was right",
    "second_right": "The second reviewer was right (the first reviewer is told)",
    "unclear": "Neither is clearly right (the documents are ambiguous)",
}
MAX_RESOLUTION_NOTE = 2000


@dataclass(frozen=True)
class OpenDisagreement:
    """A quality check that disagreed with the first decision, as an admin's queue row."""

    review_id: int
    case_id: int
    order_external_id: str
    first_decision: str
    first_reason_code: str | None
    first_reviewer: str
    second_verdict: str
    second_reviewer: str
    completed_at: datetime
    resolution: str | None
    resolution_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None


def list_disagreements(
    session: Session, *, resolved: bool, limit: int = 100
) -> list[OpenDisagreement]:
    """Quality checks that disagreed, open ones (oldest first) or settled ones (newest first)."""
    first = aliased(StaffUser)
    second = aliased(StaffUser)
    resolver = aliased(StaffUser)
    order_by = (
        (QualityReview.resolved_at.desc(), QualityReview.id.desc())
        if resolved
        else (QualityReview.completed_at, QualityReview.id)
    )
    rows = session.execute(
        select(
            QualityReview,
            VerificationCase.status,
            VerificationCase.decision_reason_code,
            Order.external_id,
            first.email,
            second.email,
            resolver.email,
        )
        .join(VerificationCase, QualityReview.case_id == VerificationCase.id)
        .join(Order, VerificationCase.order_id == Order.id)
        .outerjoin(first, QualityReview.first_reviewer_id == first.id)
        .outerjoin(second, QualityReview.reviewer_id == second.id)
        .outerjoin(resolver, QualityReview.resolved_by_id == resolver.id)
        .where(
            QualityReview.agrees.is_(False),
            QualityReview.resolved_at.is_not(None)
            if resolved
            else QualityReview.resolved_at.is_(None),
        )
        .order_by(*order_by)
        .limit(limit)
    ).all()
    out = []
    for review, status, reason_code, external_id, first_email, second_email, resolver_email in rows:
        assert review.completed_at is not None  # a verdict that disagrees is a completed one
        out.append(
            OpenDisagreement(
                review_id=review.id,
                case_id=review.case_id,
                order_external_id=external_id,
                first_decision=status,
                first_reason_code=reason_code,
                first_reviewer=first_email or "unknown reviewer",
                second_verdict=review.verdict or "",
                second_reviewer=second_email or "unknown reviewer",
                completed_at=review.completed_at,
                resolution=review.resolution,
                resolution_note=review.resolution_note,
                resolved_by=resolver_email,
                resolved_at=review.resolved_at,
            )
        )
    return out


def count_open_disagreements(session: Session) -> int:
    n = session.scalar(
        select(func.count())
        .select_from(QualityReview)
        .where(QualityReview.agrees.is_(False), QualityReview.resolved_at.is_(None))
    )
    return int(n or 0)


def resolve_disagreement(
    session: Session,
    review_id: int,
    admin_id: int,
    resolution: str,
    note: str | None,
    now: datetime,
) -> QualityReview:
    """Settle a disagreement once (a conditional UPDATE) and audit it with both verdicts.

    Raises ValidationError for an unknown resolution or a long note, NotFoundError when the
    review is not a disagreement, ConflictError when another admin settled it first.
    """
    errors = {}
    if resolution not in RESOLUTIONS:
        errors["resolution"] = "Choose how the disagreement is settled."
    text = (note or "").strip() or None
    if text and len(text) > MAX_RESOLUTION_NOTE:
        errors["note"] = f"Use at most {MAX_RESOLUTION_NOTE} characters."
    if errors:
        raise ValidationError("The resolution is not complete.", errors)
    row = session.execute(
        select(QualityReview, VerificationCase.status)
        .join(VerificationCase, QualityReview.case_id == VerificationCase.id)
        .where(QualityReview.id == review_id, QualityReview.agrees.is_(False))
    ).one_or_none()
    if row is None:
        raise NotFoundError("There is no such disagreement.")
    review, first_decision = row
    result = session.execute(
        update(QualityReview)
        .where(QualityReview.id == review_id, QualityReview.resolved_at.is_(None))
        .values(
            resolved_at=now, resolved_by_id=admin_id, resolution=resolution, resolution_note=text
        )
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise ConflictError("Another admin has already settled this disagreement.")
    record_event(
        session, "quality.disagreement_resolved", actor_type="staff", actor_id=admin_id,
        target_type="case", target_id=review.case_id,
        details={"review": review.id, "resolution": resolution, "first_decision": first_decision,
                 "first_reviewer": review.first_reviewer_id, "second_verdict": review.verdict,
                 "second_reviewer": review.reviewer_id},
        now=now,
    )  # fmt: skip
    session.refresh(review)
    return review
