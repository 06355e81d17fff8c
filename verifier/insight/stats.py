"""Dashboard numbers: orders and flags per day, the queue, decision times and outcomes.

Counts come from the rollups the database keeps (verifier.core.rollups); review-time
percentiles from its buckets (within ±5 %), waiting times at their rank through an index.
Nothing here pulls rows into Python to count them, so the dashboard costs the same at a
thousand orders as at a million. Days are UTC.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from verifier.core.outcomes import BAD_OUTCOMES, OrderOutcome
from verifier.core.rollups import (
    FROM_DOCUMENTS,
    FROM_FLAG,
    bucket_percentiles,
    case_counts,
    day_counts,
    review_time_buckets,
    waiting_days,
)
from verifier.core.settings import Settings
from verifier.insight.estimate import FailureEstimate, estimate_failure_share
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    CLEARED,
    DECLINED,
    EXPIRED,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    Order,
    VerificationCase,
)
from verifier.review.quality import AgreementReport, agreement_report
from verifier.review.throughput import ReviewerLoad, reviewer_throughput

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
class BadOutcomes:
    """Orders received in the period that the shop later reported charged back or fraud."""

    by_status: dict[str, int]  # the order's status: approved, cleared, rejected, ...

    @property
    def false_approvals(self) -> int:
        """Approved by a reviewer, later charged back or confirmed fraud."""
        return self.by_status.get(APPROVED, 0)

    @property
    def missed(self) -> int:
        """Never sampled (cleared), later charged back or confirmed fraud."""
        return self.by_status.get(CLEARED, 0)

    @property
    def caught(self) -> int:
        """Rejected, declined or expired: review stopped them (the outcome confirms it)."""
        return sum(self.by_status.get(s, 0) for s in (REJECTED, DECLINED, EXPIRED))

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


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
    reviewers: list[ReviewerLoad]
    bad_outcomes: BadOutcomes


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def daily_numbers(session: Session, period: Period) -> list[DayRow]:
    """One row per day: orders received and flagged by their arrival, outcomes by their end.

    Read from the daily rollup (verifier.core.rollups): a row per day, however many orders.
    """
    counted = day_counts(session, period.first, period.last)
    rows = []
    for day in period.days:
        counts = counted.get(day, {})
        rows.append(DayRow(day, **{name: counts.get(name, 0) for name in CSV_COLUMNS[1:]}))
    return rows


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
    """Open cases now, and how long those waiting for a reviewer have waited.

    Counts come from the state counters and the waiting-days rollup; the oldest is the first
    entry of the index on (status, waiting since), and the median and the late count walk the
    days in the rollup, then read within one day through that index: a few rows, not every case.
    """
    counts = case_counts(session)
    in_review = counts[IN_REVIEW]
    since = func.coalesce(VerificationCase.submitted_at, VerificationCase.updated_at)
    waiting = select(since).where(VerificationCase.status == IN_REVIEW).order_by(since)
    oldest = median_since = None
    over_target = 0
    days = waiting_days(session) if in_review else []
    if days:
        oldest = session.scalar(waiting.limit(1))
        median_since = _waiting_percentile(session, waiting, since, days, 50)
        cutoff = now - timedelta(hours=target_hours)
        late_day = _midnight(cutoff.astimezone(UTC).date())
        over_target = sum(n for day, n in days if day < late_day.date()) + (
            session.scalar(
                select(func.count())
                .select_from(VerificationCase)
                .where(VerificationCase.status == IN_REVIEW, since >= late_day, since < cutoff)
            )
            or 0
        )
    return QueueSnapshot(
        awaiting_documents=counts[AWAITING_DOCUMENTS],
        in_review=in_review,
        resubmission_requested=counts[RESUBMISSION_REQUESTED],
        oldest_in_review_hours=_hours(now - _as_utc(oldest)) if oldest is not None else None,
        median_in_review_hours=_hours(now - median_since) if median_since is not None else None,
        over_target=over_target,
        target_hours=target_hours,
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _waiting_percentile(
    session: Session, waiting: Select[Any], since: Any, days: list[tuple[date, int]], q: float
) -> datetime:
    """The q-th percentile (linear between ranks, as `percentile`) of the waiting-since times:
    the days rollup finds the day of its rank, the index reads two entries from that day on."""
    n = sum(count for _, count in days)
    position = (n - 1) * q / 100
    below = math.floor(position)
    seen, day = 0, days[-1][0]
    for candidate, count in days:
        if below < seen + count:
            day = candidate
            break
        seen += count
    pair = session.scalars(
        waiting.where(since >= _midnight(day)).offset(below - seen).limit(2)
    ).all()
    low = _as_utc(pair[0]).timestamp()
    high = _as_utc(pair[1]).timestamp() if len(pair) > 1 else low
    return datetime.fromtimestamp(low + (high - low) * (position - below), UTC)


def _in_hours(seconds: list[float | None]) -> list[float | None]:
    return [s / 3600 if s is not None else None for s in seconds]


def decision_timing(session: Session, period: Period) -> Timing:
    """Median and 90th percentile from flag (case opened) and from documents in to decision.

    Read from the review-time rollup's buckets (verifier.core.rollups): within ±5 %.
    """
    buckets = review_time_buckets(session, period.first, period.last)
    flag, docs = buckets[FROM_FLAG], buckets[FROM_DOCUMENTS]
    flag_median, flag_p90 = _in_hours(bucket_percentiles(flag, (50, 90)))
    docs_median, docs_p90 = _in_hours(bucket_percentiles(docs, (50, 90)))
    return Timing(
        decided=sum(flag.values()),
        flag_to_decision_median_h=flag_median,
        flag_to_decision_p90_h=flag_p90,
        documents_to_decision_median_h=docs_median,
        documents_to_decision_p90_h=docs_p90,
    )


def outcome_rates(session: Session, period: Period) -> OutcomeRates:
    """How the cases that ended in the period ended, and how many needed a resubmission."""
    totals: Counter[str] = Counter()
    for counts in day_counts(session, period.first, period.last).values():
        totals.update(counts)
    return OutcomeRates(
        ended=sum(totals[status] for status in ENDED),
        counts={status: totals[status] for status in ENDED},
        resubmitted=totals["resubmitted"],
    )


def bad_outcomes(session: Session, period: Period) -> BadOutcomes:
    """Orders of the period with a chargeback or confirmed fraud, counted per order status.

    One GROUP BY in SQL, driven by the outcomes table (small) through its (outcome, order)
    index; an order with both a chargeback and confirmed fraud counts once.
    """
    status = func.coalesce(VerificationCase.status, CLEARED)
    rows = session.execute(
        select(status, func.count(func.distinct(OrderOutcome.order_id)))
        .select_from(OrderOutcome)
        .join(Order, Order.id == OrderOutcome.order_id)
        .outerjoin(VerificationCase, VerificationCase.order_id == Order.id)
        .where(
            OrderOutcome.outcome.in_(BAD_OUTCOMES),
            Order.created_at >= period.start,
            Order.created_at < period.end,
        )
        .group_by(status)
    ).all()
    return BadOutcomes({str(s): int(n) for s, n in rows})


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
        reviewers=reviewer_throughput(
            session, start=period.start, end=period.end, days=len(period.days)
        ),
        bad_outcomes=bad_outcomes(session, period),
    )
