"""Builders for the retention tests: orders, cases and real encrypted documents."""

from __future__ import annotations

import io
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy.orm import Session

from verifier.db import new_session
from verifier.models import Document, Order, UploadLink, VerificationCase, new_uuid
from verifier.vault.storage import Keyring, put_blob

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def jpeg_bytes(seed: int = 0) -> bytes:
    """A small real JPEG whose pixels differ by seed (so every document has its own bytes)."""
    image = Image.new("RGB", (48, 32), (seed * 37 % 256, 90, 160))
    for x in range(0, 48, 4):
        image.putpixel((x, seed % 32), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def keyring_of(app) -> Keyring:
    return Keyring.from_config(app.config)


def factory(app):
    return lambda: new_session(app)


def make_case(
    session: Session,
    external_id: str,
    status: str,
    *,
    decided_at: datetime | None = None,
    updated_at: datetime = NOW - 40 * DAY,
    link_expires_at: datetime | None = None,
    email: str = "alice@example.com",
    created_at: datetime = NOW - 50 * DAY,
    with_case: bool = True,
) -> VerificationCase | Order:
    """An order (and its case unless ``with_case`` is False); flushed, not committed."""
    address = {"line1": "1 High Street", "city": "London", "postcode": "SW1A 1AA",
               "country": "GB"}  # fmt: skip
    order = Order(
        external_id=external_id,
        payload_hash=secrets.token_hex(32),
        source="api",
        placed_at=created_at,
        amount_minor=12999,
        currency="EUR",
        customer_name="Alice Meyer",
        customer_email=email,
        billing_address=dict(address),
        shipping_address=dict(address),
        card_brand="visa",
        card_last4="4242",
        cardholder_name="Alice Meyer",
        created_at=created_at,
    )
    session.add(order)
    if not with_case:
        session.flush()
        return order
    case = VerificationCase(
        order=order,
        status=status,
        reason="random",
        created_at=created_at,
        updated_at=updated_at,
        decided_at=decided_at,
    )
    session.add(case)
    if link_expires_at is not None:
        session.add(
            UploadLink(
                case=case,
                token_hash=secrets.token_hex(32),
                created_at=created_at,
                expires_at=link_expires_at,
            )
        )
    session.flush()
    return case


def add_document(
    session: Session,
    uploads: Path,
    keyring: Keyring,
    case: VerificationCase,
    kind: str = "card_front",
    *,
    status: str = "active",
    seed: int = 0,
) -> Document:
    """Encrypt a real JPEG into the store and add its row (flushed, not committed)."""
    doc_id = new_uuid()
    data = jpeg_bytes(seed)
    blob = put_blob(uploads, keyring, doc_id, data)
    doc = Document(
        id=doc_id,
        case_id=case.id,
        kind=kind,
        status=status,
        blob_name=blob.blob_name,
        wrapped_key=blob.wrapped_key,
        key_id=blob.key_id,
        content_type="image/jpeg",
        source_type="image/jpeg",
        width=48,
        height=32,
        byte_size=len(data),
        created_at=case.created_at,
    )
    session.add(doc)
    session.flush()
    return doc


def blob_path(uploads: Path, blob_name: str) -> Path:
    return uploads / blob_name[:2] / blob_name


def stored_files(uploads: Path) -> list[Path]:
    return sorted(p for p in uploads.rglob("*") if p.is_file())


def plaintext_on_disk(uploads: Path, plaintexts: list[bytes]) -> bool:
    """Whether any file under ``uploads`` holds any of the plaintexts (or a JPEG header)."""
    for path in stored_files(uploads):
        raw = path.read_bytes()
        if b"JFIF" in raw or any(p in raw for p in plaintexts):
            return True
    return False
