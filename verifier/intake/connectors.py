"""Platform connectors (Shopify, WooCommerce): each platform's signing secret, sealed at rest,
the check of a webhook's signature, and storing the order it carries exactly once.

Verifier serves one shop, as its API keys do: a connector's orders are that shop's orders, and
the platform is named only in the order's source and its external id (`shopify:<id>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from verifier.core.audit import record_event
from verifier.core.policies import PolicyInForce
from verifier.errors import ConflictError, NotFoundError, ValidationError, VerifierError
from verifier.intake.orders import IntakeResult, get_order, submit_order
from verifier.intake.payload import OrderInput
from verifier.models import Base
from verifier.portal.customer_mail import PortalContext
from verifier.vault import secretbox
from verifier.vault.storage import Keyring

PLATFORMS = {"shopify": "Shopify", "woocommerce": "WooCommerce"}
# Order.source holds at most eight characters.
SOURCES = {"shopify": "shopify", "woocommerce": "woo"}
SEAL_PURPOSE = b"verifier/connector-secret/v1"
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 200
DELIVERY_GRANULARITY = timedelta(minutes=1)


class Connector(Base):
    """A platform's webhook signing secret (sealed), and when its last signed order came."""

    __tablename__ = "connectors"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(20), unique=True)
    secret_sealed: Mapped[str] = mapped_column(String(400))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(254))
    last_delivery_at: Mapped[datetime | None]


class ConnectorNotConfigured(VerifierError):
    """No secret is set for the platform: its webhooks cannot be checked, so none is taken."""

    code = "connector_not_configured"
    # 409, not 503: nothing is down; the platform retries a 409 too, and succeeds once set.
    status = 409


def binding(platform: str) -> str:
    """What a connector's sealed secret is bound to (verifier.vault.secretbox)."""
    return f"connector:{platform}"


def _check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise NotFoundError(
            f"There is no connector for {platform!r}; use one of {', '.join(PLATFORMS)}."
        )


# Shopify makes its signing secret itself (shown in its webhook settings); WooCommerce takes
# the one it is given.
CHOSEN_BY_SHOP = frozenset({"woocommerce"})


def generate_secret(platform: str) -> str:
    """A fresh random signing secret, for a platform that lets the shop choose it."""
    _check_platform(platform)
    if platform not in CHOSEN_BY_SHOP:
        raise ValidationError(
            f"{PLATFORMS[platform]} makes its own signing secret: copy it from its webhook "
            "settings and paste it here.",
            {"secret": "Paste the secret the platform shows."},
        )
    return secrets.token_urlsafe(32)


def set_connector_secret(
    session: Session,
    keyring: Keyring,
    platform: str,
    secret: str,
    *,
    actor_type: str,
    actor_id: str | int | None,
    actor_label: str,
    now: datetime,
) -> Connector:
    """Seal and store the platform's signing secret (replacing any before it); audited."""
    _check_platform(platform)
    secret = secret.strip()
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or any(
        c.isspace() for c in secret
    ):
        raise ValidationError(
            f"The secret must be {MIN_SECRET_LENGTH}-{MAX_SECRET_LENGTH} characters without "
            "spaces. Copy it whole from the platform's webhook settings.",
            {"secret": "Invalid secret."},
        )
    row = session.scalar(select(Connector).where(Connector.platform == platform))
    replaced = row is not None
    sealed = secretbox.seal(keyring, SEAL_PURPOSE, secret, binding(platform))
    if row is None:
        row = Connector(platform=platform, secret_sealed=sealed, updated_at=now,
                        updated_by=actor_label)  # fmt: skip
        session.add(row)
    else:
        row.secret_sealed, row.updated_at, row.updated_by = sealed, now, actor_label
    session.flush()
    record_event(session, "connector.secret_set", actor_type=actor_type, actor_id=actor_id,
                 target_type="connector", target_id=platform,
                 details={"platform": platform, "replaced": replaced}, now=now)  # fmt: skip
    return row


def remove_connector(
    session: Session, platform: str, *, actor_type: str, actor_id: str | int | None, now: datetime
) -> None:
    """Forget the platform's secret: its webhooks are refused (409) from now on; audited."""
    _check_platform(platform)
    row = session.scalar(select(Connector).where(Connector.platform == platform))
    if row is None:
        raise NotFoundError(f"The {PLATFORMS[platform]} connector is not set up.")
    session.delete(row)
    record_event(session, "connector.removed", actor_type=actor_type, actor_id=actor_id,
                 target_type="connector", target_id=platform,
                 details={"platform": platform}, now=now)  # fmt: skip


@dataclass(frozen=True)
class ConnectorStatus:
    platform: str
    label: str
    configured: bool
    updated_at: datetime | None
    updated_by: str | None
    last_delivery_at: datetime | None


def connector_statuses(session: Session) -> list[ConnectorStatus]:
    """Every platform, set up or not, with when its secret was set and its last order came."""
    rows = {row.platform: row for row in session.scalars(select(Connector))}
    out = []
    for platform, label in PLATFORMS.items():
        row = rows.get(platform)
        out.append(
            ConnectorStatus(
                platform, label, row is not None, row.updated_at if row else None,
                row.updated_by if row else None, row.last_delivery_at if row else None,
            )
        )  # fmt: skip
    return out


def connector_for(session: Session, platform: str) -> Connector:
    """The platform's connector row; raises ConnectorNotConfigured (409) when none is set."""
    row = session.scalar(select(Connector).where(Connector.platform == platform))
    if row is None:
        raise ConnectorNotConfigured(
            f"The {PLATFORMS[platform]} connector has no signing secret yet, so this webhook "
            "was not accepted. An admin sets it under Admin > Integrations (or "
            f"`verifier connector set-secret {platform}`); the platform's retries then succeed."
        )
    return row


def open_secret(keyring: Keyring, row: Connector) -> str:
    return secretbox.open_sealed(keyring, SEAL_PURPOSE, row.secret_sealed, binding(row.platform))


def platform_signature(secret: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of the raw body, as both Shopify and WooCommerce send it."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signature_matches(secret: str, body: bytes, presented: str | None) -> bool:
    """Whether `presented` signs exactly `body` with `secret` (compared in constant time)."""
    if not presented:
        return False
    expected = platform_signature(secret, body).encode()
    return hmac.compare_digest(expected, presented.strip().encode("utf-8", "replace"))


def note_delivery(row: Connector, now: datetime) -> None:
    """Remember that a correctly signed webhook arrived (shown on the integrations page).

    At most once a minute: every delivery writing the one row would queue a flash sale's
    concurrent webhooks behind each other's row lock.
    """
    if row.last_delivery_at is None or now - row.last_delivery_at >= DELIVERY_GRANULARITY:
        row.last_delivery_at = now


@dataclass(frozen=True)
class ConnectorResult:
    intake: IntakeResult
    # True when a resend carried details other than the stored order's (they are not applied).
    differs: bool = False


def receive_platform_order(
    session: Session,
    platform: str,
    data: OrderInput,
    *,
    rng: random.Random,
    now: datetime,
    portal: PortalContext,
    policy: PolicyInForce | None = None,
) -> ConnectorResult:
    """Store the platform's order and draw its sample once; a redelivery returns the stored one.

    Unlike the API (where changed details under one id are a 409), a platform resend is never
    refused: the platform retries anything but a 2xx and may finally drop the webhook, so the
    stored order answers, and `differs` says that the resend's details were not applied.
    Flushes only.
    """
    found = get_order(session, data.external_id)
    if found is not None:
        return ConnectorResult(
            IntakeResult(found, created=False), differs=found.payload_hash != data.payload_hash()
        )
    try:
        result = submit_order(session, data, source=SOURCES[platform], rng=rng, now=now,
                              portal=portal, actor_id=f"connector:{platform}",
                              policy=policy)  # fmt: skip
    except ConflictError:
        # A concurrent delivery of the same order, with other details, stored it first.
        found = get_order(session, data.external_id)
        if found is None:
            raise
        return ConnectorResult(IntakeResult(found, created=False), differs=True)
    return ConnectorResult(result)
