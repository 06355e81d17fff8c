"""Order intake: store an order once, draw its sample once, open a case when flagged."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from verifier.core.audit import record_event
from verifier.core.audit_chain import append_event
from verifier.core.cases import open_case
from verifier.core.linkkeys import LinkKeys, link_keys
from verifier.core.policies import PolicyInForce, current_policy
from verifier.core.prepared import Prepared
from verifier.core.sampling import OrderFacts, draw_sample
from verifier.core.velocity import key_values, velocity_facts
from verifier.errors import ConflictError
from verifier.intake.payload import OrderInput
from verifier.models import APPROVED, CLEARED, Order, SamplingDecision, VerificationCase
from verifier.portal.customer_mail import PortalContext
from verifier.portal.links import Invitation, invite_customer


@dataclass(frozen=True)
class IntakeResult:
    order: Order
    created: bool
    # The customer's link, known only when this call opened the case (its token is not stored).
    invitation: Invitation | None = None
    # The version that decided a new order (a stored one's answer reads it from its decision).
    policy_version: int | None = None


def get_order(session: Session, external_id: str) -> Order | None:
    return session.scalar(
        select(Order)
        .where(Order.external_id == external_id)
        .options(selectinload(Order.decision), selectinload(Order.case))
    )


def order_status(order: Order) -> str:
    """The lifecycle status: `cleared` when not flagged, otherwise the case's state."""
    return order.case.status if order.case is not None else CLEARED


def approved_recently(
    session: Session, *, email: str, card_last4: str, since: datetime, before: datetime
) -> bool:
    """Whether this customer (same email and card last four) had a case approved in the window."""
    found = session.scalar(
        select(VerificationCase.id)
        .join(Order, VerificationCase.order_id == Order.id)
        .where(
            Order.customer_email == email,
            Order.card_last4 == card_last4,
            VerificationCase.status == APPROVED,
            VerificationCase.decided_at >= since,
            VerificationCase.decided_at <= before,
        )
        .limit(1)
    )
    return found is not None


def order_facts(data: OrderInput, velocity: dict[tuple[str, int], int]) -> OrderFacts:
    """What the sampler reads of an incoming order, with its looked-up velocity counts."""
    return OrderFacts(
        amount_minor=data.amount_minor,
        billing_country=data.billing_address["country"],
        shipping_country=data.shipping_address["country"],
        customer_name=data.customer_name,
        cardholder_name=data.cardholder_name,
        currency=data.currency,
        customer_email=data.customer_email,
        card_brand=data.card_brand,
        card_last4=data.card_last4,
        billing_address=data.billing_address,
        shipping_address=data.shipping_address,
        velocity=velocity,
    )


def existing_order(session: Session, data: OrderInput) -> IntakeResult:
    """The stored order with `data`'s external id, as a resend's answer; ConflictError when
    its details differ (or it was removed after the INSERT found it)."""
    order = get_order(session, data.external_id)
    if order is None:
        raise ConflictError(f"Order {data.external_id!r} was stored and removed meanwhile.")
    if order.payload_hash != data.payload_hash():
        raise ConflictError(
            f"An order with external_id {data.external_id!r} already exists with different "
            "details. Orders cannot be changed once sent; use a new external_id."
        )
    return IntakeResult(order, created=False)


@dataclass(frozen=True)
class Decided:
    """What intake read and drew for an order before writing it: its link keys, the draw and
    the policy that decided it."""

    keys: LinkKeys
    decision: Any  # verifier.core.sampling.SampleDecision
    policy: PolicyInForce


def decide_order(
    session: Session, data: OrderInput, *, rng: random.Random, now: datetime,
    policy: PolicyInForce | None = None,
) -> Decided:  # fmt: skip
    """Read what the sampler needs (velocity counts, a recent approval) and draw, once.

    Reads only: the API runs it outside the write transaction. `policy` is the policy in force
    when the caller holds it (the API's cache); otherwise it is read here.
    """
    if policy is None:
        policy = PolicyInForce.of(current_policy(session))
    keys = link_keys(
        email=data.customer_email, card_brand=data.card_brand, card_last4=data.card_last4,
        cardholder_name=data.cardholder_name, billing_address=data.billing_address,
        shipping_address=data.shipping_address, phone=data.customer_phone,
    )  # fmt: skip
    velocity = velocity_facts(
        session, policy.sampler, key_values(keys, data.ip_address, data.device_id), now=now
    )
    facts = order_facts(data, velocity)
    exemption_days = policy.settings.repeat_exemption_days
    repeat_exempt = exemption_days is not None and approved_recently(
        session,
        email=data.customer_email,
        card_last4=data.card_last4,
        since=now - timedelta(days=exemption_days),
        before=now,
    )
    decision = draw_sample(policy.sampler, facts, rng, repeat_exempt=repeat_exempt)
    return Decided(keys, decision, policy)


def submit_order(
    session: Session,
    data: OrderInput,
    *,
    source: str,
    rng: random.Random,
    now: datetime,
    portal: PortalContext,
    actor_id: str | None = None,
    policy: PolicyInForce | None = None,
    chain_head: tuple[int, str] | None = None,
) -> IntakeResult:
    """Store a new order with its sampling decision, or return the stored one unchanged.

    A flagged order gets a case, a link and an invitation email in the outbox. Raises
    ConflictError when the external id exists with a different payload. Flushes only.
    A new cleared order costs three statements: the order, its decision and its audit event
    (the decision's trigger counts it in the daily rollup), and one more when a rule counts
    orders by velocity (verifier.core.velocity). With `chain_head` (a hint of the audit
    chain's head) a cleared order goes in by prepared Core statements, its event linked into
    the chain by its own INSERT (`write_cleared`); a flagged one takes the ORM path.
    """
    decided = decide_order(session, data, rng=rng, now=now, policy=policy)
    if chain_head is not None and not decided.decision.flagged:
        return _insert_cleared(session, data, decided, chain_head,
                               source=source, now=now, actor_id=actor_id)  # fmt: skip
    return store_order(session, data, decided, source=source, now=now, portal=portal,
                       actor_id=actor_id)  # fmt: skip


def store_order(
    session: Session, data: OrderInput, decided: Decided, *, source: str, now: datetime,
    portal: PortalContext, actor_id: str | None = None,
) -> IntakeResult:  # fmt: skip
    """The ORM path: the order, its decision and event and, when flagged, its case and
    invitation, flushed in `session`; a resend answers from the stored order."""
    decision, policy = decided.decision, decided.policy
    order = _insert_new_order(session, data, decided.keys, source=source, now=now)
    if order is None:
        # The external id is taken (a resend, or a concurrent request that got there first).
        return existing_order(session, data)
    decision_row = SamplingDecision(
        order_id=order.id,
        policy_id=policy.id,
        flagged=decision.flagged,
        reason=decision.reason,
        rules_matched=list(decision.rules_matched),
        draw=decision.draw,
        rate_bp=decision.rate_bp,
        created_at=now,
    )
    # Both sides of each relationship are known: nothing needs loading to answer.
    set_committed_value(order, "decision", decision_row)
    set_committed_value(order, "case", None)
    set_committed_value(decision_row, "order", order)
    session.add(decision_row)
    record_event(
        session,
        "order.received",
        actor_type=_actor_type(source),
        actor_id=actor_id,
        target_type="order",
        target_id=order.external_id,
        details={"flagged": decision.flagged, "reason": decision.reason,
                 "policy_version": decision.policy_version},
        now=now,
    )  # fmt: skip
    invitation = None
    if decision.flagged:
        case = open_case(session, order, decision.reason, now)
        invitation = invite_customer(
            session, case, portal=portal, settings=policy.settings, now=now
        )
    return IntakeResult(order, created=True, invitation=invitation, policy_version=policy.version)


ORDER_FIELDS = ("external_id", "payload_hash", "source", "placed_at", "amount_minor", "currency",
                "customer_name", "customer_email", "billing_address", "shipping_address",
                "card_brand", "card_last4", "cardholder_name", "created_at", "customer_phone",
                "ip_address", "device_id", "email_key", "card_key", "billing_key",
                "shipping_key", "phone_key", "locale", "timezone")  # fmt: skip


@cache
def _order_insert(dialect: str) -> Any:
    """The order's INSERT ... ON CONFLICT DO NOTHING RETURNING, built once per dialect: its
    values are bound parameters, so each order only binds them (no statement to rebuild)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(Order)
        .values({name: bindparam(name) for name in ORDER_FIELDS})
        .on_conflict_do_nothing(index_elements=[Order.external_id])
        .returning(Order)
    )


def _insert_new_order(
    session: Session, data: OrderInput, keys: LinkKeys, *, source: str, now: datetime
) -> Order | None:
    """INSERT the order unless its external id exists (one statement, no savepoint); the
    stored row, or None when the id was taken."""
    assert session.bind is not None
    statement = _order_insert(session.bind.dialect.name)
    return session.scalars(statement, _order_values(data, keys, source, now)).first()


def _actor_type(source: str) -> str:
    return "cli" if source in ("csv", "demo") else "api"  # connectors too


def _order_values(data: OrderInput, keys: LinkKeys, source: str, now: datetime) -> dict[str, Any]:
    values = {
        "external_id": data.external_id,
        "payload_hash": data.payload_hash(),
        "source": source,
        "placed_at": data.placed_at,
        "amount_minor": data.amount_minor,
        "currency": data.currency,
        "customer_name": data.customer_name,
        "customer_email": data.customer_email,
        "billing_address": data.billing_address,
        "shipping_address": data.shipping_address,
        "card_brand": data.card_brand,
        "card_last4": data.card_last4,
        "cardholder_name": data.cardholder_name,
        "created_at": now,
        "customer_phone": data.customer_phone,
        "ip_address": data.ip_address,
        "device_id": data.device_id,
        "locale": data.locale,
        "timezone": data.timezone,
    }
    # The linked history's keys ride in the same INSERT: no extra statement.
    return values | keys.columns()


def _prepared_inserts(dialect: str) -> tuple[Prepared, Prepared]:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        Prepared(
            insert(Order)
            .values({name: bindparam(name) for name in ORDER_FIELDS})
            .on_conflict_do_nothing(index_elements=[Order.external_id])
            .returning(Order.id)
        ),
        Prepared(
            insert(SamplingDecision).values({name: bindparam(name) for name in DECISION_FIELDS})
        ),
    )


DECISION_FIELDS = ("order_id", "policy_id", "flagged", "reason", "rules_matched", "draw",
                   "rate_bp", "created_at")  # fmt: skip
_PREPARED = {name: _prepared_inserts(name) for name in ("postgresql", "sqlite")}


@dataclass(frozen=True)
class ClearedWrite:
    """A cleared order's three rows, ready to write: the order, its decision (without its
    order id) and its audit event's fields."""

    order: dict[str, Any]
    decision: dict[str, Any]
    event: dict[str, Any]


def cleared_write(
    data: OrderInput, decided: Decided, *, source: str, now: datetime, actor_id: str | None
) -> ClearedWrite:
    decision = decided.decision
    decision_values = {
        "policy_id": decided.policy.id, "flagged": False, "reason": decision.reason,
        "rules_matched": list(decision.rules_matched), "draw": decision.draw,
        "rate_bp": decision.rate_bp, "created_at": now,
    }  # fmt: skip
    event = {"at": now, "actor_type": _actor_type(source), "actor_id": actor_id,
             "action": "order.received", "target_type": "order", "target_id": data.external_id,
             "details": {"flagged": False, "reason": decision.reason,
                         "policy_version": decision.policy_version}}  # fmt: skip
    return ClearedWrite(_order_values(data, decided.keys, source, now), decision_values, event)


def write_cleared(
    conn: Connection, write: ClearedWrite, head: tuple[int, str]
) -> tuple[int | None, tuple[int, str]]:
    """INSERT a cleared order, its decision and its chained audit event on `conn`: three
    prepared statements. Returns the order's id (None when its external id is taken, and
    nothing was written) and the chain's head after it."""
    order_insert, decision_insert = _PREPARED[conn.dialect.name]
    row = order_insert.run(conn, write.order).first()
    if row is None:
        return None, head
    decision_insert.run(conn, {"order_id": row[0], **write.decision})
    linked = append_event(conn, head, **write.event)
    if linked is None:
        raise RuntimeError("the audit chain has no head row")  # the caller checked it has
    return row[0], linked


def cleared_result(write: ClearedWrite, order_id: int, policy_version: int) -> IntakeResult:
    """The answer for a cleared order just written, from what was written: no loading."""
    order = Order(id=order_id, **write.order)
    decision_row = SamplingDecision(id=None, order_id=order_id, **write.decision)
    set_committed_value(order, "decision", decision_row)
    set_committed_value(order, "case", None)
    return IntakeResult(order, created=True, policy_version=policy_version)


def _insert_cleared(
    session: Session, data: OrderInput, decided: Decided, chain_head: tuple[int, str], *,
    source: str, now: datetime, actor_id: str | None,
) -> IntakeResult:  # fmt: skip
    """A cleared order in three prepared statements in the session's transaction.

    Nothing enters the session's unit of work; the answer is built from transient objects
    holding what was written. A resend or a clash answers from the stored order as before.
    """
    write = cleared_write(data, decided, source=source, now=now, actor_id=actor_id)
    order_id, _head = write_cleared(session.connection(), write, chain_head)
    if order_id is None:
        return existing_order(session, data)
    return cleared_result(write, order_id, decided.policy.version)
