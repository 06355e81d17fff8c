"""Staff accounts: Argon2id password hashes, roles, creation."""

from __future__ import annotations

import re
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.errors import ConflictError, ValidationError
from verifier.models import ROLES, StaffUser

MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id with RFC 9106 parameters
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_strength(password: str) -> None:
    """Raise ValidationError when the password is too short or trivially weak."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"Use at least {MIN_PASSWORD_LENGTH} characters.",
            {"password": f"Use at least {MIN_PASSWORD_LENGTH} characters."},
        )
    if len(set(password)) < 5:
        raise ValidationError(
            "That password is too easy to guess.", {"password": "Use more varied characters."}
        )


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL_RE.match(email) or len(email) > 254:
        raise ValidationError("Give a valid email address.", {"email": "Not an email address."})
    return email


def find_user(session: Session, email: str) -> StaffUser | None:
    return session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == email.lower()))


def create_user(
    session: Session,
    email: str,
    role: str,
    password: str,
    *,
    now: datetime,
    actor: str | int = "cli",
    actor_type: str = "cli",
    must_change_password: bool = False,
) -> StaffUser:
    """Add a staff user; raises ValidationError for bad input, ConflictError if the email exists.

    `must_change_password` (an invitation's temporary password) leaves password_changed_at
    empty, which sends the user to the password page at the first sign-in.
    """
    email = normalise_email(email)
    if role not in ROLES:
        raise ValidationError(f"Role must be one of {', '.join(ROLES)}.", {"role": "Unknown role."})
    check_password_strength(password)
    if find_user(session, email) is not None:
        raise ConflictError(f"A staff user with email {email} already exists.")
    user = StaffUser(
        email=email,
        role=role,
        password_hash=hash_password(password),
        created_at=now,
        password_changed_at=None if must_change_password else now,
    )
    session.add(user)
    session.flush()
    record_event(
        session, "staff.created", actor_type=actor_type, actor_id=actor, target_type="staff",
        target_id=user.id, details={"email": email, "role": role}, now=now,
    )  # fmt: skip
    return user
