"""Builders for statistics tests: orders with their sampling decision and, when flagged, a case."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from verifier.core.policies import current_policy
from verifier.core.sampling import REASON_NOT_SELECTED, REASON_REPEAT_EXEMPT
from verifier.models import Order, SamplingDecision, VerificationCase

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
_numbers = itertools.count(1)


def address(country: str = "GB") -> dict:
    return {"line1": "1 High Street", "city": "Town", "postcode": "AB1 2CD", "country": country}


def add_order(
    session: Session,
    *,
    at: datetime,
    reason: str = REASON_NOT_SELECTED,
    draw: int = 9_000,
    rate_bp: int = 500,
    status: str | None = None,
    amount_minor: int = 5_000,
    billing: str = "GB",
    shipping: str = "GB",
    customer_name: str = "Alice Meyer",
    cardholder_name: str = "Alice Meyer",
    email: str | None = None,
    last4: str = "4242",
    submitted_at: datetime | None = None,
    decided_at: datetime | None = None,
    decided_by_id: int | None = None,
    resubmissions: int = 0,
) -> Order:
    """One order received at `at`; `status` opens a case (flagged orders need one)."""
    number = next(_numbers)
    order = Order(
        external_id=f"S-{number}",
        payload_hash=f"{number:064d}",
        source="api",
        placed_at=at,
        amount_minor=amount_minor,
        currency="EUR",
        customer_name=customer_name,
        customer_email=email or f"customer{number}@example.com",
        billing_address=address(billing),
        shipping_address=address(shipping),
        card_brand="visa",
        card_last4=last4,
        cardholder_name=cardholder_name,
        created_at=at,
    )
    flagged = reason not in (REASON_NOT_SELECTED, REASON_REPEAT_EXEMPT)
    session.add(order)
    session.add(
        SamplingDecision(
            order=order,
            policy_id=current_policy(session).id,
            flagged=flagged,
            reason=reason,
            rules_matched=[] if reason in ("random", REASON_NOT_SELECTED) else [reason],
            draw=draw,
            rate_bp=rate_bp,
            created_at=at,
        )
    )
    if status is not None:
        session.add(
            VerificationCase(
                order=order,
                status=status,
                reason=reason,
                created_at=at,
                updated_at=decided_at or submitted_at or at,
                submitted_at=submitted_at,
                decided_at=decided_at,
                decided_by_id=decided_by_id,
                resubmission_count=resubmissions,
            )
        )
    session.flush()
    return order


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
