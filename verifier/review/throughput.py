"""Per-reviewer throughput for the dashboard: cases decided, time per case, QA agreement.

Aggregated in the database (GROUP BY reviewer), so the cost grows with staff, not with cases.
Time per case runs from the reviewer's claim (`claimed_at`) to the decision; cases decided
before claims were timed have no claim time and are left out of the average only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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


def reviewer_throughput(
    session: Session, *, start: datetime, end: datetime, days: int
) -> list[ReviewerLoad]:
    """One row per reviewer who decided or was quality-checked in [start, end), busiest first."""
    decided = (
        select(
            VerificationCase.decided_by_id.label("staff_id"),
            func.count().label("decided"),
            func.count().filter(VerificationCase.status == APPROVED).label("approved"),
            func.count().filter(VerificationCase.status == REJECTED).label("rejected"),
            func.avg(
                _minutes_between(session, VerificationCase.decided_at, VerificationCase.claimed_at)
            ).label("minutes"),
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
            decided.c.minutes,
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
            minutes_per_case=float(minutes) if minutes is not None else None,
            checked=int(c),
            agreed=int(a),
        )
        for email, n, ok, no, minutes, c, a in rows
    ]
