"""Append-only audit events: who did what to which record, never secrets or document bytes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

# Imported for its commit hook, which links every new event into the hash chain.
import verifier.core.audit_chain  # noqa: F401
from verifier.models import AuditEvent, StaffUser

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


PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilters:
    """What the audit page narrows to; empty values do not filter."""

    action_prefix: str = ""
    actor_type: str = ""
    actor: str = ""  # a staff email, or an actor id exactly as recorded ("cli", "7", ...)
    target_type: str = ""
    target_id: str = ""
    since: datetime | None = None
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class AuditPage:
    """One page of events, newest first, with the keys of the neighbouring pages."""

    events: list[AuditEvent]
    older_before_id: int | None  # pass as before_id for the next older page; None: no more
    newer_after_id: int | None  # pass as after_id for the next newer page; None: newest page
    staff_emails: dict[str, str]  # staff id (as stored in actor_id/target_id) -> email


def _filtered(session: Session, filters: AuditFilters) -> Select[AuditEvent]:
    query = select(AuditEvent)
    if filters.action_prefix:
        query = query.where(AuditEvent.action.startswith(filters.action_prefix, autoescape=True))
    if filters.actor_type:
        query = query.where(AuditEvent.actor_type == filters.actor_type)
    if filters.actor:
        staff_id = None
        if "@" in filters.actor:
            staff_id = session.scalar(
                select(StaffUser.id).where(StaffUser.email == filters.actor.strip().lower())
            )
        if staff_id is not None:
            query = query.where(
                AuditEvent.actor_type == "staff", AuditEvent.actor_id == str(staff_id)
            )
        else:
            query = query.where(AuditEvent.actor_id == filters.actor.strip())
    if filters.target_type:
        query = query.where(AuditEvent.target_type == filters.target_type)
    if filters.target_id:
        query = query.where(AuditEvent.target_id == filters.target_id)
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.at < filters.until)
    return query


def list_events(
    session: Session,
    filters: AuditFilters,
    *,
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> AuditPage:
    """A page of events matching `filters`, newest first, keyset-paginated by id.

    `before_id` gives the page of events older than it; `after_id` the page just newer than it.
    """
    filtered = _filtered(session, filters)
    query = filtered
    if after_id is not None:
        rows = list(
            session.scalars(
                query.where(AuditEvent.id > after_id).order_by(AuditEvent.id.asc()).limit(limit)
            )
        )
        rows.reverse()
    else:
        if before_id is not None:
            query = query.where(AuditEvent.id < before_id)
        rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))
    older = newer = None
    if rows:
        base = filtered.with_only_columns(AuditEvent.id).limit(1)
        if session.scalar(base.where(AuditEvent.id < rows[-1].id)) is not None:
            older = rows[-1].id
        if session.scalar(base.where(AuditEvent.id > rows[0].id)) is not None:
            newer = rows[0].id
    return AuditPage(rows, older, newer, _staff_emails(session, rows))


def _staff_emails(session: Session, events: list[AuditEvent]) -> dict[str, str]:
    ids = {e.actor_id for e in events if e.actor_type == "staff" and e.actor_id}
    ids |= {e.target_id for e in events if e.target_type == "staff" and e.target_id}
    numeric = [int(i) for i in ids if i.isdigit()]
    if not numeric:
        return {}
    rows = session.execute(select(StaffUser.id, StaffUser.email).where(StaffUser.id.in_(numeric)))
    return {str(user_id): email for user_id, email in rows}
