"""The shop's webhook endpoints (table `webhook_endpoints`, migration 0008) and which of them an
event goes to. Managed on the webhooks pages (verifier.notify.endpoints); read here by the
outbox, which queues each event once per matching endpoint.

While no endpoint exists (none added, or all deleted), an event is queued once with no
endpoint and goes to the bootstrap default, VERIFIER_WEBHOOK_URL and VERIFIER_WEBHOOK_SECRET.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Boolean, ForeignKey, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from verifier.models import Base, utcnow

# The event types an endpoint can subscribe to. An empty filter means "every type", those
# added later included. `ping` is never subscribed to: it is sent on an admin's request only.
EVENT_TYPES = ("case.status_changed",)
PING = "ping"


class WebhookEndpoint(Base):
    """Where the shop receives webhooks: a URL, its own sealed signing secret, an event filter.

    `secret` and `previous_secret` are sealed (verifier.vault.secretbox); during a rotation's
    overlap (until `previous_expires_at`) both sign every delivery. A deleted endpoint keeps its
    row for the delivery log, with both secrets erased.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(200), default="")
    event_types: Mapped[list[Any]] = mapped_column(default=list)  # empty: every type
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    secret: Mapped[str] = mapped_column(Text, default="")
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_expires_at: Mapped[datetime | None]
    secret_rotated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    deleted_at: Mapped[datetime | None]

    @property
    def label(self) -> str:
        """The URL without credentials or query string (safe for pages, logs and audit)."""
        return url_label(self.url)

    def wants(self, event_type: str) -> bool:
        """True when this endpoint's filter takes `event_type` (never for `ping`)."""
        if event_type == PING:
            return False
        return not self.event_types or event_type in self.event_types


def url_label(url: str) -> str:
    """A webhook address without credentials or query string (safe to show on a page)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def live_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Every endpoint not deleted, enabled or not, oldest first."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.id)
        )
    )


def count_live_endpoints(session: Session) -> int:
    return (
        session.scalar(
            select(func.count(WebhookEndpoint.id)).where(WebhookEndpoint.deleted_at.is_(None))
        )
        or 0
    )


def event_targets(session: Session, event_type: str) -> list[int | None]:
    """The endpoint ids an event of `event_type` is queued for; [None] is the bootstrap default.

    An empty list means endpoints exist but none that is enabled takes this type.
    """
    endpoints = live_endpoints(session)
    if not endpoints:
        return [None]
    return [e.id for e in endpoints if e.enabled and e.wants(event_type)]
