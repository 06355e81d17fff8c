"""Passkeys (WebAuthn) as a second sign-in factor beside TOTP, through py_webauthn.

A passkey is registered by a signed-in user and then answers the second step of sign-in in
place of a TOTP code. Only the credential id and its public key are stored (neither is a
secret); the signature counter is kept so a cloned authenticator that reuses old counts is
refused. The relying party is the host the staff pages are served on: browsers allow
WebAuthn over HTTPS, and over plain HTTP only on `localhost`.

A ceremony's challenge waits in the signed session for CHALLENGE_SECONDS and is used once.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from verifier.core.audit import record_event
from verifier.errors import NotFoundError, ValidationError
from verifier.models import Base, StaffUser, utcnow

log = logging.getLogger(__name__)

CHALLENGE_SECONDS = 300
NAME_LENGTH = 60
MAX_PASSKEYS = 10


class StaffPasskey(Base):
    """One WebAuthn credential of a staff user."""

    __tablename__ = "staff_passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url
    public_key: Mapped[str] = mapped_column(String(2000))  # COSE key, base64url
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class PasskeyFailed(Exception):
    """A ceremony that did not verify; `message` is safe to show."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def relying_party(host_url: str) -> tuple[str, str]:
    """(RP id, origin) for the staff pages served at `host_url` ("https://host:port/")."""
    parts = urlsplit(host_url)
    return parts.hostname or "", f"{parts.scheme}://{parts.netloc}"


def passkeys_of(db: Session, user: StaffUser) -> list[StaffPasskey]:
    query = select(StaffPasskey).where(StaffPasskey.user_id == user.id)
    return list(db.scalars(query.order_by(StaffPasskey.created_at, StaffPasskey.id)))


def has_passkey(db: Session, user: StaffUser) -> bool:
    query = select(func.count()).where(StaffPasskey.user_id == user.id)
    return bool(db.scalar(query))


def _descriptors(keys: list[StaffPasskey]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(k.credential_id)) for k in keys]


def _challenge_state(options: Any) -> dict[str, Any]:
    return {"challenge": bytes_to_base64url(options.challenge), "at": int(time.time())}


def _take_challenge(state: dict[str, Any] | None) -> bytes:
    if not state or time.time() - state.get("at", 0) > CHALLENGE_SECONDS:
        raise PasskeyFailed("The passkey request expired. Try again.")
    return base64url_to_bytes(state["challenge"])


def registration_options(
    db: Session, user: StaffUser, *, host_url: str, shop_name: str
) -> tuple[str, dict[str, Any]]:
    """(options JSON for navigator.credentials.create, state to keep in the session)."""
    rp_id, _origin = relying_party(host_url)
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=f"Verifier ({shop_name})",
        user_name=user.email,
        user_id=str(user.id).encode(),
        user_display_name=user.email,
        exclude_credentials=_descriptors(passkeys_of(db, user)),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return options_to_json(options), _challenge_state(options)


def register(
    db: Session,
    user: StaffUser,
    credential: Any,
    name: str,
    *,
    state: dict[str, Any] | None,
    host_url: str,
    now: datetime,
) -> StaffPasskey:
    """Verify a registration response and store the passkey; raises ValidationError for a bad
    name and PasskeyFailed when the browser's answer does not verify."""
    name = (name or "").strip()
    if not name or len(name) > NAME_LENGTH:
        message = (
            f"Give the passkey a name of 1 to {NAME_LENGTH} characters, such as 'Work laptop'."
        )
        raise ValidationError(message, {"name": message})
    if len(passkeys_of(db, user)) >= MAX_PASSKEYS:
        raise PasskeyFailed(f"You have {MAX_PASSKEYS} passkeys already. Remove one first.")
    challenge = _take_challenge(state)
    rp_id, origin = relying_party(host_url)
    try:
        verified = verify_registration_response(
            credential=_as_json(credential),
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        log.info("passkey registration for staff user %s did not verify: %s", user.id, exc)
        raise PasskeyFailed("That passkey could not be checked. Try again.") from None
    key = StaffPasskey(
        user_id=user.id,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        name=name,
        created_at=now,
    )
    db.add(key)
    db.flush()
    record_event(
        db, "staff.passkey_added", actor_type="staff", actor_id=user.id,
        target_type="staff_passkey", target_id=key.id, details={"name": name}, now=now,
    )  # fmt: skip
    return key


def authentication_options(db: Session, user: StaffUser, *, host_url: str):
    """(options JSON for navigator.credentials.get, state to keep), limited to the user's keys."""
    rp_id, _origin = relying_party(host_url)
    options = generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=_descriptors(passkeys_of(db, user)),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json(options), _challenge_state(options)


def authenticate(
    db: Session,
    user: StaffUser,
    credential: Any,
    *,
    state: dict[str, Any] | None,
    host_url: str,
    now: datetime,
) -> StaffPasskey:
    """Verify an assertion from one of the user's passkeys and move its counter on."""
    challenge = _take_challenge(state)
    data = _as_json(credential)
    try:
        raw_id = json.loads(data)["rawId"]
    except (ValueError, KeyError, TypeError):
        raw_id = None
    if not isinstance(raw_id, str) or len(raw_id) > 1400:
        raise PasskeyFailed("That passkey answer was not understood. Try again.")
    key = db.scalar(
        select(StaffPasskey).where(
            StaffPasskey.user_id == user.id, StaffPasskey.credential_id == raw_id
        )
    )
    if key is None:
        raise PasskeyFailed("That passkey is not registered to your account.")
    rp_id, origin = relying_party(host_url)
    try:
        verified = verify_authentication_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=base64url_to_bytes(key.public_key),
            credential_current_sign_count=key.sign_count,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        log.info("passkey sign-in for staff user %s did not verify: %s", user.id, exc)
        raise PasskeyFailed("That passkey could not be checked. Try again.") from None
    key.sign_count = verified.new_sign_count
    key.last_used_at = now
    return key


def remove(db: Session, user: StaffUser, passkey_id: int, *, now: datetime) -> StaffPasskey:
    key = db.get(StaffPasskey, passkey_id)
    if key is None or key.user_id != user.id:
        raise NotFoundError("That passkey is not one of yours.")
    db.delete(key)
    record_event(
        db, "staff.passkey_removed", actor_type="staff", actor_id=user.id,
        target_type="staff_passkey", target_id=passkey_id, details={"name": key.name}, now=now,
    )  # fmt: skip
    return key


def _as_json(credential: Any) -> str:
    if isinstance(credential, str):
        return credential
    return json.dumps(credential)
