"""Outboxes for customer emails and shop webhooks: written in the caller's transaction, so a
crash never loses a message; delivered later by the worker with retries (verifier.notify.mail,
verifier.notify.webhooks, `verifier worker`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from verifier.models import OutboxEmail, WebhookEvent


def queue_email(
    session: Session,
    *,
    kind: str,
    to_address: str,
    subject: str,
    text_body: str,
    html_body: str,
    now: datetime,
    case_id: int | None = None,
) -> OutboxEmail:
    """Add an email to the outbox; it is sent after the caller's transaction commits."""
    email = OutboxEmail(
        case_id=case_id,
        kind=kind,
        to_address=to_address,
        subject=subject,
        text_body=text_body,
        html_body=html_body,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(email)
    return email


def queue_webhook(
    session: Session, event_type: str, data: dict[str, Any], *, now: datetime
) -> WebhookEvent:
    """Add a webhook event for the shop; its event id makes redelivery idempotent."""
    event = WebhookEvent(event_type=event_type, payload={}, created_at=now, next_attempt_at=now)
    session.add(event)
    session.flush()
    event.payload = {
        "id": event.event_id,
        "type": event_type,
        "created_at": now.isoformat(),
        "data": data,
    }
    return event


def record_claimed_outcome(
    session: Session,
    model: type[OutboxEmail | WebhookEvent],
    row_id: int,
    attempt: int,
    values: dict[str, Any],
) -> bool:
    """Write a delivery's outcome only while the row is still this worker's claim.

    A claim is the row in status `sending` with the attempt number the worker took; a worker
    whose claim expired and was taken over by another must not overwrite that one's outcome.
    """
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.status == "sending", model.attempts == attempt)
        .values(**values)
    )
    return cast(CursorResult[Any], result).rowcount == 1
