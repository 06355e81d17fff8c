"""Upload links: 256-bit tokens stored as SHA-256, expiring, revocable, scoped to one case."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, selectinload

from verifier.core.audit import record_event
from verifier.core.brand import load_brand
from verifier.core.cases import change_status
from verifier.core.outbox import queue_email
from verifier.core.settings import Settings
from verifier.models import (
    AWAITING_DOCUMENTS,
    EXPIRED,
    RESUBMISSION_REQUESTED,
    Order,
    UploadLink,
    VerificationCase,
)
from verifier.portal.customer_mail import PortalContext, render_customer_email
from verifier.vault.secretbox import EMAIL_BODY_PURPOSE, email_body_binding, seal

TOKEN_BYTES = 32  # 256 bits
LINK_PATH = "/u/"
# A phone handed on from a desktop via QR code gets a link that lives this long at most.
HANDOFF_LIFETIME = timedelta(hours=1)

VALID = "valid"
EXPIRED_LINK = "expired"
INVALID = "invalid"


@dataclass(frozen=True)
class Invitation:
    token: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class Resolution:
    """What a presented token leads to; unknown, forged and revoked tokens are all INVALID."""

    outcome: str
    link: UploadLink | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{LINK_PATH}{token}"


def create_link(
    session: Session, case: VerificationCase, *, expires_at: datetime, now: datetime
) -> str:
    """Add a link for the case and return its token; only the token's hash is stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        UploadLink(case=case, token_hash=hash_token(token), created_at=now, expires_at=expires_at)
    )
    session.flush()
    return token


def active_expiry(session: Session, case_id: int) -> datetime | None:
    """When the case's last unrevoked link expires (None when it has none)."""
    return session.scalar(
        select(func.max(UploadLink.expires_at)).where(
            UploadLink.case_id == case_id, UploadLink.revoked_at.is_(None)
        )
    )


def resolve_token(session: Session, token: str, now: datetime) -> Resolution:
    """Look a presented token up by its hash; changes nothing (mail scanners open links too)."""
    if not token or len(token) > 100:
        return Resolution(INVALID)
    link = session.scalar(
        select(UploadLink)
        .where(UploadLink.token_hash == hash_token(token))
        .options(selectinload(UploadLink.case).selectinload(VerificationCase.order))
    )
    if link is None or link.revoked_at is not None:
        return Resolution(INVALID)
    if link.expires_at <= now and link.case.status in (AWAITING_DOCUMENTS, RESUBMISSION_REQUESTED):
        return Resolution(EXPIRED_LINK, link)
    return Resolution(VALID, link)


def revoke_links(session: Session, case_id: int, now: datetime) -> int:
    """Revoke every unrevoked link of a case; returns how many."""
    result = session.execute(
        update(UploadLink)
        .where(UploadLink.case_id == case_id, UploadLink.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return cast(CursorResult[Any], result).rowcount


def invite_customer(
    session: Session,
    case: VerificationCase,
    *,
    portal: PortalContext,
    settings: Settings,
    now: datetime,
    kind: str = "invitation",
) -> Invitation:
    """Open a link for the case and queue the email that carries it (same transaction)."""
    expires_at = now + timedelta(days=settings.link_lifetime_days)
    token = create_link(session, case, expires_at=expires_at, now=now)
    invitation = Invitation(token, link_url(portal.base_url, token), expires_at)
    _queue_link_email(session, case, invitation, portal=portal, settings=settings, now=now,
                      kind=kind)  # fmt: skip
    record_event(
        session, "link.created", actor_type="system", target_type="case", target_id=case.id,
        details={"kind": kind, "expires_at": expires_at.isoformat()}, now=now,
    )  # fmt: skip
    return invitation


def reopen_link(
    session: Session,
    case: VerificationCase,
    *,
    portal: PortalContext,
    settings: Settings,
    now: datetime,
) -> Invitation:
    """Revoke the case's links and email a fresh one with a new expiry (resubmission)."""
    revoke_links(session, case.id, now)
    return invite_customer(
        session, case, portal=portal, settings=settings, now=now, kind="resubmission"
    )


def extend_links(
    session: Session, case: VerificationCase, *, settings: Settings, now: datetime
) -> datetime:
    """Give the case's unrevoked links a new expiry; the emailed links keep working."""
    expires_at = now + timedelta(days=settings.link_lifetime_days)
    session.execute(
        update(UploadLink)
        .where(UploadLink.case_id == case.id, UploadLink.revoked_at.is_(None))
        .values(expires_at=expires_at)
    )
    record_event(
        session, "link.extended", actor_type="system", target_type="case", target_id=case.id,
        details={"expires_at": expires_at.isoformat()}, now=now,
    )  # fmt: skip
    return expires_at


def create_handoff_link(
    session: Session, case: VerificationCase, *, now: datetime
) -> tuple[str, datetime]:
    """A short-lived extra link for the same case, shown as a QR code to continue on a phone."""
    expires_at = min(active_expiry(session, case.id) or now, now + HANDOFF_LIFETIME)
    return create_link(session, case, expires_at=expires_at, now=now), expires_at


def _queue_link_email(
    session: Session,
    case: VerificationCase,
    invitation: Invitation,
    *,
    portal: PortalContext,
    settings: Settings,
    now: datetime,
    kind: str,
) -> None:
    email = render_customer_email(
        kind,
        case=case,
        order=case.order,
        url=invitation.url,
        expires_at=invitation.expires_at,
        portal=portal,
        settings=settings,
        brand=load_brand(session, portal.shop_name),
    )
    # The bodies hold the raw link token: sealed until the worker sends them.
    binding = email_body_binding(case.id, kind)
    text, html = (seal(portal.keyring, EMAIL_BODY_PURPOSE, body, binding)
                  for body in (email.text, email.html))  # fmt: skip
    queue_email(
        session, kind=kind, to_address=case.order.customer_email, subject=email.subject,
        text_body=text, html_body=html, now=now, case_id=case.id,
    )  # fmt: skip


def send_due_reminders(
    session: Session, *, portal: PortalContext, settings: Settings, now: datetime
) -> int:
    """Email a reminder, with a link of its own, to customers whose link expires soon.

    Only the hash of the first link is stored, so a reminder carries a new link with the same
    expiry; the first one keeps working. Returns how many reminders were queued.
    """
    if settings.reminder_before_hours <= 0:
        return 0
    horizon = now + timedelta(hours=settings.reminder_before_hours)
    due = session.scalars(
        select(UploadLink)
        .join(UploadLink.case)
        .where(
            UploadLink.revoked_at.is_(None),
            UploadLink.reminder_sent_at.is_(None),
            UploadLink.expires_at > now,
            UploadLink.expires_at <= horizon,
            VerificationCase.status.in_((AWAITING_DOCUMENTS, RESUBMISSION_REQUESTED)),
        )
        .options(selectinload(UploadLink.case).selectinload(VerificationCase.order))
        .order_by(UploadLink.id)
        .limit(200)
        # Several workers may run this at once: each link is reminded by one of them.
        .with_for_update(skip_locked=True, of=UploadLink)
    ).all()
    sent_cases: set[int] = set()
    for link in due:
        link.reminder_sent_at = now
        if link.case_id in sent_cases:
            continue
        sent_cases.add(link.case_id)
        token = create_link(session, link.case, expires_at=link.expires_at, now=now)
        # The reminder's own link must not trigger a reminder of its own.
        session.execute(
            update(UploadLink)
            .where(UploadLink.token_hash == hash_token(token))
            .values(reminder_sent_at=now)
        )
        invitation = Invitation(token, link_url(portal.base_url, token), link.expires_at)
        _queue_link_email(session, link.case, invitation, portal=portal, settings=settings,
                          now=now, kind="reminder")  # fmt: skip
    return len(sent_cases)


def expire_overdue_cases(session: Session, *, now: datetime) -> int:
    """Move cases still waiting for documents whose every link has expired to `expired`."""
    latest = (
        select(UploadLink.case_id, func.max(UploadLink.expires_at).label("until"))
        .where(UploadLink.revoked_at.is_(None))
        .group_by(UploadLink.case_id)
        .subquery()
    )
    cases = session.scalars(
        select(VerificationCase)
        .join(latest, latest.c.case_id == VerificationCase.id)
        .where(
            VerificationCase.status.in_((AWAITING_DOCUMENTS, RESUBMISSION_REQUESTED)),
            latest.c.until <= now,
        )
        .options(selectinload(VerificationCase.order).selectinload(Order.decision))
        .order_by(VerificationCase.id)
        .limit(500)
        .with_for_update(skip_locked=True, of=VerificationCase)
    ).all()
    for case in cases:
        change_status(session, case, EXPIRED, actor_type="system", actor_id=None, now=now)
    return len(cases)
