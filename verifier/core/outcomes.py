"""What the shop learns about an order later (a chargeback, confirmed fraud, a good delivery).

Outcomes are facts reported after the decision, so they are kept as a history: one row per
distinct outcome of an order, never changed. Sending the same outcome again is a no-op that
answers with the stored row (the API's idempotency); a different outcome is added beside the
earlier ones, and the newest one is the order's current outcome. A chargeback after a
"delivered_ok" is therefore both kept and counted: any bad outcome marks the order as bad.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    exists,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.expression import ColumnElement

from verifier.core.audit import record_event
from verifier.core.checks import PAN_RE
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import Base, Order, _in, utcnow

CHARGEBACK = "chargeback"
CONFIRMED_FRAUD = "confirmed_fraud"
DELIVERED_OK = "delivered_ok"
OUTCOMES = (CHARGEBACK, CONFIRMED_FRAUD, DELIVERED_OK)
# Outcomes that say the order was fraud: what a review should have caught.
BAD_OUTCOMES = (CHARGEBACK, CONFIRMED_FRAUD)
MAX_NOTE = 500
MAX_AMOUNT_MINOR = 10**13
MAX_FUTURE = timedelta(days=1)
FIELDS = frozenset({"outcome", "occurred_at", "amount", "note"})


class OrderOutcome(Base):
    """One outcome the shop reported for an order; append-only, one row per kind and order."""

    __tablename__ = "order_outcomes"
    __table_args__ = (
        CheckConstraint(f"outcome IN {_in(OUTCOMES)}", name="outcome"),
        CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="amount"),
        UniqueConstraint("order_id", "outcome", name="uq_order_outcomes_order_outcome"),
        # The dashboard and the backtest ask "has this order a bad outcome?" per order.
        Index("ix_order_outcomes_outcome_order", "outcome", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    outcome: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime | None]  # when it happened, as the shop says; else unknown
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)  # e.g. the amount charged back
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))


@dataclass(frozen=True)
class OutcomeInput:
    outcome: str
    occurred_at: datetime | None
    amount_minor: int | None
    note: str | None


@dataclass(frozen=True)
class OutcomeResult:
    row: OrderOutcome
    created: bool


def _amount(value: Any, fields: dict[str, str]) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        fields["amount"] = 'Must be a decimal number such as "129.99".'
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        fields["amount"] = 'Must be a decimal number such as "129.99".'
        return None
    if not amount.is_finite() or amount < 0:
        fields["amount"] = "Must be zero or more."
    elif amount * 100 >= MAX_AMOUNT_MINOR:
        fields["amount"] = "Is too large."
    elif amount != amount.quantize(Decimal("0.01")):
        fields["amount"] = "At most two decimals."
    else:
        return int(amount * 100)
    return None


def _occurred_at(value: Any, now: datetime, fields: dict[str, str]) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        fields["occurred_at"] = "Must be an ISO 8601 date and time string."
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        fields["occurred_at"] = "Must be an ISO 8601 date and time, such as 2026-11-20T14:05:00Z."
        return None
    if when.tzinfo is None:
        fields["occurred_at"] = "Include a timezone, such as Z or +01:00."
        return None
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        fields["occurred_at"] = "Is out of range."
        return None
    if when > now + MAX_FUTURE:
        fields["occurred_at"] = "Is in the future."
        return None
    return when


def parse_outcome(payload: Any, now: datetime) -> OutcomeInput:
    """Check an outcome body; raises ValidationError naming every field that is wrong."""
    if not isinstance(payload, dict):
        raise ValidationError("The body must be a JSON object.", {"": "Send a JSON object."})
    fields: dict[str, str] = {name: "Unknown field." for name in set(payload) - FIELDS}
    outcome = payload.get("outcome")
    if outcome is None or outcome == "":
        fields["outcome"] = "This field is required."
    elif outcome not in OUTCOMES:
        fields["outcome"] = f"Must be one of: {', '.join(OUTCOMES)}."
    occurred_at = _occurred_at(payload.get("occurred_at"), now, fields)
    amount_minor = _amount(payload.get("amount"), fields)
    note = payload.get("note")
    if note is not None and not isinstance(note, str):
        fields["note"] = "Must be a string."
    elif isinstance(note, str):
        note = note.strip() or None
        if note and len(note) > MAX_NOTE:
            fields["note"] = f"At most {MAX_NOTE} characters."
        elif note and PAN_RE.search(note):
            fields["note"] = "Looks like a card number: never send one."
        elif note and any(ord(c) < 32 and c not in "\n\t" for c in note):
            fields["note"] = "Contains control characters."
    if fields:
        raise ValidationError("The outcome is not valid; see the fields.", fields)
    assert isinstance(outcome, str)
    return OutcomeInput(outcome, occurred_at, amount_minor, note)


def _same(row: OrderOutcome, data: OutcomeInput) -> bool:
    return (row.occurred_at, row.amount_minor, row.note) == (
        data.occurred_at,
        data.amount_minor,
        data.note,
    )


def record_outcome(
    session: Session,
    external_id: str,
    data: OutcomeInput,
    *,
    api_key_id: int | None,
    now: datetime,
) -> OutcomeResult:
    """Record an outcome for an order (audited); the same outcome again returns the stored row.

    Raises NotFoundError for an unknown order, ConflictError when this outcome was already
    reported with other details (outcomes are facts: they are never edited). Flushes only.
    """
    order_id = session.scalar(select(Order.id).where(Order.external_id == external_id))
    if order_id is None:
        raise NotFoundError(f"No order with external_id {external_id!r}.")
    query = select(OrderOutcome).where(
        OrderOutcome.order_id == order_id, OrderOutcome.outcome == data.outcome
    )
    existing = session.scalar(query)
    if existing is None:
        row = OrderOutcome(
            order_id=order_id,
            outcome=data.outcome,
            occurred_at=data.occurred_at,
            amount_minor=data.amount_minor,
            note=data.note,
            recorded_at=now,
            api_key_id=api_key_id,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # The same outcome arrived twice at once: the other request stored it first.
            existing = session.scalar(query)
            assert existing is not None  # its insert is what made ours fail
        else:
            record_event(
                session,
                "order.outcome_recorded",
                actor_type="api" if api_key_id is not None else "cli",
                actor_id=api_key_id,
                target_type="order",
                target_id=external_id,
                details={
                    "outcome": data.outcome,
                    "occurred_at": data.occurred_at.isoformat() if data.occurred_at else None,
                    "amount_minor": data.amount_minor,
                    "has_note": data.note is not None,
                },
                now=now,
            )
            return OutcomeResult(row, created=True)
    if not _same(existing, data):
        raise ConflictError(
            f"Order {external_id!r} already has the outcome {data.outcome!r} with other "
            "details (recorded " + existing.recorded_at.isoformat() + "). Outcomes are kept "
            "as reported and never edited.",
            code="outcome_conflict",
        )
    return OutcomeResult(existing, created=False)


def order_outcomes(session: Session, order_id: int) -> list[OrderOutcome]:
    """Every outcome of an order, oldest first."""
    return list(
        session.scalars(
            select(OrderOutcome)
            .where(OrderOutcome.order_id == order_id)
            .order_by(OrderOutcome.recorded_at, OrderOutcome.id)
        )
    )


def has_bad_outcome(order_id: Any) -> ColumnElement[bool]:
    """SQL: the order (an `orders.id` column or value) has a chargeback or confirmed fraud."""
    return exists().where(OrderOutcome.order_id == order_id, OrderOutcome.outcome.in_(BAD_OUTCOMES))


def outcome_body(
    external_id: str, row: OrderOutcome, history: list[OrderOutcome]
) -> dict[str, Any]:
    """The API's JSON for a recorded outcome, with the order's outcomes so far."""

    def one(r: OrderOutcome) -> dict[str, Any]:
        return {
            "outcome": r.outcome,
            "occurred_at": r.occurred_at.isoformat() if r.occurred_at else None,
            "amount": f"{Decimal(r.amount_minor) / 100:.2f}"
            if r.amount_minor is not None
            else None,
            "note": r.note,
            "recorded_at": r.recorded_at.isoformat(),
        }

    return {
        "external_id": external_id,
        **one(row),
        "current": history[-1].outcome if history else row.outcome,
        "history": [one(r) for r in history],
    }
