"""The admin delivery log: webhook events newest first (one page, by status or order number),
each with its attempts and endpoint, and the state of the customer email outbox."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifier.core.endpoints import WebhookEndpoint
from verifier.errors import NotFoundError
from verifier.models import OutboxEmail, WebhookDelivery, WebhookEvent
from verifier.notify.mail import count_emails_by_status, failed_emails


def count_events_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
    ).all()
    return {status: count for status, count in rows}


def get_event_with_deliveries(
    session: Session, event_id: str
) -> tuple[WebhookEvent, list[WebhookDelivery]]:
    """One event and all its delivery attempts, newest first; raises NotFoundError."""
    event = session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))
    if event is None:
        raise NotFoundError("There is no such webhook event.")
    deliveries = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.event_id == event.id)
        .order_by(WebhookDelivery.attempted_at.desc(), WebhookDelivery.id.desc())
    ).all()
    return event, list(deliveries)


@dataclass(frozen=True)
class DeliveryLog:
    """What the admin delivery page shows: webhook events and the email outbox's state."""

    events: list[WebhookEvent]
    endpoints: dict[int, WebhookEndpoint]  # every endpoint an event on the page names
    webhook_counts: dict[str, int]
    older_before_id: int | None
    email_counts: dict[str, int]
    failed_emails: list[OutboxEmail]


def order_of(event: WebhookEvent) -> str | None:
    """The shop's order number (external id) an event is about, if any."""
    data = (event.payload or {}).get("data") or {}
    value = data.get("order_external_id") if isinstance(data, dict) else None
    return str(value) if value else None


def endpoints_by_id(session: Session, ids: set[int]) -> dict[int, WebhookEndpoint]:
    """The endpoints (deleted ones too) with these ids."""
    if not ids:
        return {}
    rows = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids)))
    return {e.id: e for e in rows}


def delivery_log(
    session: Session,
    *,
    status: str | None = None,
    order: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> DeliveryLog:
    """Newest webhook events first (one page, optionally of one status or one order number),
    with their endpoints, plus email counts."""
    query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit + 1)
    if status:
        query = query.where(WebhookEvent.status == status)
    if order:
        order_id = WebhookEvent.payload[("data", "order_external_id")].as_string()
        query = query.where(order_id == order)
    if before_id:
        query = query.where(WebhookEvent.id < before_id)
    events = list(session.scalars(query))
    older = events[limit - 1].id if len(events) > limit else None
    return DeliveryLog(
        events=events[:limit],
        endpoints=endpoints_by_id(session, {e.endpoint_id for e in events if e.endpoint_id}),
        webhook_counts=count_events_by_status(session),
        older_before_id=older,
        email_counts=count_emails_by_status(session),
        failed_emails=failed_emails(session),
    )
