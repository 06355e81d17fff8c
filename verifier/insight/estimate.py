"""The share of all orders that would fail verification, estimated from the random sample.

Every order's draw is stored, so the random sample is exactly the orders whose draw fell
below the rate in force: the orders sampled at random, and the rule-forced orders that the
draw would have picked anyway. That sample stands for all orders (rules and all); the cases
that only a rule brought in are biased towards trouble and are counted apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from verifier.core.rollups import day_counts, rates_in
from verifier.core.sampling import REASON_RANDOM, REASON_REPEAT_EXEMPT
from verifier.models import (
    APPROVED,
    DECLINED,
    EXPIRED,
    REJECTED,
    Order,
    SamplingDecision,
    VerificationCase,
)

Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution
MIN_SAMPLE = 30  # fewer ended random cases than this, and the dashboard says it cannot tell


def wilson_interval(failures: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a proportion `failures / n` (95 % by default).

    Unlike the textbook p ± z·√(p(1-p)/n), it stays inside [0, 1] and does not collapse to a
    point at 0 or n failures, which is what small samples of rare fraud give.
    Raises ValueError when n is not positive or failures is outside 0..n.
    """
    if n <= 0 or not 0 <= failures <= n:
        raise ValueError(f"need 0 <= failures <= n and n > 0, got {failures}/{n}")
    p = failures / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if failures == 0 else max(0.0, centre - half)
    high = 1.0 if failures == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Outcomes:
    """How a group of cases ended (or not yet)."""

    approved: int = 0
    rejected: int = 0
    declined: int = 0
    expired: int = 0
    still_open: int = 0

    @property
    def ended(self) -> int:
        return self.approved + self.rejected + self.declined + self.expired

    @property
    def not_passed(self) -> int:
        """Rejected, or the customer never proved anything (declined, or let the link expire)."""
        return self.rejected + self.declined + self.expired


@dataclass(frozen=True)
class Figure:
    """A share with its 95 % Wilson interval, or no numbers when the sample is too small."""

    count: int
    n: int
    share: float | None
    low: float | None
    high: float | None


def _figure(count: int, n: int, enough: bool) -> Figure:
    if not enough or n == 0:
        return Figure(count, n, None, None, None)
    low, high = wilson_interval(count, n)
    return Figure(count, n, count / n, low, high)


@dataclass(frozen=True)
class FailureEstimate:
    start: datetime
    end: datetime
    orders: int  # all orders received in the period
    random: Outcomes  # the random sample: the base of the estimate
    rule_only: Outcomes  # brought in by a rule alone: biased, shown apart
    repeat_exempt: int  # spared the draw, so outside the sample
    rates_bp: tuple[int, ...]  # the sampling rates in force over the period
    enough: bool
    rejected: Figure  # counting only reviewer rejections as failures
    not_passed: Figure  # counting declined and expired cases as failures too
    rule_rejected: Figure  # the biased figure for rule-only cases (never extrapolated)

    @property
    def mixed_rates(self) -> bool:
        return len(self.rates_bp) > 1


def _bucket(status: str | None) -> str:
    return {APPROVED: "approved", REJECTED: "rejected", DECLINED: "declined",
            EXPIRED: "expired"}.get(status or "", "still_open")  # fmt: skip


def _count(statuses: list[str | None]) -> Outcomes:
    totals = {"approved": 0, "rejected": 0, "declined": 0, "expired": 0, "still_open": 0}
    for status in statuses:
        totals[_bucket(status)] += 1
    return Outcomes(**totals)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _orders_between(session: Session, start: datetime, end: datetime) -> tuple[int, int, set[int]]:
    """Orders, repeat-exempt orders and sampling rates of a period that is not whole days."""
    exempt = SamplingDecision.reason == REASON_REPEAT_EXEMPT
    counted = select(func.count(), func.sum(case((exempt, 1), else_=0)))
    rows = session.execute(
        counted.select_from(SamplingDecision)
        .join(Order, SamplingDecision.order_id == Order.id)
        .where(Order.created_at >= start, Order.created_at < end)
    ).one()
    rates = session.scalars(
        select(SamplingDecision.rate_bp)
        .join(Order, SamplingDecision.order_id == Order.id)
        .where(Order.created_at >= start, Order.created_at < end)
        .distinct()
    )
    return int(rows[0] or 0), int(rows[1] or 0), set(rates)


def estimate_failure_share(
    session: Session, *, start: datetime, end: datetime, min_sample: int = MIN_SAMPLE
) -> FailureEstimate:
    """Estimate, for orders received in [start, end), the share that would fail verification."""
    first, last = (
        start.astimezone(UTC).date(),
        (end - timedelta(microseconds=1)).astimezone(UTC).date(),
    )
    whole_days = start == _midnight(first) and end == _midnight(last + timedelta(days=1))
    if whole_days:
        # The period is whole UTC days (the dashboard's): orders and rates from the rollup.
        days = day_counts(session, first, last).values()
        orders = sum(d["received"] for d in days)
        exempt = sum(d["repeat_exempt"] for d in days)
        rates = set(rates_in(session, first, last))
    else:
        orders, exempt, rates = _orders_between(session, start, end)
    # Cases are opened with their order, in the same transaction and at the same instant, so
    # the period's flagged orders are its cases: read through the cases' own time index.
    # A case is in the random sample when its draw fell below the rate: always so for one
    # flagged at random; for one a rule forced, its decision says. The decision is read per
    # case by its unique index (a correlated subquery), which keeps the plan a short index
    # walk on both databases rather than a scan of every decision.
    draw_in_sample = (
        select(SamplingDecision.draw < SamplingDecision.rate_bp)
        .where(SamplingDecision.order_id == VerificationCase.order_id)
        .scalar_subquery()
    )
    in_sample = case((VerificationCase.reason == REASON_RANDOM, True), else_=draw_in_sample)
    grouped = session.execute(
        select(in_sample, VerificationCase.status, func.count())
        .where(VerificationCase.created_at >= start, VerificationCase.created_at < end)
        .group_by(in_sample, VerificationCase.status)
    ).all()
    random_statuses: list[str | None] = []
    rule_statuses: list[str | None] = []
    for sampled, status, count in grouped:
        (random_statuses if sampled else rule_statuses).extend([status] * count)
    sample = _count(random_statuses)
    rule_only = _count(rule_statuses)
    enough = sample.ended >= min_sample
    rule_enough = rule_only.ended >= min_sample
    return FailureEstimate(
        start=start,
        end=end,
        orders=orders,
        random=sample,
        rule_only=rule_only,
        repeat_exempt=exempt,
        rates_bp=tuple(sorted(rates)),
        enough=enough,
        rejected=_figure(sample.rejected, sample.ended, enough),
        not_passed=_figure(sample.not_passed, sample.ended, enough),
        rule_rejected=_figure(rule_only.rejected, rule_only.ended, rule_enough),
    )
