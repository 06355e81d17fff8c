"""What a settings change would do: the review load it implies, replayed on recent orders.

Rules and the repeat-customer exemption are re-evaluated against every stored order of the
window; the random share is an expectation (orders no rule catches x the rate), not a
re-draw, so the preview is the same every time it is asked.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.core.rules import EXEMPT, REVIEW, compile_rules, parse_rates
from verifier.core.sampling import DRAW_SPACE, OrderFacts, Policy, rule_outcome
from verifier.insight.stats import median
from verifier.models import APPROVED, REJECTED, AuditEvent, Order, VerificationCase

PREVIEW_DAYS = 30
DEFAULT_REVIEW_MINUTES = 3.0  # used, and said so, until reviewers have decided some cases
CLAIM_ACTION = "case.claimed"


@dataclass(frozen=True)
class ReviewTime:
    minutes: float
    measured: bool
    cases: int  # decided cases the measurement is based on


@dataclass(frozen=True)
class Load:
    """The review load one set of values would have caused over the window."""

    rule_forced: int
    repeat_exempt: int
    random_expected: float
    days: int
    review_minutes: float

    @property
    def rule_per_day(self) -> float:
        return self.rule_forced / self.days

    @property
    def random_per_day(self) -> float:
        return self.random_expected / self.days

    @property
    def per_day(self) -> float:
        return self.rule_per_day + self.random_per_day

    @property
    def reviewer_hours_per_day(self) -> float:
        return self.per_day * self.review_minutes / 60


@dataclass(frozen=True)
class Preview:
    start: datetime
    end: datetime
    days: int
    orders: int
    current: Load
    proposed: Load
    review_time: ReviewTime


def measured_review_minutes(session: Session, *, start: datetime, end: datetime) -> ReviewTime:
    """Median minutes from a reviewer's claim to their approve/reject decision, in the window.

    Falls back to DEFAULT_REVIEW_MINUTES (measured=False) when no decision can be timed.
    """
    decided = session.execute(
        select(
            VerificationCase.id, VerificationCase.decided_by_id, VerificationCase.decided_at
        ).where(
            VerificationCase.status.in_((APPROVED, REJECTED)),
            VerificationCase.decided_at >= start,
            VerificationCase.decided_at < end,
            VerificationCase.decided_by_id.is_not(None),
        )
    ).all()
    # Keyed by the audit columns (target_id, actor_id), which may be NULL.
    claims: dict[tuple[str | None, str | None], list[datetime]] = defaultdict(list)
    for target_id, actor_id, at in session.execute(
        select(AuditEvent.target_id, AuditEvent.actor_id, AuditEvent.at).where(
            AuditEvent.action == CLAIM_ACTION,
            AuditEvent.target_type == "case",
            AuditEvent.at >= start - timedelta(days=1),
            AuditEvent.at < end,
        )
    ):
        claims[(target_id, actor_id)].append(at)
    durations = []
    for case_id, staff_id, decided_at in decided:
        assert decided_at is not None  # selected by decided_at
        times = sorted(claims.get((str(case_id), str(staff_id)), []))
        before = [t for t in times if t <= decided_at]
        if before:
            durations.append((decided_at - before[-1]).total_seconds() / 60)
    if not durations:
        return ReviewTime(DEFAULT_REVIEW_MINUTES, measured=False, cases=0)
    minutes = median(durations)
    assert minutes is not None  # durations is not empty
    return ReviewTime(minutes, measured=True, cases=len(durations))


def _policy(values: dict[str, Any]) -> Policy:
    # The settings form holds no rules: the rules in force apply on both sides.
    return Policy(
        version=0,
        rate_bp=values["rate_bp"],
        amount_threshold_minor=values["amount_threshold_minor"],
        country_mismatch=values["rule_country_mismatch"],
        name_mismatch=values["rule_name_mismatch"],
        rules=compile_rules(values.get("rules") or [], parse_rates(values.get("currency_rates"))),
    )


class _Approvals:
    """When each customer (email, card last four) had cases approved, for exemption checks."""

    def __init__(self, session: Session, since: datetime, until: datetime):
        self._times: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        rows = session.execute(
            select(Order.customer_email, Order.card_last4, VerificationCase.decided_at)
            .join(Order, VerificationCase.order_id == Order.id)
            .where(
                VerificationCase.status == APPROVED,
                VerificationCase.decided_at >= since,
                VerificationCase.decided_at < until,
            )
        )
        for email, last4, decided_at in rows:
            assert decided_at is not None  # selected by decided_at
            self._times[(email, last4)].append(decided_at)
        for times in self._times.values():
            times.sort()

    def within(self, email: str, last4: str, at: datetime, days: int) -> bool:
        times = self._times.get((email, last4), [])
        i = bisect.bisect_left(times, at - timedelta(days=days))
        return i < len(times) and times[i] <= at


def _load(
    orders: list[tuple[OrderFacts, str, str, datetime]],
    values: dict[str, Any],
    approvals: _Approvals,
    days: int,
    minutes: float,
) -> Load:
    policy = _policy(values)
    exemption_days = values.get("repeat_exemption_days")
    rule_forced = exempt = candidates = 0
    for facts, email, last4, created_at in orders:
        action = rule_outcome(policy, facts)[1]
        if action == REVIEW:
            rule_forced += 1
        elif action == EXEMPT:
            continue  # an exempting rule keeps it out of the random draw
        elif exemption_days is not None and approvals.within(
            email, last4, created_at, exemption_days
        ):
            exempt += 1
        else:
            candidates += 1
    return Load(
        rule_forced=rule_forced,
        repeat_exempt=exempt,
        random_expected=candidates * policy.rate_bp / DRAW_SPACE,
        days=days,
        review_minutes=minutes,
    )


def preview_policy(
    session: Session,
    *,
    current: dict[str, Any],
    proposed: dict[str, Any],
    now: datetime,
    days: int = PREVIEW_DAYS,
) -> Preview:
    """Replay the last `days` days of orders under the current and the proposed values.

    `current` and `proposed` are flat policy values (verifier.policy.changes.policy_values).
    """
    proposed = current | proposed  # what the proposal does not name (the rules) stays as is
    start = now - timedelta(days=days)
    rows = session.execute(
        select(
            Order.amount_minor,
            Order.billing_address,
            Order.shipping_address,
            Order.customer_name,
            Order.cardholder_name,
            Order.customer_email,
            Order.card_last4,
            Order.created_at,
            Order.currency,
            Order.card_brand,
        ).where(Order.created_at >= start, Order.created_at < now)
    ).all()
    orders = [
        (
            # Velocity is not replayed here (no counts): velocity rules count as not matching.
            OrderFacts(
                amount_minor=amount,
                billing_country=(billing or {}).get("country", ""),
                shipping_country=(shipping or {}).get("country", ""),
                customer_name=customer,
                cardholder_name=holder,
                currency=currency,
                customer_email=email,
                card_brand=brand,
                card_last4=last4,
                billing_address=billing or {},
                shipping_address=shipping or {},
            ),
            email,
            last4,
            created_at,
        )
        for (amount, billing, shipping, customer, holder, email, last4, created_at, currency,
             brand) in rows
    ]  # fmt: skip
    longest = max(
        (v for v in (current.get("repeat_exemption_days"), proposed.get("repeat_exemption_days"))
         if v is not None),
        default=0,
    )  # fmt: skip
    approvals = _Approvals(session, start - timedelta(days=longest), now)
    review_time = measured_review_minutes(session, start=start, end=now)
    return Preview(
        start=start,
        end=now,
        days=days,
        orders=len(orders),
        current=_load(orders, current, approvals, days, review_time.minutes),
        proposed=_load(orders, proposed, approvals, days, review_time.minutes),
        review_time=review_time,
    )
