"""Dashboard numbers: orders and flags per day, the queue, decision times and outcomes.

Everything is bucketed and ranked in Python from plain column reads, so the numbers are the
same on SQLite and PostgreSQL (no date functions or percentile aggregates that differ).
Days are UTC days.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifier.core.sampling import REASON_RANDOM, REASON_REPEAT_EXEMPT, RULE_NAMES
from verifier.core.settings import Settings
from verifier.insight.estimate import FailureEstimate, estimate_failure_share
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    DECLINED,
    EXPIRED,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    Order,
    SamplingDecision,
    VerificationCase,
)
from verifier.review.quality import AgreementReport, agreement_report

ENDED = (APPROVED, REJECTED, DECLINED, EXPIRED)
DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between ranks; None for no values.

    The same definition as NumPy's default and PostgreSQL's percentile_cont.
    """
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    below, above = math.floor(position), math.ceil(position)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


@dataclass(frozen=True)
class Period:
    """Whole UTC days from `first` to `last`, both included."""

    first: date
    last: date

    @classmethod
    def ending(cls, last: date, days: int = DEFAULT_PERIOD_DAYS) -> Period:
        return cls(last - timedelta(days=days - 1), last)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


@dataclass
class DayRow:
    day: date
    received: int = 0
    flagged_random: int = 0
    flagged_rule: int = 0
    repeat_exempt: int = 0
    approved: int = 0
    rejected: int = 0
    declined: int = 0
    expired: int = 0

    @property
    def flagged(self) -> int:
        return self.flagged_random + self.flagged_rule


CSV_COLUMNS = ("date", "received", "flagged_random", "flagged_rule", "repeat_exempt",
               "approved", "rejected", "declined", "expired")  # fmt: skip


@dataclass(frozen=True)
class QueueSnapshot:
    awaiting_documents: int
    in_review: int
    resubmission_requested: int
    oldest_in_review_hours: float | None
    median_in_review_hours: float | None
    over_target: int  # in review for longer than the review target
    target_hours: int


@dataclass(frozen=True)
class Timing:
    decided: int
    flag_to_decision_median_h: float | None
    flag_to_decision_p90_h: float | None
    documents_to_decision_median_h: float | None
    documents_to_decision_p90_h: float | None


@dataclass(frozen=True)
class OutcomeRates:
    ended: int
    counts: dict[str, int]  # approved / rejected / declined / expired
    resubmitted: int  # ended cases that had at least one resubmission request

    def share(self, key: str) -> float | None:
        if not self.ended:
            return None
        count = self.resubmitted if key == "resubmission" else self.counts[key]
        return count / self.ended


@dataclass(frozen=True)
class Dashboard:
    period: Period
    rows: list[DayRow]
    totals: DayRow
    queue: QueueSnapshot
    timing: Timing
    outcomes: OutcomeRates
    estimate: FailureEstimate
    agreement: AgreementReport


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def daily_numbers(session: Session, period: Period) -> list[DayRow]:
    """One row per day: orders received and flagged by their arrival, outcomes by their end."""
    rows = {day: DayRow(day) for day in period.days}
    received = session.execute(
        select(Order.created_at, SamplingDecision.reason)
        .outerjoin(SamplingDecision, SamplingDecision.order_id == Order.id)
        .where(Order.created_at >= period.start, Order.created_at < period.end)
    )
    for created_at, reason in received:
        row = rows[created_at.astimezone(UTC).date()]
        row.received += 1
        if reason == REASON_RANDOM:
            row.flagged_random += 1
        elif reason in RULE_NAMES:
            row.flagged_rule += 1
        elif reason == REASON_REPEAT_EXEMPT:
            row.repeat_exempt += 1
    ended_at = func.coalesce(VerificationCase.decided_at, VerificationCase.updated_at)
    outcomes = session.execute(
        select(VerificationCase.status, ended_at).where(
            VerificationCase.status.in_(ENDED), ended_at >= period.start, ended_at < period.end
        )
    )
    for status, when in outcomes:
        row = rows[_as_utc(when).date()]
        setattr(row, status, getattr(row, status) + 1)
    return list(rows.values())


def _as_utc(value: datetime | str) -> datetime:
    # A coalesce() result bypasses the column type on SQLite and comes back as text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def totals_of(rows: list[DayRow], period: Period) -> DayRow:
    total = DayRow(period.last)
    for name in CSV_COLUMNS[1:]:
        setattr(total, name, sum(getattr(r, name) for r in rows))
    return total


def daily_csv(rows: list[DayRow]) -> str:
    """The daily numbers as CSV text with a header line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.day.isoformat(), *(getattr(row, c) for c in CSV_COLUMNS[1:])])
    return out.getvalue()


def queue_snapshot(session: Session, *, now: datetime, target_hours: int) -> QueueSnapshot:
    """Open cases now, and how long those waiting for a reviewer have waited."""
    counts = Counter(
        dict(
            session.execute(
                select(VerificationCase.status, func.count())
                .where(
                    VerificationCase.status.in_(
                        (AWAITING_DOCUMENTS, IN_REVIEW, RESUBMISSION_REQUESTED)
                    )
                )
                .group_by(VerificationCase.status)
            ).all()
        )
    )
    waiting = session.execute(
        select(VerificationCase.submitted_at, VerificationCase.updated_at).where(
            VerificationCase.status == IN_REVIEW
        )
    ).all()
    ages = [_hours(now - (submitted or updated)) for submitted, updated in waiting]
    return QueueSnapshot(
        awaiting_documents=counts[AWAITING_DOCUMENTS],
        in_review=counts[IN_REVIEW],
        resubmission_requested=counts[RESUBMISSION_REQUESTED],
        oldest_in_review_hours=max(ages) if ages else None,
        median_in_review_hours=median(ages),
        over_target=sum(1 for age in ages if age > target_hours),
        target_hours=target_hours,
    )


def decision_timing(session: Session, period: Period) -> Timing:
    """Median and 90th percentile from flag (case opened) and from documents in to decision."""
    rows = session.execute(
        select(
            VerificationCase.created_at, VerificationCase.submitted_at, VerificationCase.decided_at
        ).where(
            VerificationCase.status.in_((APPROVED, REJECTED)),
            VerificationCase.decided_at >= period.start,
            VerificationCase.decided_at < period.end,
        )
    ).all()
    # decided_at is never None here: the query selects by it.
    from_flag = [_hours(decided - opened) for opened, _, decided in rows if decided is not None]
    from_docs = [
        _hours(decided - sub) for _, sub, decided in rows if sub is not None and decided is not None
    ]
    return Timing(
        decided=len(rows),
        flag_to_decision_median_h=median(from_flag),
        flag_to_decision_p90_h=percentile(from_flag, 90),
        documents_to_decision_median_h=median(from_docs),
        documents_to_decision_p90_h=percentile(from_docs, 90),
    )


def outcome_rates(session: Session, period: Period) -> OutcomeRates:
    """How the cases that ended in the period ended, and how many needed a resubmission."""
    ended_at = func.coalesce(VerificationCase.decided_at, VerificationCase.updated_at)
    rows = session.execute(
        select(VerificationCase.status, VerificationCase.resubmission_count).where(
            VerificationCase.status.in_(ENDED), ended_at >= period.start, ended_at < period.end
        )
    ).all()
    counts = Counter(status for status, _ in rows)
    return OutcomeRates(
        ended=len(rows),
        counts={status: counts[status] for status in ENDED},
        resubmitted=sum(1 for _, resubmissions in rows if resubmissions),
    )


def build_dashboard(
    session: Session, period: Period, *, now: datetime, settings: Settings
) -> Dashboard:
    """Everything the dashboard shows for one period, loaded in a handful of queries."""
    rows = daily_numbers(session, period)
    return Dashboard(
        period=period,
        rows=rows,
        totals=totals_of(rows, period),
        queue=queue_snapshot(session, now=now, target_hours=settings.review_target_hours),
        timing=decision_timing(session, period),
        outcomes=outcome_rates(session, period),
        estimate=estimate_failure_share(session, start=period.start, end=period.end),
        agreement=agreement_report(session, start=period.start, end=period.end),
    )
