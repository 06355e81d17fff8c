"""Customer email delivery from the outbox: MIME messages, file and SMTP backends, and the
claim -> send -> record loop that several workers may run at once."""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifier.core.brand import load_brand
from verifier.core.outbox import record_claimed_outcome, renewing_claims
from verifier.models import OutboxEmail
from verifier.vault.secretbox import (
    EMAIL_BODY_PURPOSE,
    SecretUnreadable,
    email_body_binding,
    is_sealed,
    open_sealed,
)
from verifier.vault.storage import Keyring

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
CANCELLED = "cancelled"  # set by anonymisation for emails not yet sent
EMAIL_STATES = (PENDING, SENDING, SENT, FAILED, CANCELLED)
# Once an email is sent or given up on, its body (which holds the customer's upload link, a
# bearer token) is no longer needed: it is blanked so the database never keeps a usable token.
SCRUBBED_BODIES = {"text_body": "", "html_body": ""}
MAX_EMAIL_ATTEMPTS = 10
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=6)
# A claim older than this is taken to belong to a crashed worker and is retried; it must
# outlast a whole batch of sends at the SMTP timeout.
# Renewed while the worker is busy with the batch (core.outbox.renewing_claims), so a worker
# killed mid-batch holds its emails back for at most this long.
DEFAULT_LEASE = timedelta(seconds=90)
ERROR_MAX_CHARS = 500


class MailBackend(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Deliver one message; returns where it went (safe to log); raises on failure."""


class PermanentMailError(Exception):
    """The message can never be delivered as addressed (the server refused every recipient)."""


@dataclass(frozen=True)
class ClaimedEmail:
    """What a worker needs from an outbox row to send it, read inside the claim."""

    id: int
    kind: str
    to_address: str
    subject: str
    text_body: str
    html_body: str
    created_at: datetime
    attempt: int
    case_id: int | None = None


@dataclass
class DeliveryReport:
    """Counts of one delivery pass, for the worker's one-line summary."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if v or k in ("sent", "failed")}


def retry_delay(
    attempts: int, first: timedelta = FIRST_RETRY, cap: timedelta = MAX_RETRY
) -> timedelta:
    """Exponential back-off after `attempts` failed tries: first, 2x first, 4x ... up to cap."""
    factor: int = 2 ** max(attempts - 1, 0)
    return min(first * factor, cap)


def truncate_error(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sender_domain(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"


def build_message(
    email: ClaimedEmail, mail_from: str, now: datetime, reply_to: str | None = None
) -> EmailMessage:
    """A multipart/alternative (text + HTML) message; its Message-ID is the same on every retry."""
    message = EmailMessage()
    message["From"] = mail_from
    if reply_to:
        message["Reply-To"] = reply_to
    message["To"] = email.to_address
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now)
    # Stable across retries, so a receiver can drop a duplicate after a worker crash.
    stamp = int(email.created_at.timestamp())
    message["Message-ID"] = f"<verifier.{email.id}.{stamp}@{_sender_domain(mail_from)}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text_body)
    message.add_alternative(email.html_body, subtype="html")
    return message


class FileBackend:
    """Writes each message as an .eml file (mode 0600: it holds a customer's link)."""

    def __init__(self, outbox_dir: Path | str):
        self.outbox_dir = Path(outbox_dir)

    def send(self, message: EmailMessage) -> str:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        msg_id = message["Message-ID"].strip("<>").partition("@")[0]
        path = self.outbox_dir / f"{msg_id}.eml"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(message.as_bytes())
        # Atomic: a reader of the outbox never sees half a message.
        os.replace(tmp, path)
        return str(path)


class SmtpBackend:
    """Sends through an SMTP server: implicit TLS (`ssl`) or STARTTLS, optional login."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        use_ssl: bool = False,
        timeout: float = 30,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.starttls, self.use_ssl, self.timeout = starttls, use_ssl, timeout
        self.ssl_context = ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.use_ssl:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.ssl_context
            )
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.starttls:
            smtp.starttls(context=self.ssl_context)
        return smtp

    def send(self, message: EmailMessage) -> str:
        with self._connect() as smtp:
            if self.username:
                smtp.login(self.username, self.password)
            try:
                smtp.send_message(message)
            except smtplib.SMTPRecipientsRefused as exc:
                if all(code >= 500 for code, _ in exc.recipients.values()):
                    raise PermanentMailError("the server refused the recipient") from exc
                raise
        return f"smtp://{self.host}:{self.port}"


def backend_from_config(config: dict[str, Any]) -> MailBackend:
    """The backend named by VERIFIER_MAIL_BACKEND, built from the app config."""
    if config["MAIL_BACKEND"] == "smtp":
        return SmtpBackend(
            config["SMTP_HOST"],
            config["SMTP_PORT"],
            username=config["SMTP_USERNAME"],
            password=config["SMTP_PASSWORD"],
            starttls=config["SMTP_STARTTLS"],
            use_ssl=config["SMTP_SSL"],
            timeout=config["SMTP_TIMEOUT"],
        )
    return FileBackend(config["MAIL_OUTBOX_DIR"])


def claim_due_emails(
    session: Session, now: datetime, *, batch: int, lease: timedelta, report: DeliveryReport
) -> list[ClaimedEmail]:
    """Mark up to `batch` due emails `sending` until now + lease; the caller commits at once.

    PostgreSQL skips rows another worker has locked; SQLite's BEGIN IMMEDIATE serialises claims.
    A `sending` row whose lease ran out was left by a crashed worker and is claimed again.
    """
    rows = session.scalars(
        select(OutboxEmail)
        .where(OutboxEmail.status.in_((PENDING, SENDING)), OutboxEmail.next_attempt_at <= now)
        .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = []
    for row in rows:
        if row.attempts >= MAX_EMAIL_ATTEMPTS:
            # Only reachable when the last attempt's worker died before recording it.
            row.status, row.last_error = FAILED, "gave up: the last attempt never reported back"
            row.text_body = row.html_body = ""
            report.failed += 1
            log.error("email %s (%s) failed after %s attempts", row.id, row.kind, row.attempts)
            continue
        row.status = SENDING
        row.attempts += 1
        row.next_attempt_at = now + lease
        claimed.append(
            ClaimedEmail(
                id=row.id,
                kind=row.kind,
                to_address=row.to_address,
                subject=row.subject,
                text_body=row.text_body,
                html_body=row.html_body,
                created_at=row.created_at,
                attempt=row.attempts,
                case_id=row.case_id,
            )
        )
    return claimed


def deliver_due_emails(
    session_factory: Callable[[], Session],
    backend: MailBackend,
    now: datetime,
    batch: int = 20,
    *,
    mail_from: str = "Verifier <no-reply@localhost>",
    lease: timedelta = DEFAULT_LEASE,
    keyring: Keyring | None = None,
    shop_name: str | None = None,
) -> DeliveryReport:
    """Send the due outbox emails: claim in one short transaction, send outside any
    transaction, record each outcome (sent, or retry with back-off, or failed) in its own.

    Every outbox email goes to a customer, so it comes from the shop's brand: the sender name
    (else the shop name, else `mail_from` as it is) at `mail_from`'s address, and its reply-to.
    """
    report = DeliveryReport()
    with session_factory() as session:
        claimed = claim_due_emails(session, now, batch=batch, lease=lease, report=report)
        brand = load_brand(session, shop_name or "")
        session.commit()
    reply_to = brand.reply_to
    if brand.sender_name or brand.shop_name:
        mail_from = brand.sender(mail_from)
    leases = [(email.id, email.attempt) for email in claimed]
    with renewing_claims(session_factory, OutboxEmail, leases, started=now, lease=lease):
        for email in claimed:
            _deliver_one(session_factory, backend, email, keyring, (mail_from, reply_to), now,
                         report)  # fmt: skip
    return report


def _deliver_one(
    session_factory: Callable[[], Session],
    backend: MailBackend,
    email: ClaimedEmail,
    keyring: Keyring | None,
    sender: tuple[str, str | None],
    now: datetime,
    report: DeliveryReport,
) -> None:
    """Open, send and record one claimed email (its outcome only while the claim holds)."""
    try:
        email = _opened(email, keyring)
    except SecretUnreadable as exc:
        log.error("email %s (%s) cannot be opened: %s", email.id, email.kind, exc.message)
        report.failed += 1
        values: dict[str, Any] = {"status": FAILED, "last_error": exc.message, **SCRUBBED_BODIES}
    else:
        values = _attempt(backend, email, sender, now, report)
    with session_factory() as session:
        if not record_claimed_outcome(session, OutboxEmail, email.id, email.attempt, values):
            log.warning("email %s: claim was lost before the outcome was recorded", email.id)
        session.commit()


def _opened(email: ClaimedEmail, keyring: Keyring | None) -> ClaimedEmail:
    """The email with its sealed bodies opened (bodies queued unsealed pass as they are)."""
    bodies = {}
    for name in ("text_body", "html_body"):
        value = getattr(email, name)
        if is_sealed(value):
            if keyring is None:
                raise SecretUnreadable("A sealed email body needs the master keys to be sent.")
            value = open_sealed(keyring, EMAIL_BODY_PURPOSE, value,
                                email_body_binding(email.case_id, email.kind))  # fmt: skip
        bodies[name] = value
    return replace(email, **bodies)


def _attempt(
    backend: MailBackend,
    email: ClaimedEmail,
    sender: tuple[str, str | None],
    now: datetime,
    report: DeliveryReport,
) -> dict[str, Any]:
    """Send one email from `sender` (From, Reply-To); returns the column values of the outcome."""
    mail_from, reply_to = sender
    try:
        where = backend.send(build_message(email, mail_from, now, reply_to))
    except PermanentMailError as exc:
        report.failed += 1
        log.error("email %s (%s) failed permanently: %s", email.id, email.kind, exc)
        return {"status": FAILED, "last_error": str(exc), **SCRUBBED_BODIES}
    except Exception as exc:  # any transport error is retried; the message is kept
        # The row keeps the server's reply; the log gets the error class only, because SMTP
        # replies can quote the recipient's address.
        error = truncate_error(f"{type(exc).__name__}: {exc}")
        if email.attempt >= MAX_EMAIL_ATTEMPTS:
            report.failed += 1
            log.error(
                "email %s (%s) failed after %s attempts (%s)",
                email.id,
                email.kind,
                email.attempt,
                type(exc).__name__,
            )
            return {"status": FAILED, "last_error": error, **SCRUBBED_BODIES}
        delay = retry_delay(email.attempt)
        report.retried += 1
        log.warning(
            "email %s (%s) attempt %s failed (%s); next try in %s",
            email.id,
            email.kind,
            email.attempt,
            type(exc).__name__,
            delay,
        )
        return {"status": PENDING, "last_error": error, "next_attempt_at": now + delay}
    report.sent += 1
    log.info("email %s (%s) sent via %s", email.id, email.kind, where)
    return {"status": SENT, "sent_at": now, "last_error": None, **SCRUBBED_BODIES}


def count_emails_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status))
    return {status: count for status, count in rows}


def failed_emails(session: Session, limit: int = 20) -> list[OutboxEmail]:
    """The newest emails that were given up on, for the admin delivery page."""
    query = select(OutboxEmail).where(OutboxEmail.status == FAILED)
    return list(session.scalars(query.order_by(OutboxEmail.id.desc()).limit(limit)))
