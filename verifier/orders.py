"""Order intake: store an order once, draw its sample once, open a case when flagged."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from verifier.audit import record_event
from verifier.cases import open_case
from verifier.errors import ConflictError
from verifier.models import CLEARED, Order, SamplingDecision
from verifier.orderdata import OrderInput
from verifier.policies import as_sampler_policy, current_policy
from verifier.sampling import OrderFacts, draw_sample


@dataclass(frozen=True)
class IntakeResult:
    order: Order
    created: bool


def get_order(session: Session, external_id: str) -> Order | None:
    return session.scalar(
        select(Order)
        .where(Order.external_id == external_id)
        .options(selectinload(Order.decision), selectinload(Order.case))
    )


def order_status(order: Order) -> str:
    """The lifecycle status: `cleared` when not flagged, otherwise the case's state."""
    return order.case.status if order.case is not None else CLEARED


def _existing(session: Session, data: OrderInput) -> IntakeResult | None:
    order = get_order(session, data.external_id)
    if order is None:
        return None
    if order.payload_hash != data.payload_hash():
        raise ConflictError(
            f"An order with external_id {data.external_id!r} already exists with different "
            "details. Orders cannot be changed once sent; use a new external_id."
        )
    return IntakeResult(order, created=False)


def submit_order(
    session: Session,
    data: OrderInput,
    *,
    source: str,
    rng: random.Random,
    now: datetime,
    actor_id: str | None = None,
) -> IntakeResult:
    """Store a new order with its sampling decision, or return the stored one unchanged.

    Raises ConflictError when the external id exists with a different payload. Flushes only.
    """
    found = _existing(session, data)
    if found is not None:
        return found
    policy_row = current_policy(session)
    facts = OrderFacts(
        amount_minor=data.amount_minor,
        billing_country=data.billing_address["country"],
        shipping_country=data.shipping_address["country"],
        customer_name=data.customer_name,
        cardholder_name=data.cardholder_name,
    )
    decision = draw_sample(as_sampler_policy(policy_row), facts, rng)
    try:
        with session.begin_nested():
            order = Order(
                external_id=data.external_id,
                payload_hash=data.payload_hash(),
                source=source,
                placed_at=data.placed_at,
                amount_minor=data.amount_minor,
                currency=data.currency,
                customer_name=data.customer_name,
                customer_email=data.customer_email,
                billing_address=data.billing_address,
                shipping_address=data.shipping_address,
                card_brand=data.card_brand,
                card_last4=data.card_last4,
                cardholder_name=data.cardholder_name,
                created_at=now,
            )
            session.add(order)
            session.add(
                SamplingDecision(
                    order=order,
                    policy_id=policy_row.id,
                    flagged=decision.flagged,
                    reason=decision.reason,
                    rules_matched=list(decision.rules_matched),
                    draw=decision.draw,
                    rate_bp=decision.rate_bp,
                    created_at=now,
                )
            )
            session.flush()
    except IntegrityError:
        # A concurrent request stored the same external id first: answer as a resend.
        found = _existing(session, data)
        if found is None:
            raise
        return found
    record_event(
        session,
        "order.received",
        actor_type="api" if source == "api" else "cli",
        actor_id=actor_id,
        target_type="order",
        target_id=order.external_id,
        details={"flagged": decision.flagged, "reason": decision.reason,
                 "policy_version": decision.policy_version},
        now=now,
    )  # fmt: skip
    if decision.flagged:
        open_case(session, order, decision.reason, now)
    return IntakeResult(order, created=True)
