"""Builders for review tests: staff, orders with cases in any state, encrypted documents."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from PIL import Image
from sqlalchemy.orm import Session

from verifier.core.linkkeys import link_keys
from verifier.models import IN_REVIEW, Document, Order, StaffUser, VerificationCase
from verifier.vault.storage import Keyring, put_blob

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADDRESS = {"line1": "1 High Street", "city": "London", "postcode": "SW1A 1AA", "country": "GB"}


def make_staff(session: Session, email: str, role: str = "reviewer") -> StaffUser:
    user = StaffUser(email=email, role=role, password_hash="not-a-real-hash", created_at=NOW)
    session.add(user)
    session.flush()
    return user


def make_case(
    session: Session,
    external_id: str,
    *,
    status: str | None = IN_REVIEW,
    created_at: datetime | None = None,
    reason: str = "random",
    email: str = "alice@example.com",
    card_last4: str = "4242",
    holder: str = "Alice Meyer",
    billing: dict | None = None,
    shipping: dict | None = None,
    phone: str | None = None,
    ip_address: str | None = None,
    device_id: str | None = None,
    amount_minor: int = 12999,
    name: str = "Alice Meyer",
) -> VerificationCase:
    """A case (and its order, with its link keys) in any state; None `status` makes a
    cleared order without a case, returned as None."""
    created_at = created_at or NOW - timedelta(hours=2)
    billing = billing or ADDRESS
    shipping = shipping or billing
    keys = link_keys(email=email, card_brand="visa", card_last4=card_last4,
                     cardholder_name=holder, billing_address=billing, shipping_address=shipping,
                     phone=phone)  # fmt: skip
    order = Order(
        external_id=external_id,
        payload_hash="0" * 64,
        source="api",
        placed_at=created_at,
        amount_minor=amount_minor,
        currency="EUR",
        customer_name=name,
        customer_email=email,
        billing_address=billing,
        shipping_address=shipping,
        card_brand="visa",
        card_last4=card_last4,
        cardholder_name=holder,
        created_at=created_at,
        customer_phone=phone,
        ip_address=ip_address,
        device_id=device_id,
        **keys.columns(),
    )
    if status is None:
        session.add(order)
        session.flush()
        return None  # type: ignore[return-value]
    case = VerificationCase(
        order=order,
        status=status,
        reason=reason,
        amount_minor=amount_minor,
        created_at=created_at,
        updated_at=created_at,
        submitted_at=created_at + timedelta(minutes=30) if status == IN_REVIEW else None,
    )
    session.add(case)
    session.flush()
    return case


def jpeg_bytes(color: tuple[int, int, int] = (200, 30, 30), size=(64, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def app_keyring(app) -> Keyring:
    return Keyring.from_config(app.config)


def add_document(
    session: Session,
    app,
    case: VerificationCase,
    kind: str = "card_front",
    *,
    data: bytes | None = None,
    upload_id: str | None = None,
    page: int = 1,
) -> Document:
    """Encrypt a real JPEG with the app's keys and add its Document row."""
    data = data or jpeg_bytes()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    document = Document(
        case_id=case.id,
        kind=kind,
        page=page,
        content_type="image/jpeg",
        source_type="image/jpeg",
        width=width,
        height=height,
        byte_size=len(data),
        created_at=NOW,
    )
    if upload_id:
        document.upload_id = upload_id
    session.add(document)
    session.flush()
    stored = put_blob(app.config["UPLOADS_DIR"], app_keyring(app), document.id, data)
    document.blob_name = stored.blob_name
    document.wrapped_key = stored.wrapped_key
    document.key_id = stored.key_id
    session.flush()
    return document


ALL_YES = {
    "card_name_matches": "yes",
    "card_last4_matches": "yes",
    "id_name_matches": "not_applicable",
    "id_not_expired": "not_applicable",
    "address_matches_and_recent": "not_applicable",
}
