"""Managing the shop's webhook endpoints: add, edit, enable/disable, rotate the secret with an
overlap, delete, test ping, and the secrets that sign a delivery. Every change is audited; the
caller commits. A secret is returned in plaintext only by create and rotate (shown once)."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.core.endpoints import EVENT_TYPES, PING, WebhookEndpoint
from verifier.core.outbox import queue_webhook_to
from verifier.errors import NotFoundError, ValidationError
from verifier.models import WebhookEvent
from verifier.vault.secretbox import SecretUnreadable, open_sealed, seal
from verifier.vault.storage import Keyring

ENDPOINT_SECRET_PURPOSE = b"verifier/webhook-endpoint-secret/v1"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MAX_OVERLAP = timedelta(days=7)
LOOPBACK_HOSTS = {"localhost", "localhost.localdomain"}


def secret_binding(endpoint_id: int, which: str) -> str:
    """What a sealed endpoint secret is bound to (`current` or `previous`): its row and slot."""
    return f"webhook-endpoint:{endpoint_id}:{which}"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, *, production: bool) -> str:
    """The URL stripped, or ValidationError: http(s) with a host, like VERIFIER_WEBHOOK_URL;
    in production https is required except for a loopback address."""
    url = (url or "").strip()
    if not url:
        raise ValidationError("Enter the endpoint's address.", {"url": "Enter an address."})
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        message = "Enter a full http(s) address, such as https://shop.example/hooks/verifier."
        raise ValidationError(message, {"url": message})
    if production and parts.scheme != "https" and not _is_loopback(parts.hostname):
        message = "Use an https:// address: webhooks leave this machine only over TLS."
        raise ValidationError(message, {"url": message})
    if len(url) > 2000:
        raise ValidationError("That address is too long.", {"url": "At most 2,000 characters."})
    return url


def check_event_types(event_types: list[str]) -> list[str]:
    """The filter in a stable order; [] (every type) or known types, else ValidationError."""
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        message = f"Unknown event type: {', '.join(unknown)}."
        raise ValidationError(message, {"event_types": message})
    return [t for t in EVENT_TYPES if t in event_types]


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """A live (not deleted) endpoint; raises NotFoundError."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None:
        raise NotFoundError("There is no such webhook endpoint.")
    return endpoint


def _audit(
    session: Session, action: str, endpoint: WebhookEndpoint, actor_id: int | None,
    now: datetime, **details: Any,
) -> None:  # fmt: skip
    record_event(session, action, actor_type="staff" if actor_id else "system",
                 actor_id=actor_id, target_type="webhook_endpoint", target_id=endpoint.id,
                 details={"url": endpoint.label, **details}, now=now)  # fmt: skip


@dataclass(frozen=True)
class EndpointInput:
    """What an admin edits: the address, a description, the filter, and whether it is on."""

    url: str
    description: str = ""
    event_types: tuple[str, ...] = ()
    enabled: bool = True


def create_endpoint(
    session: Session, keyring: Keyring, spec: EndpointInput, *, production: bool,
    actor_id: int | None, now: datetime,
) -> tuple[WebhookEndpoint, str]:  # fmt: skip
    """Add an endpoint with a fresh secret, audited; returns it and the secret (show it once)."""
    url = check_endpoint_url(spec.url, production=production)
    endpoint = WebhookEndpoint(
        url=url,
        description=spec.description.strip()[:200],
        event_types=check_event_types(list(spec.event_types)),
        enabled=spec.enabled,
        created_at=now,
        created_by_id=actor_id,
        updated_at=now,
        updated_by_id=actor_id,
    )
    session.add(endpoint)
    session.flush()
    secret = new_secret()
    endpoint.secret = seal(keyring, ENDPOINT_SECRET_PURPOSE, secret,
                           secret_binding(endpoint.id, "current"))  # fmt: skip
    _audit(session, "webhook_endpoint.created", endpoint, actor_id, now,
           event_types=endpoint.event_types or ["every type"],
           enabled=endpoint.enabled)  # fmt: skip
    session.flush()
    return endpoint, secret


def update_endpoint(
    session: Session, endpoint_id: int, spec: EndpointInput, *, production: bool,
    actor_id: int | None, now: datetime,
) -> WebhookEndpoint:  # fmt: skip
    """Change an endpoint's address, description, filter and switch; audits what changed."""
    endpoint = get_endpoint(session, endpoint_id)
    url = check_endpoint_url(spec.url, production=production)
    new = {"url": url, "description": spec.description.strip()[:200],
           "event_types": check_event_types(list(spec.event_types)),
           "enabled": spec.enabled}  # fmt: skip
    changed = sorted(k for k, v in new.items() if getattr(endpoint, k) != v)
    if not changed:
        return endpoint
    before = endpoint.label
    for name, value in new.items():
        setattr(endpoint, name, value)
    endpoint.updated_at, endpoint.updated_by_id = now, actor_id
    _audit(session, "webhook_endpoint.updated", endpoint, actor_id, now, changed=changed,
           previous_url=before if "url" in changed else None,
           event_types=endpoint.event_types or ["every type"],
           enabled=endpoint.enabled)  # fmt: skip
    session.flush()
    return endpoint


def set_endpoint_enabled(
    session: Session, endpoint_id: int, enabled: bool, *, actor_id: int | None, now: datetime
) -> WebhookEndpoint:
    """Switch an endpoint on or off, audited. Its queued events wait while it is off."""
    endpoint = get_endpoint(session, endpoint_id)
    if endpoint.enabled != enabled:
        endpoint.enabled = enabled
        endpoint.updated_at, endpoint.updated_by_id = now, actor_id
        action = "webhook_endpoint.enabled" if enabled else "webhook_endpoint.disabled"
        _audit(session, action, endpoint, actor_id, now)
        session.flush()
    return endpoint


def rotate_endpoint_secret(
    session: Session, keyring: Keyring, endpoint_id: int, *, overlap: timedelta,
    actor_id: int | None, now: datetime,
) -> str:  # fmt: skip
    """Give an endpoint a new secret; the old one also signs until now + overlap. Audited.

    Returns the new secret (show it once). Raises ValidationError for an overlap past 7 days.
    """
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValidationError("The overlap can be at most 7 days.", {"overlap": "0 to 168 hours."})
    endpoint = get_endpoint(session, endpoint_id)
    current = open_sealed(keyring, ENDPOINT_SECRET_PURPOSE, endpoint.secret,
                          secret_binding(endpoint.id, "current"))  # fmt: skip
    secret = new_secret()
    endpoint.secret = seal(keyring, ENDPOINT_SECRET_PURPOSE, secret,
                           secret_binding(endpoint.id, "current"))  # fmt: skip
    if overlap:
        endpoint.previous_secret = seal(keyring, ENDPOINT_SECRET_PURPOSE, current,
                                        secret_binding(endpoint.id, "previous"))  # fmt: skip
        endpoint.previous_expires_at = now + overlap
    else:
        endpoint.previous_secret, endpoint.previous_expires_at = None, None
    endpoint.secret_rotated_at = endpoint.updated_at = now
    endpoint.updated_by_id = actor_id
    expires = endpoint.previous_expires_at
    _audit(session, "webhook_endpoint.secret_rotated", endpoint, actor_id, now,
           overlap_hours=round(overlap.total_seconds() / 3600, 2),
           previous_expires_at=expires.isoformat() if expires else None)  # fmt: skip
    session.flush()
    return secret


def delete_endpoint(
    session: Session, endpoint_id: int, *, actor_id: int | None, now: datetime
) -> int:
    """Delete an endpoint: secrets erased, events still waiting for it marked `skipped`.

    The row stays (deleted) so the delivery log keeps naming where past events went. Returns how
    many waiting events were dropped. An event being sent right now finishes its attempt.
    """
    endpoint = get_endpoint(session, endpoint_id)
    endpoint.deleted_at = endpoint.updated_at = now
    endpoint.updated_by_id, endpoint.enabled = actor_id, False
    endpoint.secret, endpoint.previous_secret, endpoint.previous_expires_at = "", None, None
    result = cast(CursorResult[Any], session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.endpoint_id == endpoint.id, WebhookEvent.status == "pending")
        .values(status="skipped", last_error="not sent: its endpoint was deleted")
        .execution_options(synchronize_session=False)
    ))  # fmt: skip
    _audit(session, "webhook_endpoint.deleted", endpoint, actor_id, now,
           events_dropped=result.rowcount)  # fmt: skip
    session.flush()
    return result.rowcount


def queue_ping(
    session: Session, endpoint_id: int, *, actor_id: int | None, now: datetime
) -> WebhookEvent:
    """Queue a `ping` event for one endpoint (enabled or not), audited; the caller commits."""
    endpoint = get_endpoint(session, endpoint_id)
    event = queue_webhook_to(session, endpoint.id, PING,
                             {"case_id": None, "endpoint_id": endpoint.id,
                              "message": "Test ping from Verifier."}, now=now)  # fmt: skip
    _audit(session, "webhook.ping", endpoint, actor_id, now, event_id=event.event_id)
    return event


@dataclass(frozen=True)
class Target:
    """Where one claimed event goes and the secrets that sign it (newest first)."""

    url: str
    secrets: tuple[str, ...]
    problem: str | None = None  # why it cannot be sent (recorded as the attempt's error)


def endpoint_targets(
    session: Session, keyring: Keyring | None, endpoint_ids: set[int], at: datetime
) -> dict[int, Target]:
    """The URL and signing secrets of each endpoint: the previous secret too while its overlap
    lasts. An endpoint whose secret cannot be opened gets a Target with `problem` set."""
    targets: dict[int, Target] = {}
    if not endpoint_ids:
        return targets
    rows = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids)))
    for endpoint in rows:
        if keyring is None or not endpoint.secret:
            targets[endpoint.id] = Target(endpoint.url, (), "not sent: the endpoint has no secret")
            continue
        try:
            signing = [open_sealed(keyring, ENDPOINT_SECRET_PURPOSE, endpoint.secret,
                                   secret_binding(endpoint.id, "current"))]  # fmt: skip
            if endpoint.previous_secret and endpoint.previous_expires_at and \
                    at < endpoint.previous_expires_at:  # fmt: skip
                signing.append(open_sealed(keyring, ENDPOINT_SECRET_PURPOSE,
                                           endpoint.previous_secret,
                                           secret_binding(endpoint.id, "previous")))  # fmt: skip
        except SecretUnreadable as exc:  # the message names the key, never the value
            targets[endpoint.id] = Target(endpoint.url, (), f"secret unreadable: {exc.message}")
            continue
        targets[endpoint.id] = Target(endpoint.url, tuple(signing))
    return targets


def forget_expired_previous_secrets(session: Session, now: datetime) -> int:
    """Erase previous secrets whose overlap has ended; returns how many. The caller commits."""
    result = cast(CursorResult[Any], session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.previous_secret.is_not(None),
               WebhookEndpoint.previous_expires_at <= now)
        .values(previous_secret=None, previous_expires_at=None)
        .execution_options(synchronize_session=False)
    ))  # fmt: skip
    return result.rowcount
