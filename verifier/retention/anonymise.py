"""Anonymising orders: customer details become placeholders; amounts, decisions, dates stay."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from verifier.models import LINK_KEY_COLUMNS, OPEN_CASE_STATES, Order, OutboxEmail, VerificationCase

PLACEHOLDER = "[anonymised]"
# RFC 2606 reserves .invalid: mail to it can never reach anyone.
PLACEHOLDER_EMAIL = "anonymised@anonymised.invalid"
PLACEHOLDER_LAST4 = "****"


def placeholder_address(address: dict[str, Any] | None) -> dict[str, Any]:
    """An address with every line replaced; the country stays for statistics."""
    country = (address or {}).get("country")
    return {"line1": PLACEHOLDER, "city": PLACEHOLDER, **({"country": country} if country else {})}


def anonymise_orders(session: Session, order_ids: Iterable[int], now: datetime) -> int:
    """Replace the personal details of the given orders (and their emails); returns how many.

    Conditional on ``anonymised_at IS NULL``, so two processes never count an order twice.
    Flushes only.
    """
    count = 0
    for order in session.scalars(
        select(Order).where(Order.id.in_(list(order_ids))).order_by(Order.id)
    ).all():
        result = session.execute(
            update(Order)
            .where(Order.id == order.id, Order.anonymised_at.is_(None))
            .values(
                customer_name=PLACEHOLDER,
                customer_email=PLACEHOLDER_EMAIL,
                cardholder_name=PLACEHOLDER,
                card_last4=PLACEHOLDER_LAST4,
                billing_address=placeholder_address(order.billing_address),
                shipping_address=placeholder_address(order.shipping_address),
                # The old hash could confirm a guessed payload; a resend now answers 409.
                payload_hash=hashlib.sha256(f"anonymised:{order.external_id}".encode()).hexdigest(),
                anonymised_at=now,
                # An anonymised order links to nothing: every key of the linked history goes.
                customer_phone=None,
                **dict.fromkeys(LINK_KEY_COLUMNS),
            )
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount:
            count += 1
            _anonymise_case_text(session, order.id)
    session.flush()
    # The ORM copies loaded before the UPDATE still hold the old values.
    session.expire_all()
    return count


def _anonymise_case_text(session: Session, order_id: int) -> None:
    case_id = session.scalar(
        select(VerificationCase.id).where(VerificationCase.order_id == order_id)
    )
    if case_id is None:
        return
    session.execute(
        update(VerificationCase)
        .where(VerificationCase.id == case_id, VerificationCase.declined_reason.is_not(None))
        .values(declined_reason=PLACEHOLDER)
    )
    # Emails carry the name and address in their bodies; unsent ones are cancelled.
    session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.case_id == case_id, OutboxEmail.status == "pending")
        .values(status="cancelled")
    )
    session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.case_id == case_id)
        .values(to_address=PLACEHOLDER_EMAIL, text_body=PLACEHOLDER, html_body=PLACEHOLDER)
    )


def _due_for_anonymising(now: datetime, after_days: int) -> Select[int]:
    cutoff = now - timedelta(days=after_days)
    return (
        select(Order.id)
        .outerjoin(VerificationCase, VerificationCase.order_id == Order.id)
        .where(
            Order.anonymised_at.is_(None),
            Order.created_at <= cutoff,
            or_(
                VerificationCase.id.is_(None),
                and_(
                    VerificationCase.status.not_in(OPEN_CASE_STATES),
                    VerificationCase.legal_hold_at.is_(None),
                ),
            ),
        )
    )


def orders_due_for_anonymising(
    session: Session, now: datetime, after_days: int | None, *, limit: int = 500
) -> list[int]:
    """Ids of orders older than ``after_days`` not yet anonymised, with no open or held case."""
    if after_days is None:
        return []
    return list(
        session.scalars(_due_for_anonymising(now, after_days).order_by(Order.id).limit(limit))
    )


def count_due_for_anonymising(session: Session, now: datetime, after_days: int | None) -> int:
    """How many orders the next purge would anonymise with ``after_days`` (one COUNT)."""
    if after_days is None:
        return 0
    due = _due_for_anonymising(now, after_days).subquery()
    return session.scalar(select(func.count()).select_from(due)) or 0
