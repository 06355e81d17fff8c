"""Append-only audit events: who did what to which record, never secrets or document bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.models import AuditEvent

# Keys that must never reach an event, whatever a caller passes in `details`.
FORBIDDEN_KEYS = frozenset({"token", "password", "secret", "api_key", "key", "data", "bytes"})


def record_event(
    session: Session,
    action: str,
    *,
    actor_type: str,
    actor_id: str | int | None = None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Add an audit event to the session (flushed with the caller's transaction)."""
    details = dict(details or {})
    bad = FORBIDDEN_KEYS.intersection(k.lower() for k in details)
    if bad:
        raise ValueError(f"audit details may not carry {sorted(bad)}")
    event = AuditEvent(
        action=action,
        actor_type=actor_type,
        actor_id=None if actor_id is None else str(actor_id),
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details,
    )
    if now is not None:
        event.at = now
    session.add(event)
    return event
