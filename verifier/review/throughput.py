"""Per-reviewer throughput for the dashboard: cases decided, time per case, QA agreement.

Aggregated in the database, so the cost grows with staff, not with cases: a period of whole
UTC days (the dashboard's) reads the reviewer-days rollup that triggers keep (migration 0017),
any other period groups its decided cases by reviewer. Time per case runs from the reviewer's
claim (`claimed_at`) to the decision; cases decided before claims were timed have no claim
time and are left out of the average only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifier.core.rollups import ReviewerDay
from verifier.models import APPROVED, REJECTED, QualityReview, StaffUser, VerificationCase


@dataclass(frozen=True)
class ReviewerLoad:
    reviewer: str
    decided: int
    approved: int
    rejected: int
    per_day: float
    minutes_per_case: float | None
    checked: int  # quality checks of this reviewer's decisions completed in the period
    agreed: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.checked if self.checked else None


def _minutes_between(session: Session, later: Any, earlier: Any) -> Any:
    assert session.bind is not None
    if session.bind.dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 1440.0
    return func.extract("epoch", later - earlier) / 60.0


def _decided(session: Session, start: datetime, end: datetime) -> Any:
    """Per reviewer decided in [start, end): decided, approved, rejected, timed and claim_ms
    (the milliseconds from claim to decision of the timed ones), as a subquery."""
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    midnight = datetime.combine(first, time.min, tzinfo=UTC)
    if start == midnight and end == midnight + timedelta(days=(last - first).days + 1):
        return (
            select(
                ReviewerDay.staff_id.label("staff_id"),
                func.sum(ReviewerDay.decided).label("decided"),
                func.sum(ReviewerDay.approved).label("approved"),
                func.sum(ReviewerDay.rejected).label("rejected"),
                func.sum(ReviewerDay.timed).label("timed"),
                func.sum(ReviewerDay.claim_ms).label("claim_ms"),
            )
            .where(ReviewerDay.day >= first, ReviewerDay.day <= last)
            .group_by(ReviewerDay.staff_id)
            .having(func.sum(ReviewerDay.decided) > 0)
            .subquery()
        )
    claim = VerificationCase.claimed_at
    return (
        select(
            VerificationCase.decided_by_id.label("staff_id"),
            func.count().label("decided"),
            func.count().filter(VerificationCase.status == APPROVED).label("approved"),
            func.count().filter(VerificationCase.status == REJECTED).label("rejected"),
            func.count(claim).label("timed"),
            func.sum(_minutes_between(session, VerificationCase.decided_at, claim) * 60_000).label(
                "claim_ms"
            ),
        )
        .where(
            VerificationCase.status.in_((APPROVED, REJECTED)),
            VerificationCase.decided_at >= start,
            VerificationCase.decided_at < end,
            VerificationCase.decided_by_id.is_not(None),
        )
        .group_by(VerificationCase.decided_by_id)
        .subquery()
    )


def reviewer_throughput(
    session: Session, *, start: datetime, end: datetime, days: int
) -> list[ReviewerLoad]:
    """One row per reviewer who decided or was quality-checked in [start, end), busiest first."""
    decided = _decided(session, start, end)
    checked = (
        select(
            QualityReview.first_reviewer_id.label("staff_id"),
            func.count().label("checked"),
            func.count().filter(QualityReview.agrees.is_(True)).label("agreed"),
        )
        .where(QualityReview.completed_at >= start, QualityReview.completed_at < end)
        .group_by(QualityReview.first_reviewer_id)
        .subquery()
    )
    rows = session.execute(
        select(
            StaffUser.email,
            func.coalesce(decided.c.decided, 0),
            func.coalesce(decided.c.approved, 0),
            func.coalesce(decided.c.rejected, 0),
            decided.c.claim_ms,
            decided.c.timed,
            func.coalesce(checked.c.checked, 0),
            func.coalesce(checked.c.agreed, 0),
        )
        .outerjoin(decided, decided.c.staff_id == StaffUser.id)
        .outerjoin(checked, checked.c.staff_id == StaffUser.id)
        .where((decided.c.staff_id.is_not(None)) | (checked.c.staff_id.is_not(None)))
        .order_by(func.coalesce(decided.c.decided, 0).desc(), StaffUser.email)
    ).all()
    return [
        ReviewerLoad(
            reviewer=email,
            decided=int(n),
            approved=int(ok),
            rejected=int(no),
            per_day=int(n) / max(days, 1),
            minutes_per_case=float(ms) / int(timed) / 60_000 if timed else None,
            checked=int(c),
            agreed=int(a),
        )
        for email, n, ok, no, ms, timed, c, a in rows
    ]
