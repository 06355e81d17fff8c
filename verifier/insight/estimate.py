"""The share of all orders that would fail verification, estimated from the random sample.

Every order's draw is stored, so the random sample is exactly the orders whose draw fell
below the rate in force: the orders sampled at random, and the rule-forced orders that the
draw would have picked anyway. That sample stands for all orders (rules and all); the cases
that only a rule brought in are biased towards trouble and are counted apart.

Each sampled order stands for 1/π orders, π being the rate its own draw was taken at (stored
on its decision): Horvitz-Thompson weights. The share is the weighted failures over the
weighted ended cases (the ratio, or Hájek, form), so a period in which the rate changed is no
longer dominated by its high-rate days. With one rate the weights cancel and the share is
the plain count ratio. The interval is Wilson's at Kish's effective sample size.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from verifier.core.rollups import day_counts, rates_in, strata_counts
from verifier.core.sampling import DRAW_SPACE, REASON_RANDOM, REASON_REPEAT_EXEMPT
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
    return _wilson(failures / n, n, z, none=failures == 0, all_=failures == n)


def _wilson(p: float, n: float, z: float, *, none: bool, all_: bool) -> tuple[float, float]:
    """Wilson bounds for a share `p` out of a (possibly effective, fractional) sample `n`."""
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if none else max(0.0, centre - half)
    high = 1.0 if all_ else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Stratum:
    """The ended random-sample cases drawn at one rate, and how many of them failed."""

    rate_bp: int
    ended: int
    failures: int

    @property
    def weight(self) -> float:
        return DRAW_SPACE / self.rate_bp


def weighted_share(strata: list[Stratum]) -> tuple[float, float] | None:
    """The Horvitz-Thompson weighted failure share and Kish's effective sample size.

    None when no stratum has an ended case. Raises ValueError for a rate of 0 (nothing can
    be drawn at it, so nothing sampled can carry it).
    """
    strata = [s for s in strata if s.ended]
    if not strata:
        return None
    if any(s.rate_bp <= 0 for s in strata):
        raise ValueError("a sampled case cannot have a rate of 0")
    total = sum(s.ended * s.weight for s in strata)
    failed = sum(s.failures * s.weight for s in strata)
    squares = sum(s.ended * s.weight**2 for s in strata)
    return failed / total, total * total / squares


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


def _weighted_figure(strata: list[Stratum], enough: bool) -> Figure:
    count, n = sum(s.failures for s in strata), sum(s.ended for s in strata)
    if len([s for s in strata if s.ended]) <= 1 or not enough:
        return _figure(count, n, enough)  # one rate: the weights cancel exactly
    weighted = weighted_share(strata)
    assert weighted is not None  # some stratum has ended cases
    share, n_eff = weighted
    low, high = _wilson(share, n_eff, Z_95, none=count == 0, all_=count == n)
    return Figure(count, n, share, low, high)


@dataclass(frozen=True)
class FailureEstimate:
    start: datetime
    end: datetime
    orders: int  # all orders received in the period
    random: Outcomes  # the random sample: the base of the estimate
    rule_only: Outcomes  # brought in by a rule alone: biased, shown apart
    repeat_exempt: int  # spared the draw, so outside the sample
    rates_bp: tuple[int, ...]  # the sampling rates in force over the period
    sample_rates_bp: tuple[int, ...]  # the rates the sampled, ended cases were drawn at
    enough: bool
    rejected: Figure  # counting only reviewer rejections as failures
    not_passed: Figure  # counting declined and expired cases as failures too
    rule_rejected: Figure  # the biased figure for rule-only cases (never extrapolated)

    @property
    def mixed_rates(self) -> bool:
        return len(self.rates_bp) > 1

    @property
    def weighted(self) -> bool:
        """Whether the sample mixes rates, so its cases carry different weights."""
        return len(self.sample_rates_bp) > 1


def _bucket(status: str | None) -> str:
    return {APPROVED: "approved", REJECTED: "rejected", DECLINED: "declined",
            EXPIRED: "expired"}.get(status or "", "still_open")  # fmt: skip


Row = tuple[bool, int | None, str, int]  # in the random sample, rate, outcome bucket, cases


def _strata_rows(session: Session, first: date, last: date) -> list[Row]:
    """The cases opened from `first` to `last`, counted by the strata rollup (a rate of 0
    there means the case had no decision)."""
    rows: list[Row] = []
    for rate_bp, counts in strata_counts(session, first, last):
        for name, count in counts.items():
            group, state = name.split("_", 1)
            if count:
                rows.append((group == "random", rate_bp or None,
                             "still_open" if state == "open" else state, count))  # fmt: skip
    return rows


def _counted_rows(session: Session, start: datetime, end: datetime) -> list[Row]:
    """The cases opened in [start, end), a period that is not whole days, counted from rows."""
    # Cases are opened with their order, in the same transaction and at the same instant, so
    # the period's flagged orders are its cases: read through the cases' own time index.
    # A case is in the random sample when its draw fell below the rate: always so for one
    # flagged at random; for one a rule forced, its decision says. The decision is read per
    # case by its unique index (a correlated subquery), which keeps the plan a short index
    # walk on both databases rather than a scan of every decision.
    decision = select().where(SamplingDecision.order_id == VerificationCase.order_id)
    draw_in_sample = decision.add_columns(
        SamplingDecision.draw < SamplingDecision.rate_bp
    ).scalar_subquery()
    rate = decision.add_columns(SamplingDecision.rate_bp).scalar_subquery()
    in_sample = case((VerificationCase.reason == REASON_RANDOM, True), else_=draw_in_sample)
    grouped = session.execute(
        select(in_sample, rate, VerificationCase.status, func.count())
        .where(VerificationCase.created_at >= start, VerificationCase.created_at < end)
        .group_by(in_sample, rate, VerificationCase.status)
    ).all()
    return [(bool(sampled), rate_bp, _bucket(status), int(count))
            for sampled, rate_bp, status, count in grouped]  # fmt: skip


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
    # rate -> [ended, rejected, not passed]: the strata of the weighted estimate.
    by_rate: dict[int, list[int]] = {}
    sample_totals: Counter[str] = Counter()
    rule_totals: Counter[str] = Counter()
    for sampled, rate_bp, bucket, count in (
        _strata_rows(session, first, last) if whole_days else _counted_rows(session, start, end)
    ):
        (sample_totals if sampled else rule_totals)[bucket] += count
        # A case without its decision row (none is written so; a hand-made row) has no rate
        # to weight it by: it stays in the counts and out of the weighted strata.
        if sampled and bucket != "still_open" and rate_bp:
            tally = by_rate.setdefault(int(rate_bp), [0, 0, 0])
            tally[0] += count
            tally[1] += count if bucket == "rejected" else 0
            tally[2] += count if bucket != "approved" else 0
    sample, rule_only = Outcomes(**sample_totals), Outcomes(**rule_totals)
    enough = sample.ended >= min_sample
    rule_enough = rule_only.ended >= min_sample
    rejected = [Stratum(r, t[0], t[1]) for r, t in sorted(by_rate.items())]
    not_passed = [Stratum(r, t[0], t[2]) for r, t in sorted(by_rate.items())]
    return FailureEstimate(
        start=start,
        end=end,
        orders=orders,
        random=sample,
        rule_only=rule_only,
        repeat_exempt=exempt,
        rates_bp=tuple(sorted(rates)),
        sample_rates_bp=tuple(sorted(by_rate)),
        enough=enough,
        rejected=_weighted_figure(rejected, enough),
        not_passed=_weighted_figure(not_passed, enough),
        rule_rejected=_figure(rule_only.rejected, rule_only.ended, rule_enough),
    )
