"""Outboxes for customer emails and shop webhooks: written in the caller's transaction, so a
crash never loses a message; delivered later by the worker with retries (verifier.notify.mail,
verifier.notify.webhooks, `verifier worker`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from verifier.core.endpoints import event_targets
from verifier.models import OutboxEmail, WebhookEvent

log = logging.getLogger(__name__)


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
) -> list[WebhookEvent]:
    """Queue an event once per endpoint that takes its type (core.endpoints.event_targets).

    Each row has its own event id, which makes redelivery to that endpoint idempotent. With no
    endpoint configured it is one row for the VERIFIER_WEBHOOK_URL default; with endpoints but
    none enabled for this type, nothing is queued.
    """
    return [
        queue_webhook_to(session, endpoint_id, event_type, data, now=now)
        for endpoint_id in event_targets(session, event_type)
    ]


def queue_webhook_to(
    session: Session,
    endpoint_id: int | None,
    event_type: str,
    data: dict[str, Any],
    *,
    now: datetime,
) -> WebhookEvent:
    """Add one webhook event for one endpoint (None: the bootstrap default), whatever its filter."""
    event = WebhookEvent(
        event_type=event_type,
        endpoint_id=endpoint_id,
        payload={},
        created_at=now,
        next_attempt_at=now,
    )
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


@contextmanager
def renewing_claims(
    session_factory: Callable[[], Session],
    model: type[OutboxEmail | WebhookEvent],
    claims: Sequence[tuple[int, int]],
    *,
    started: datetime,
    lease: timedelta,
) -> Iterator[None]:
    """Keep claimed rows leased while the block works on them, in a thread of its own.

    `claims` are (row id, attempt). Every third of `lease` the rows still `sending` with that
    attempt get `next_attempt_at` one lease ahead of the pass's clock (`started` plus the time
    gone). Leases can then be short: a worker killed mid-batch stops renewing, and its rows
    are free for another worker one lease later, not after the longest batch could take.
    """
    stop = threading.Event()
    began = time.monotonic()

    def renew() -> None:
        while not stop.wait(lease.total_seconds() / 3):
            until = started + timedelta(seconds=time.monotonic() - began) + lease
            try:
                with session_factory() as session:
                    for row_id, attempt in claims:
                        session.execute(
                            update(model)
                            .where(model.id == row_id, model.status == "sending",
                                   model.attempts == attempt)
                            .values(next_attempt_at=until)
                        )  # fmt: skip
                    session.commit()
            except Exception:  # a missed renewal only shortens the lease; never stop sending
                log.warning("could not renew the leases of %s claimed rows", len(claims))

    thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
