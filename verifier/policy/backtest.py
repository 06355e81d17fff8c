"""Backtest: replay a draft policy over a window of stored orders and count what it catches.

Every order's random draw is stored on its decision, so the replay is exact, not an
expectation: each order goes through the sampler's own `draw_sample` with a random source
that hands back that stored draw, under the current and under the draft policy. An order is
"bad" when its case was rejected or declined, or the shop later reported a chargeback or
confirmed fraud (verifier.core.outcomes); a policy "catches" a bad order when it flags it.
That assumes review would have stopped a bad order it saw, which the rejections support and
the false approvals on the dashboard temper.

Each order is replayed with every fact the sampler saw at intake: amount and currency, the
countries and addresses, names, email, card brand and last four, and, when either policy has
velocity rules, the velocity counts of the orders stored before it (verifier.core.velocity,
one indexed look-up per order and policy, so such a window is capped at MAX_VELOCITY_ORDERS).

Cost is bounded: the window is counted in SQL first and refused above MAX_ORDERS; the orders
are then read in batches of BATCH order ids (with their draw, case status and whether a bad
outcome exists, all in the one query), so memory stays flat whatever the window.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from verifier.core.linkkeys import LinkKeys
from verifier.core.outcomes import has_bad_outcome
from verifier.core.sampling import OrderFacts, draw_sample
from verifier.core.velocity import key_values, velocity_facts
from verifier.errors import ValidationError
from verifier.models import DECLINED, REJECTED, Order, SamplingDecision, VerificationCase
from verifier.policy.preview import ReviewTime, _Approvals, _policy, measured_review_minutes

MAX_DAYS = 366
MAX_ORDERS = 200_000
MAX_VELOCITY_ORDERS = 50_000  # a velocity look-up per order and policy (~0.4 ms each)
BATCH = 5_000
BAD_CASE_STATES = (REJECTED, DECLINED)


class _StoredDraw(random.Random):
    """A random source that hands the sampler the draw an order was actually given."""

    def __init__(self) -> None:
        super().__init__(0)
        self.value = 0

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return self.value


@dataclass
class Replay:
    """What one policy would have done over the window."""

    flagged: int = 0
    rule_forced: int = 0
    random: int = 0
    repeat_exempt: int = 0
    caught: int = 0  # bad orders it flags
    review_minutes: float = 0.0

    @property
    def reviewer_hours(self) -> float:
        return self.flagged * self.review_minutes / 60


@dataclass
class Backtest:
    start: datetime
    end: datetime
    orders: int
    review_time: ReviewTime
    bad: int = 0  # rejected, declined, charged back or confirmed fraud
    charged_back: int = 0  # of those, with a chargeback or confirmed fraud reported
    actually_flagged: int = 0  # what the policies of the time really flagged
    current: Replay = field(default_factory=Replay)
    proposed: Replay = field(default_factory=Replay)
    only_current: int = 0  # bad orders the current policy catches and the draft would miss
    only_proposed: int = 0  # bad orders only the draft catches

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(microseconds=1)).date()

    @property
    def days(self) -> float:
        return max((self.end - self.start).total_seconds() / 86_400, 1 / 24)


def check_window(start: datetime, end: datetime) -> None:
    """Raises ValidationError (naming the field) for an empty, reversed or too long window."""
    if end <= start:
        raise ValidationError(
            "The backtest window ends before it starts.",
            {"backtest_last": "Choose an end on or after the start."},
        )
    if end - start > timedelta(days=MAX_DAYS):
        raise ValidationError(
            f"A backtest covers at most {MAX_DAYS} days.",
            {"backtest_first": f"Choose a window of at most {MAX_DAYS} days."},
        )


def _decide(policy: Any, facts: OrderFacts, draw: _StoredDraw, exempt: bool) -> tuple[bool, str]:
    decision = draw_sample(policy, facts, draw, repeat_exempt=exempt)
    return decision.flagged, decision.reason


def _tally(replay: Replay, flagged: bool, reason: str, bad: bool) -> None:
    if flagged:
        replay.flagged += 1
        replay.caught += bad
        if reason == "random":
            replay.random += 1
        else:
            replay.rule_forced += 1
    elif reason == "repeat_customer_exempt":
        replay.repeat_exempt += 1


def backtest_policy(
    session: Session,
    *,
    current: dict[str, Any],
    proposed: dict[str, Any],
    start: datetime,
    end: datetime,
    max_orders: int = MAX_ORDERS,
    batch: int = BATCH,
) -> Backtest:
    """Replay the orders received in [start, end) under the current and the draft values.

    `current` and `proposed` are flat policy values (verifier.policy.changes.policy_values).
    Raises ValidationError when the window is invalid or holds more than `max_orders`.
    """
    check_window(start, end)
    in_window = (Order.created_at >= start, Order.created_at < end)
    orders = session.scalar(select(func.count()).select_from(Order).where(*in_window)) or 0
    policies = (_policy(current), _policy(proposed))
    with_velocity = [p for p in policies if p.velocity_needs]
    if with_velocity and orders > MAX_VELOCITY_ORDERS and max_orders > MAX_VELOCITY_ORDERS:
        max_orders = MAX_VELOCITY_ORDERS
    if orders > max_orders:
        raise ValidationError(
            f"This window holds {orders:,} orders; a backtest replays at most {max_orders:,} "
            "at once. Choose a shorter window.",
            {"backtest_first": f"Choose a window with at most {max_orders:,} orders."},
        )
    review_time = measured_review_minutes(session, start=start, end=end)
    result = Backtest(start=start, end=end, orders=orders, review_time=review_time)
    result.current.review_minutes = result.proposed.review_minutes = review_time.minutes
    exemption_days = (current.get("repeat_exemption_days"), proposed.get("repeat_exemption_days"))
    longest = max((d for d in exemption_days if d is not None), default=0)
    approvals = _Approvals(session, start - timedelta(days=longest), end)
    bad_outcome = has_bad_outcome(Order.id)
    # Only the countries of the addresses: read in SQL, so no address JSON is decoded here.
    billing = Order.billing_address["country"].as_string()
    shipping = Order.shipping_address["country"].as_string()

    def id_range(first: int) -> Select[Any]:
        # Batches are ranges of order ids, bounded on both sides and repeated on each joined
        # table: a plan that PostgreSQL caches for the prepared statement (a generic one, from
        # the sixth batch on) then still reads only the range, never from the start again.
        last = first + batch
        return (
            select(
                Order.id, Order.amount_minor, billing, shipping,
                Order.customer_name, Order.cardholder_name, Order.customer_email,
                Order.card_last4, Order.created_at, SamplingDecision.draw,
                SamplingDecision.flagged, VerificationCase.status, bad_outcome,
                Order.currency, Order.card_brand, Order.billing_address, Order.shipping_address,
                Order.email_key, Order.card_key, Order.billing_key, Order.shipping_key,
                Order.phone_key, Order.ip_address, Order.device_id,
            )
            .join(SamplingDecision, and_(SamplingDecision.order_id == Order.id,
                                         SamplingDecision.order_id.between(first, last - 1)))
            .outerjoin(VerificationCase, and_(VerificationCase.order_id == Order.id,
                                              VerificationCase.order_id.between(first, last - 1)))
            .where(*in_window, Order.id.between(first, last - 1))
        )  # fmt: skip

    draw = _StoredDraw()
    low, high = session.execute(
        select(func.min(Order.id), func.max(Order.id)).where(*in_window)
    ).one()
    for first in range(low or 0, (high or -1) + 1, batch):
        rows = session.execute(id_range(first)).all()
        for row in rows:
            (order_id, amount, billing_country, shipping_country, customer, holder, email,
             last4, created_at, stored_draw, was_flagged, status,
             charged_back) = row[:13]  # fmt: skip
            base = OrderFacts(
                amount_minor=amount,
                billing_country=billing_country or "",
                shipping_country=shipping_country or "",
                customer_name=customer,
                cardholder_name=holder,
                currency=row.currency,
                customer_email=email,
                card_brand=row.card_brand,
                card_last4=last4,
                billing_address=row.billing_address or {},
                shipping_address=row.shipping_address or {},
            )
            values = key_values(
                LinkKeys(row.email_key or "", row.card_key or "", row.billing_key or "",
                         row.shipping_key or "", row.phone_key),
                row.ip_address, row.device_id,
            ) if with_velocity else {}  # fmt: skip
            bad = bool(charged_back) or status in BAD_CASE_STATES
            result.bad += bad
            result.charged_back += bool(charged_back)
            result.actually_flagged += bool(was_flagged)
            draw.value = stored_draw
            outcomes = []
            for policy, days, replay in zip(
                policies, exemption_days, (result.current, result.proposed), strict=True
            ):
                exempt = days is not None and approvals.within(email, last4, created_at, days)
                facts = base
                if policy.velocity_needs:
                    velocity = velocity_facts(
                        session, policy, values, now=created_at, before_id=order_id
                    )
                    facts = replace(base, velocity=velocity)
                flagged, reason = _decide(policy, facts, draw, exempt)
                _tally(replay, flagged, reason, bad)
                outcomes.append(flagged)
            if bad and outcomes[0] != outcomes[1]:
                if outcomes[0]:
                    result.only_current += 1
                else:
                    result.only_proposed += 1
    return result
