"""Receipts to the customer: the documents arrived, and (when the shop turns it on) the outcome.

Neither carries a link or personal details: only the shop, the order reference and what
happened, so a forwarded or intercepted receipt gives nothing away.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from verifier.core.brand import load_brand
from verifier.core.outbox import queue_email
from verifier.core.settings import settings_from
from verifier.models import APPROVED, REJECTED, OutboxEmail, SamplingPolicy, VerificationCase
from verifier.portal.customer_mail import PortalContext, render_receipt
from verifier.vault.secretbox import EMAIL_BODY_PURPOSE, email_body_binding, seal

ARRIVAL = "receipt"
OUTCOME = "outcome"
# Policy versions looked back over to find since when the outcome email has been on.
VERSIONS_LOOKED_AT = 200
BATCH = 200


def queue_receipt(
    session: Session, case: VerificationCase, kind: str, *, portal: PortalContext, now: datetime
) -> OutboxEmail:
    """Queue the case's receipt of `kind` (ARRIVAL or OUTCOME) in the caller's transaction."""
    brand = load_brand(session, portal.shop_name)
    email = render_receipt(kind, case=case, order=case.order, portal=portal, brand=brand)
    binding = email_body_binding(case.id, kind)
    text, html = (seal(portal.keyring, EMAIL_BODY_PURPOSE, body, binding)
                  for body in (email.text, email.html))  # fmt: skip
    return queue_email(
        session, kind=kind, to_address=case.order.customer_email, subject=email.subject,
        text_body=text, html_body=html, now=now, case_id=case.id,
    )  # fmt: skip


def outcome_emails_since(session: Session) -> datetime | None:
    """When the outcome email was turned on and has stayed on since (None: it is off)."""
    since = None
    versions = session.scalars(
        select(SamplingPolicy).order_by(SamplingPolicy.version.desc()).limit(VERSIONS_LOOKED_AT)
    )
    for version in versions:
        if not settings_from(version.settings).outcome_email:
            break
        since = version.created_at
    return since


def send_outcome_receipts(session: Session, *, portal: PortalContext, now: datetime) -> int:
    """Queue the outcome email for cases approved or rejected while the setting was on.

    Safe with several workers: the cases are locked (skipping those another holds) and the
    outbox checked again after the lock. Returns how many were queued.
    """
    since = outcome_emails_since(session)
    if since is None:
        return 0
    already = select(OutboxEmail.case_id).where(
        OutboxEmail.kind == OUTCOME, OutboxEmail.case_id == VerificationCase.id
    )
    cases = session.scalars(
        select(VerificationCase)
        .where(
            VerificationCase.status.in_((APPROVED, REJECTED)),
            VerificationCase.decided_at >= since,
            ~already.exists(),
        )
        .options(selectinload(VerificationCase.order))
        .order_by(VerificationCase.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True, of=VerificationCase)
    ).all()
    if not cases:
        return 0
    # Another worker may have queued some between our read and our lock: look again.
    done = set(
        session.scalars(
            select(OutboxEmail.case_id).where(
                OutboxEmail.kind == OUTCOME, OutboxEmail.case_id.in_([c.id for c in cases])
            )
        )
    )
    queued = 0
    for case in cases:
        if case.id in done or case.order.anonymised_at is not None:
            continue
        queue_receipt(session, case, OUTCOME, portal=portal, now=now)
        queued += 1
    return queued
