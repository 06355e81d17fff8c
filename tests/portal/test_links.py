"""Upload links as a domain module: tokens, expiry, revocation, reminders, case expiry."""

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tests.portal_helpers import create_flagged_order, email_body, flag_everything, token_path
from verifier.core.settings import Settings
from verifier.models import OutboxEmail, UploadLink, VerificationCase, WebhookEvent
from verifier.portal.customer_mail import PortalContext
from verifier.portal.links import (
    EXPIRED_LINK,
    INVALID,
    VALID,
    expire_overdue_cases,
    extend_links,
    hash_token,
    resolve_token,
    revoke_links,
    send_due_reminders,
)
from verifier.vault.storage import Keyring

KEYRING = Keyring("k1", {"k1": secrets.token_bytes(32)})
PORTAL = PortalContext("https://verify.example", "Test Shop", KEYRING)


def _token(body) -> str:
    return token_path(body).removeprefix("/u/")


def test_token_is_256_bits_and_only_its_hash_is_stored(client, auth, db_session):
    flag_everything(db_session)
    token = _token(create_flagged_order(client, auth))
    assert len(token) == 43  # 32 bytes, URL-safe base64 without padding
    link = db_session.scalar(select(UploadLink))
    assert link.token_hash == hash_token(token)
    stored = " ".join(str(v) for v in link.__dict__.values())
    assert token not in stored


def test_resolve_valid_unknown_revoked_and_expired(client, auth, db_session):
    flag_everything(db_session)
    token = _token(create_flagged_order(client, auth))
    now = datetime.now(UTC)
    assert resolve_token(db_session, token, now).outcome == VALID
    forged = token[:-1] + ("B" if token.endswith("A") else "A")
    assert resolve_token(db_session, forged, now).outcome == INVALID
    assert resolve_token(db_session, "", now).outcome == INVALID
    assert resolve_token(db_session, token, now + timedelta(days=8)).outcome == EXPIRED_LINK
    case = db_session.scalar(select(VerificationCase))
    revoke_links(db_session, case.id, now)
    assert resolve_token(db_session, token, now).outcome == INVALID


def test_link_lifetime_follows_the_setting(client, auth, db_session):
    flag_everything(db_session, link_lifetime_days=3)
    body = create_flagged_order(client, auth)
    expires = datetime.fromisoformat(body["case"]["expires_at"])
    assert timedelta(days=2, hours=23) < expires - datetime.now(UTC) <= timedelta(days=3)


def test_invitation_email_is_queued_with_link_and_promise(app, client, auth, db_session):
    flag_everything(db_session)
    body = create_flagged_order(client, auth)
    email = db_session.scalar(select(OutboxEmail))
    assert email.to_address == "alice@example.com"
    assert "A-1001" in email.subject and "Test Shop" in email.subject
    keyring = Keyring.from_config(app.config)
    for part in (email_body(keyring, email), email_body(keyring, email, "html_body")):
        assert body["case"]["upload_url"] in part
        assert "never ask for card or ID details by email or phone" in part
        assert "€129.99" in part
        assert "front and the back of the card" in part


def test_reminder_goes_once_with_a_new_link_and_the_first_keeps_working(client, auth, db_session):
    flag_everything(db_session, reminder_before_hours=48)
    token = _token(create_flagged_order(client, auth))
    settings = Settings(reminder_before_hours=48)
    now = datetime.now(UTC)
    assert send_due_reminders(db_session, portal=PORTAL, settings=settings, now=now) == 0
    later = now + timedelta(days=5, hours=12)
    assert send_due_reminders(db_session, portal=PORTAL, settings=settings, now=later) == 1
    assert send_due_reminders(db_session, portal=PORTAL, settings=settings, now=later) == 0
    db_session.commit()
    reminder = db_session.scalar(select(OutboxEmail).where(OutboxEmail.kind == "reminder"))
    assert "Reminder" in reminder.subject
    assert "https://verify.example/u/" in email_body(KEYRING, reminder)
    assert db_session.scalar(select(func.count(UploadLink.id))) == 2
    assert resolve_token(db_session, token, later).outcome == VALID


def test_overdue_cases_expire_with_a_webhook(client, auth, db_session):
    flag_everything(db_session)
    create_flagged_order(client, auth)
    now = datetime.now(UTC)
    assert expire_overdue_cases(db_session, now=now) == 0
    assert expire_overdue_cases(db_session, now=now + timedelta(days=8)) == 1
    db_session.commit()
    case = db_session.scalar(select(VerificationCase))
    assert case.status == "expired"
    event = db_session.scalar(select(WebhookEvent).order_by(WebhookEvent.id.desc()))
    assert event.payload["data"]["status"] == "expired"


def test_extend_links_keeps_the_token(client, auth, db_session):
    flag_everything(db_session)
    token = _token(create_flagged_order(client, auth))
    case = db_session.scalar(select(VerificationCase))
    now = datetime.now(UTC) + timedelta(days=6)
    extend_links(db_session, case, settings=Settings(link_lifetime_days=7), now=now)
    db_session.commit()
    assert resolve_token(db_session, token, now + timedelta(days=6)).outcome == VALID


def test_two_workers_expiring_at_once_expire_each_case_once(app, client, auth, db_session):
    import threading

    from verifier.db import new_session

    flag_everything(db_session)
    for i in range(6):
        create_flagged_order(client, auth, f"EXP-{i}")
    later = datetime.now(UTC) + timedelta(days=8)
    barrier = threading.Barrier(2)
    counts = []

    def work():
        session = new_session(app)
        barrier.wait()
        counts.append(expire_overdue_cases(session, now=later))
        session.commit()
        session.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 6
    db_session.rollback()
    expired = db_session.scalars(
        select(WebhookEvent).where(WebhookEvent.event_type == "case.status_changed")
    ).all()
    assert sorted(e.payload["data"]["case_id"] for e in expired) == list(range(1, 7))
