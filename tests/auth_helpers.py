"""Helpers for the staff sign-in and admin tests: extra apps, audit reads, session clocks."""

from __future__ import annotations

import re
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


def csrf_token(page: str) -> str:
    """The CSRF token a page's form carries."""
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "the page has no csrf_token field"
    return found.group(1)


def csrf_admin_client(tmp_path, database_url, admin: StaffUser):
    """An app with CSRF protection on (as in production) and a client signed in as ADMIN.

    Returns (app, client); dispose of `app.extensions["verifier.engine"]` when done.
    """
    root = tmp_path / "csrf-on"
    (root / "uploads").mkdir(parents=True)
    app = create_app({"ENVIRON": make_environ(root, database_url), "TESTING": True})
    client = app.test_client()
    token = csrf_token(client.get("/staff/login").get_data(as_text=True))
    signed_in = client.post("/staff/login", data={"email": admin.email, "csrf_token": token,
                                                   "password": "admin-password-123"})  # fmt: skip
    assert signed_in.status_code == 302
    return app, client
