"""Shop webhooks from the outbox: signing, the claim -> POST -> record loop that several
workers may run at once, the delivery log, and redelivery on an admin's request."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.client import HTTPMessage
from typing import IO, Any, cast

from sqlalchemy import ColumnElement, CursorResult, exists, false, or_, select, update
from sqlalchemy.orm import Session, aliased

from verifier.core.audit import record_event
from verifier.core.endpoints import PING, WebhookEndpoint
from verifier.core.outbox import record_claimed_outcome, renewing_claims
from verifier.errors import ConflictError, NotFoundError
from verifier.models import WebhookDelivery, WebhookEvent
from verifier.notify.endpoints import Target, endpoint_targets
from verifier.notify.mail import (
    DeliveryReport,
    retry_delay,
    truncate_error,
)
from verifier.vault.storage import Keyring

log = logging.getLogger(__name__)

PENDING, SENDING, DELIVERED, FAILED, SKIPPED = (
    "pending",
    "sending",
    "delivered",
    "failed",
    "skipped",
)
WEBHOOK_STATES = (PENDING, SENDING, DELIVERED, FAILED, SKIPPED)
MAX_WEBHOOK_ATTEMPTS = 15
# Renewed while the worker is busy with the batch (core.outbox.renewing_claims), so a worker
# killed mid-batch holds its events back for at most this long.
DEFAULT_LEASE = timedelta(seconds=60)
SIGNATURE_HEADER = "Verifier-Signature"
EVENT_ID_HEADER = "Verifier-Event-Id"
USER_AGENT = "Verifier-Webhooks/1"
RESPONSE_PEEK_BYTES = 200


def sign_payload(secret: str, timestamp: int, body: bytes) -> str:
    """The `Verifier-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t." + body>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def sign_payload_with(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The header signed with every secret, newest first: `t=<ts>,v1=<new>,v1=<previous>`.

    During a secret rotation's overlap an endpoint has two secrets; a shop that checks any one
    `v1=` value against its secret keeps working whichever one it holds.
    """
    values = [sign_payload(secret, timestamp, body).partition(",")[2] for secret in secrets]
    return ",".join([f"t={timestamp}", *values])


def verify_signature(
    secret: str, header: str, body: bytes, now: datetime | float, tolerance: int = 300
) -> bool:
    """True when `header` signs exactly `body` with `secret` within `tolerance` seconds of now.

    Several `v1=` entries are accepted (any one may match), so a secret can be rotated.
    """
    parts = [p.partition("=") for p in (header or "").split(",")]
    stamps = [v.strip() for k, _, v in parts if k.strip() == "t"]
    signatures = [v.strip() for k, _, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not signatures:
        return False
    timestamp = int(stamps[0])
    now_ts = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(now_ts - timestamp) > tolerance:
        return False
    expected = sign_payload(secret, timestamp, body).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, s) for s in signatures)


def event_body(event_payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed: the same on every redelivery of one event."""
    return json.dumps(event_payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class ClaimedEvent:
    id: int
    event_id: str
    event_type: str
    body: bytes
    attempt: int
    endpoint_id: int | None = None


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _case_of(model: type[WebhookEvent]) -> ColumnElement[int]:
    case_id: ColumnElement[int] = model.payload[("data", "case_id")].as_integer()
    return case_id


def claim_due_events(
    session: Session,
    now: datetime,
    *,
    batch: int,
    lease: timedelta,
    include_default: bool = True,
    only_id: int | None = None,
) -> list[ClaimedEvent]:
    """Mark up to `batch` due events `sending` until now + lease; the caller commits at once.

    An event waits while an earlier event of the same case for the same endpoint is still
    pending or sending, so each endpoint hears a case's changes in the order they happened; an
    endpoint that is disabled holds its events (they go out once it is enabled again).
    `include_default` claims the events for the VERIFIER_WEBHOOK_URL default too; `only_id`
    claims that one event (a test ping). PostgreSQL skips rows another worker has locked;
    SQLite's BEGIN IMMEDIATE serialises claims.
    """
    earlier = aliased(WebhookEvent)
    blocked = exists().where(
        earlier.id < WebhookEvent.id,
        earlier.status.in_((PENDING, SENDING)),
        earlier.endpoint_id.is_not_distinct_from(WebhookEvent.endpoint_id),
        _case_of(earlier) == _case_of(WebhookEvent),
    )
    open_endpoints = select(WebhookEndpoint.id).where(
        WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None)
    )
    sendable = or_(
        WebhookEvent.endpoint_id.is_(None) if include_default else false(),
        WebhookEvent.endpoint_id.in_(open_endpoints),
    )
    query = select(WebhookEvent).where(
        WebhookEvent.status.in_((PENDING, SENDING)), WebhookEvent.next_attempt_at <= now
    )
    if only_id is not None:
        # A ping goes to its endpoint even while it is disabled: test before switching on.
        query = query.where(WebhookEvent.id == only_id)
    else:
        query = query.where(sendable, ~blocked)
    rows = session.scalars(
        query.order_by(WebhookEvent.id)
        .limit(batch)
        .with_for_update(skip_locked=True, of=WebhookEvent)
    ).all()
    claimed = []
    for row in rows:
        row.status = SENDING
        row.attempts += 1
        row.next_attempt_at = now + lease
        claimed.append(
            ClaimedEvent(
                row.id,
                row.event_id,
                row.event_type,
                event_body(row.payload),
                row.attempts,
                row.endpoint_id,
            )
        )
    return claimed


def skip_due_events(session: Session, now: datetime) -> int:
    """With no webhook URL configured, mark due events for that default `skipped` (kept; an
    admin can redeliver). Events for an endpoint are not touched."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.status == PENDING,
                WebhookEvent.next_attempt_at <= now,
                WebhookEvent.endpoint_id.is_(None),
            )
            .values(status=SKIPPED, last_error="not sent: VERIFIER_WEBHOOK_URL is not set")
        ),
    )
    if result.rowcount:
        log.info("%s webhook events skipped: VERIFIER_WEBHOOK_URL is not set", result.rowcount)
    return result.rowcount


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer, not a delivery: following it could post the event elsewhere.
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_event(
    url: str, secrets: str | Sequence[str], event: ClaimedEvent, now: datetime, timeout: float
) -> AttemptResult:
    """POST one event signed with each secret; returns the status code or error, never raises."""
    signing = [secrets] if isinstance(secrets, str) else list(secrets)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event.event_id,
        SIGNATURE_HEADER: sign_payload_with(signing, int(now.timestamp()), event.body),
    }
    if not url.lower().startswith(("http://", "https://")):
        return AttemptResult(None, "The webhook URL is not an http(s) address", 0)
    # The scheme is checked just above, so urllib's file: and ftp: handlers are never reached.
    request = urllib.request.Request(  # noqa: S310
        url, data=event.body, headers=headers, method="POST"
    )
    started = time.monotonic()
    status, error = None, None
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        peek = exc.read(RESPONSE_PEEK_BYTES).decode("utf-8", "replace").strip()
        error = f"HTTP {exc.code}" + (f": {peek}" if peek else "")
    except Exception as exc:  # network errors of every kind are retried
        reason = getattr(exc, "reason", None) or exc
        error = f"{type(exc).__name__}: {reason}"
    duration_ms = int((time.monotonic() - started) * 1000)
    return AttemptResult(status, truncate_error(error) if error else None, duration_ms)


def _outcome(
    event: ClaimedEvent, result: AttemptResult, now: datetime, report: DeliveryReport
) -> dict[str, Any]:
    common: dict[str, Any] = {"last_status_code": result.status_code, "last_error": result.error}
    if result.ok:
        report.sent += 1
        log.info(
            "webhook %s (%s) delivered: %s", event.event_id, event.event_type, result.status_code
        )
        return common | {"status": DELIVERED, "delivered_at": now}
    outcome = result.status_code or "network error"
    # A test ping is tried once: its answer is what the admin asked for.
    if event.attempt >= (1 if event.event_type == PING else MAX_WEBHOOK_ATTEMPTS):
        report.failed += 1
        log.error(
            "webhook %s (%s) failed after %s attempts (%s)",
            event.event_id,
            event.event_type,
            event.attempt,
            outcome,
        )
        return common | {"status": FAILED}
    delay = retry_delay(event.attempt)
    report.retried += 1
    log.warning(
        "webhook %s (%s) attempt %s failed (%s); next try in %s",
        event.event_id,
        event.event_type,
        event.attempt,
        outcome,
        delay,
    )
    return common | {"status": PENDING, "next_attempt_at": now + delay}


def deliver_due_webhooks(
    session_factory: Callable[[], Session],
    url: str,
    secret: str,
    now: datetime,
    batch: int = 20,
    timeout: float = 10,
    *,
    lease: timedelta = DEFAULT_LEASE,
    keyring: Keyring | None = None,
) -> DeliveryReport:
    """POST the due webhook events (up to `batch`) and record every attempt.

    Events for an endpoint go to its URL signed with its secrets (opened with `keyring`);
    events without one go to `url` signed with `secret` (the VERIFIER_WEBHOOK_URL default),
    and are marked skipped when `url` is empty. Claims happen in short transactions and POSTs
    outside them; claiming repeats so a case's next event goes out right after the one before
    it. 2xx is delivered; anything else is retried with back-off and `failed` after
    MAX_WEBHOOK_ATTEMPTS.
    """
    report = DeliveryReport()
    if not url:
        with session_factory() as session:
            report.skipped = skip_due_events(session, now)
            session.commit()
    started = time.monotonic()
    done = 0
    while done < batch:
        with session_factory() as session:
            claimed = claim_due_events(
                session, now, batch=batch - done, lease=lease, include_default=bool(url)
            )
            session.commit()
        if not claimed:
            break
        _send_claimed(session_factory, claimed, Target(url, (secret,)), keyring, now,
                      started, timeout, lease, report)  # fmt: skip
        done += len(claimed)
    return report


def deliver_event_now(
    session_factory: Callable[[], Session],
    event_row_id: int,
    now: datetime,
    *,
    default: Target,
    keyring: Keyring | None,
    timeout: float = 10,
    lease: timedelta = DEFAULT_LEASE,
) -> DeliveryReport:
    """Send one committed event at once through the worker's path (claim, POST, record): the
    test ping. Nothing is sent when a worker already holds it."""
    report = DeliveryReport()
    with session_factory() as session:
        claimed = claim_due_events(session, now, batch=1, lease=lease, only_id=event_row_id)
        session.commit()
    if claimed:
        _send_claimed(session_factory, claimed, default, keyring, now, time.monotonic(),
                      timeout, lease, report)  # fmt: skip
    return report


def _send_claimed(
    session_factory: Callable[[], Session],
    claimed: list[ClaimedEvent],
    default: Target,
    keyring: Keyring | None,
    now: datetime,
    started: float,
    timeout: float,
    lease: timedelta,
    report: DeliveryReport,
) -> None:
    leases = [(event.id, event.attempt) for event in claimed]
    with renewing_claims(session_factory, WebhookEvent, leases, started=now, lease=lease):
        with session_factory() as session:
            ids = {e.endpoint_id for e in claimed if e.endpoint_id is not None}
            targets = endpoint_targets(session, keyring, ids, now)
        for event in claimed:
            target = default if event.endpoint_id is None else targets.get(event.endpoint_id)
            # Signed with the time of this attempt, not of the pass: a slow pass must not
            # push the signature towards the shop's tolerance.
            sent_at = now + timedelta(seconds=time.monotonic() - started)
            if target is None or target.problem:
                problem = target.problem if target else "not sent: its endpoint is gone"
                result = AttemptResult(None, problem, 0)
            else:
                result = post_event(target.url, target.secrets, event, sent_at, timeout)
            outcome = _outcome(event, result, now, report)
            _record(session_factory, event, result, outcome, now)


def _record(
    session_factory: Callable[[], Session],
    event: ClaimedEvent,
    result: AttemptResult,
    values: dict[str, Any],
    now: datetime,
) -> None:
    with session_factory() as session:
        session.add(
            WebhookDelivery(
                event_id=event.id,
                attempted_at=now,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
            )
        )
        if not record_claimed_outcome(session, WebhookEvent, event.id, event.attempt, values):
            log.warning(
                "webhook %s: claim was lost before its outcome was recorded", event.event_id
            )
        session.commit()


def redeliver(
    session: Session, event_id: str, now: datetime, *, actor_id: int | None = None
) -> WebhookEvent:
    """Queue an event to be sent again (same id and body) and audit it; the caller commits.

    Raises NotFoundError for an unknown event, ConflictError while it is being sent.
    """
    event = session.scalar(
        select(WebhookEvent).where(WebhookEvent.event_id == event_id).with_for_update()
    )
    if event is None:
        raise NotFoundError("There is no such webhook event.")
    if event.endpoint_id is not None:
        endpoint = session.get(WebhookEndpoint, event.endpoint_id)
        if endpoint is None or endpoint.deleted_at is not None:
            raise ConflictError("Its endpoint was deleted, so this event cannot be sent again.")
    if event.status == SENDING:
        # A worker holds it; one whose lease ran out is picked up again on its own.
        raise ConflictError("This event is being delivered right now; try again in a minute.")
    previous = event.status
    event.status, event.attempts, event.next_attempt_at = PENDING, 0, now
    record_event(
        session,
        "webhook.redeliver",
        actor_type="staff",
        actor_id=actor_id,
        target_type="webhook_event",
        target_id=event.event_id,
        details={"previous_status": previous},
        now=now,
    )
    session.flush()
    return event
