"""Helpers for the staff sign-in and admin tests: extra apps, audit reads, session clocks."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import make_environ
from verifier import create_app
from verifier.models import AuditEvent, StaffUser


def make_app(tmp_path, database_url, environ: dict | None = None, **config):
    """Another app on the test database (use it beside the `app` fixture, which empties it)."""
    (tmp_path / "uploads").mkdir(exist_ok=True)
    return create_app(
        {
            "ENVIRON": make_environ(tmp_path, database_url, **(environ or {})),
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            **config,
        }
    )


def actions(db: Session, prefix: str = "staff.") -> list[str]:
    """The audit actions recorded so far (a fresh read), oldest first."""
    db.rollback()
    query = select(AuditEvent.action).where(AuditEvent.action.startswith(prefix))
    return list(db.scalars(query.order_by(AuditEvent.id)))


def events(db: Session, action: str) -> list[AuditEvent]:
    db.rollback()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(db.scalars(query))


def fresh_user(db: Session, user_id: int) -> StaffUser:
    db.rollback()
    return db.get(StaffUser, user_id, populate_existing=True)


def shift_session_clock(client, key: str, seconds: int) -> None:
    """Move one of the session's timestamps (`staff_seen_at`, `staff_auth_at`) into the past."""
    with client.session_transaction() as flask_session:
        flask_session[key] = int(time.time()) - seconds
