"""The shop's brand as its customers see it: name, logo, contact, and who emails come from.

One row (id 1), edited by an admin on the settings pages and read by every customer page and
email. Unset fields fall back to the installation's settings (VERIFIER_SHOP_NAME and
VERIFIER_MAIL_FROM), so a fresh install reads sensibly before anyone has set a brand.

The logo is a public asset, not a secret: customers see it before they are known (on the
invalid-link page too), so it is kept in the database (every host serves the same bytes) as a
small PNG that Pillow re-encoded from the upload, never as the bytes the admin sent.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr, parseaddr
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError
from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from verifier.core.audit import record_event
from verifier.core.checks import EMAIL_RE
from verifier.errors import ValidationError
from verifier.models import Base

BRAND_ROW = 1
MAX_NAME = 80
MAX_URL = 300
LOGO_MAX_UPLOAD_BYTES = 2 * 1024 * 1024
LOGO_MAX_PIXELS = 16_000_000  # decoded size refused before decoding (decompression bombs)
LOGO_BOX = (480, 160)  # the largest the header shows it, at 2x for sharp screens
LOGO_MAX_STORED_BYTES = 200 * 1024
LOGO_FORMATS = ("PNG", "JPEG", "WEBP")
BRAND_FIELDS = ("shop_name", "support_email", "support_url", "sender_name", "reply_to")


class ShopBrand(Base):
    """The brand row: every text field optional (None falls back to the defaults)."""

    __tablename__ = "shop_brand"

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_name: Mapped[str | None] = mapped_column(String(MAX_NAME))
    support_email: Mapped[str | None] = mapped_column(String(254))
    support_url: Mapped[str | None] = mapped_column(String(MAX_URL))
    sender_name: Mapped[str | None] = mapped_column(String(MAX_NAME))
    reply_to: Mapped[str | None] = mapped_column(String(254))
    logo_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_digest: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime | None]
    updated_by: Mapped[str | None] = mapped_column(String(254))


@dataclass(frozen=True)
class Brand:
    """The effective brand: what customer pages and emails show."""

    shop_name: str
    support_email: str | None = None
    support_url: str | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    logo_digest: str | None = None  # names the logo's public URL; None: no logo

    def sender(self, mail_from: str) -> str:
        """The From header: the configured address under the brand's sender name."""
        name = self.sender_name or self.shop_name
        return formataddr((name, parseaddr(mail_from)[1]))

    @property
    def support_host(self) -> str | None:
        return urlsplit(self.support_url).hostname if self.support_url else None


def load_brand(session: Session, default_name: str) -> Brand:
    """The brand in force; `default_name` (VERIFIER_SHOP_NAME) when no name was set."""
    row = session.get(ShopBrand, BRAND_ROW)
    if row is None:
        return Brand(shop_name=default_name)
    return Brand(
        shop_name=row.shop_name or default_name,
        support_email=row.support_email,
        support_url=row.support_url,
        sender_name=row.sender_name,
        reply_to=row.reply_to,
        logo_digest=row.logo_digest if row.logo_png else None,
    )


def brand_values(session: Session) -> dict[str, str]:
    """The stored text fields as the form shows them ("" for unset)."""
    row = session.get(ShopBrand, BRAND_ROW)
    return {name: (getattr(row, name) or "") if row else "" for name in BRAND_FIELDS}


def load_logo(session: Session, digest: str) -> bytes | None:
    """The logo's PNG bytes if `digest` names the logo in force, else None."""
    row = session.get(ShopBrand, BRAND_ROW)
    if row is None or row.logo_png is None or row.logo_digest != digest:
        return None
    return row.logo_png


def validate_brand(values: dict[str, Any]) -> dict[str, str | None]:
    """Check and normalise the text fields; raises ValidationError naming each bad field."""
    errors: dict[str, str] = {}
    clean: dict[str, str | None] = {}
    for name in BRAND_FIELDS:
        text = str(values.get(name) or "").strip()
        clean[name] = text or None
        if not text:
            continue
        if any(ord(c) < 32 for c in text):
            errors[name] = "Use one line of text, without control characters."
        elif name in ("shop_name", "sender_name") and len(text) > MAX_NAME:
            errors[name] = f"Use at most {MAX_NAME} characters."
        elif name in ("support_email", "reply_to") and not EMAIL_RE.match(text):
            errors[name] = "Give an email address such as help@example.com."
        elif name == "support_url" and not _is_web_address(text):
            errors[name] = "Give a web address that starts with https:// (or http://)."
    if errors:
        raise ValidationError("Some brand settings are not valid.", errors)
    return clean


def _is_web_address(text: str) -> bool:
    parts = urlsplit(text)
    return (len(text) <= MAX_URL and parts.scheme in ("https", "http") and bool(parts.hostname)
            and not re.search(r"\s", text))  # fmt: skip


def reencode_logo(data: bytes) -> bytes:
    """A small PNG of an uploaded logo (PNG, JPEG or WebP): decoded, shrunk, metadata dropped.

    Raises ValidationError (field `logo`) for anything else, a huge image, or a result over
    the stored cap.
    """
    if not data:
        raise ValidationError("Choose a logo file.", {"logo": "Choose a logo file."})
    if len(data) > LOGO_MAX_UPLOAD_BYTES:
        raise _logo_error("The logo file is too large: send one under 2 MB.")
    try:
        with Image.open(io.BytesIO(data), formats=LOGO_FORMATS) as image:
            if image.width * image.height > LOGO_MAX_PIXELS:
                raise _logo_error("The logo has too many pixels: send one under 16 megapixels.")
            image.load()
            frame = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise _logo_error("The logo must be a PNG, JPEG or WebP image.") from None
    frame.thumbnail(LOGO_BOX)
    out = io.BytesIO()
    frame.save(out, format="PNG", optimize=True)
    png = out.getvalue()
    if len(png) > LOGO_MAX_STORED_BYTES:
        raise _logo_error("The logo is too detailed to keep small: try a simpler image.")
    return png


def _logo_error(message: str) -> ValidationError:
    return ValidationError(message, {"logo": message})


def save_brand(
    session: Session,
    values: dict[str, Any],
    *,
    logo: bytes | None,
    remove_logo: bool,
    actor_label: str,
    actor_id: int | None,
    now: datetime,
) -> list[str]:
    """Validate and store the brand (logo: re-encoded PNG bytes or None to keep it); audited.

    Returns the names of the fields that changed (empty: nothing was written).
    """
    clean = validate_brand(values)
    row = session.get(ShopBrand, BRAND_ROW) or ShopBrand(id=BRAND_ROW)
    changed = [name for name in BRAND_FIELDS if getattr(row, name) != clean[name]]
    for name in changed:
        setattr(row, name, clean[name])
    if logo is not None:
        digest = hashlib.sha256(logo).hexdigest()[:16]
        if digest != row.logo_digest:
            row.logo_png, row.logo_digest = logo, digest
            changed.append("logo")
    elif remove_logo and row.logo_png is not None:
        row.logo_png, row.logo_digest = None, None
        changed.append("logo")
    if not changed:
        return []
    session.add(row)
    row.updated_at, row.updated_by = now, actor_label
    session.flush()
    record_event(
        session, "settings.brand_changed", actor_type="staff", actor_id=actor_id,
        target_type="brand", target_id=BRAND_ROW, details={"fields": changed}, now=now,
    )  # fmt: skip
    return changed
