"""Staff account management: invitations, roles, deactivation, passwords and two-factor."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import ROLES, StaffUser
from verifier.staff import totp
from verifier.staff.logins import clear_login_locks
from verifier.staff.users import (
    check_password_strength,
    create_user,
    hash_password,
    verify_password,
)
from verifier.vault.storage import Keyring
from verifier.web.passkeys import StaffPasskey


def list_staff(session: Session) -> list[StaffUser]:
    """Every staff user, admins first, then by email."""
    return list(session.scalars(select(StaffUser).order_by(StaffUser.role, StaffUser.email)))


def get_staff(session: Session, user_id: int) -> StaffUser:
    """The staff user with `user_id`; raises NotFoundError."""
    user = session.get(StaffUser, user_id)
    if user is None:
        raise NotFoundError("There is no such staff user.")
    return user


def temporary_password() -> str:
    """A one-time password for an invitation or a reset (about 96 bits)."""
    while True:
        password = secrets.token_urlsafe(12)
        try:
            check_password_strength(password)
        except ValidationError:
            continue
        return password


def invite_user(
    session: Session, email: str, role: str, *, actor: StaffUser, now: datetime
) -> tuple[StaffUser, str]:
    """Create a staff user with a temporary password that must be changed at first sign-in.

    Returns the user and the password, which is shown once and never stored in clear.
    Raises ValidationError or ConflictError.
    """
    password = temporary_password()
    user = create_user(
        session, email, role, password, now=now, actor=actor.id, actor_type="staff",
        must_change_password=True,
    )  # fmt: skip
    return user, password


def reset_password(
    session: Session, user_id: int, *, actor: StaffUser | None, now: datetime
) -> tuple[StaffUser, str]:
    """Give a user a new temporary password, end their sessions and lift any lock.

    `actor` None means the operator's command line.
    """
    user = get_staff(session, user_id)
    password = temporary_password()
    user.password_hash = hash_password(password)
    user.password_changed_at = None
    clear_login_locks(session, user)
    user.session_version += 1
    _audit(session, "staff.password_reset", actor, user, now)
    return user, password


def set_active(
    session: Session, user_id: int, active: bool, *, actor: StaffUser, now: datetime
) -> StaffUser:
    """Deactivate (ending every session) or reactivate a user; raises ConflictError for oneself."""
    user = get_staff(session, user_id)
    if user.id == actor.id:
        raise ConflictError("You cannot deactivate or reactivate your own account.")
    if user.active == active:
        return user
    user.active = active
    user.session_version += 1
    clear_login_locks(session, user)
    _audit(session, "staff.reactivated" if active else "staff.deactivated", actor, user, now)
    return user


def change_role(
    session: Session, user_id: int, role: str, *, actor: StaffUser, now: datetime
) -> StaffUser:
    """Make a user a reviewer or an admin; raises ValidationError, or ConflictError for oneself."""
    if role not in ROLES:
        raise ValidationError("Choose reviewer or admin.", {"role": "Unknown role."})
    user = get_staff(session, user_id)
    if user.id == actor.id:
        raise ConflictError("You cannot change your own role; ask another admin.")
    if user.role != role:
        old, user.role = user.role, role
        _audit(session, "staff.role_changed", actor, user, now, {"from": old, "to": role})
    return user


def reset_two_factor(
    session: Session, user_id: int, *, actor: StaffUser | None, now: datetime
) -> StaffUser:
    """Remove a user's TOTP and passkeys (a lost phone) and end their sessions; `actor` None
    is the CLI."""
    user = get_staff(session, user_id)
    removed = session.execute(delete(StaffPasskey).where(StaffPasskey.user_id == user.id))
    passkeys_removed = removed.rowcount or 0  # type: ignore[attr-defined]
    if user.totp_secret or passkeys_removed:
        user.totp_secret = None
        user.totp_last_step = None
        user.session_version += 1
        _audit(session, "staff.totp_reset", actor, user, now, {"passkeys": passkeys_removed})
    return user


def change_password(
    session: Session, user: StaffUser, current: str, new: str, *, now: datetime
) -> None:
    """Set a new password once `current` matches, and end every session of the user (the
    caller keeps its own by storing the new session version). Raises ValidationError."""
    if not verify_password(user.password_hash, current):
        message = "Your current password is not correct."
        raise ValidationError(message, {"current_password": message})
    try:
        check_password_strength(new)
    except ValidationError as exc:
        raise ValidationError(exc.message, {"new_password": exc.message}) from None
    if new == current:
        message = "Choose a password different from the current one."
        raise ValidationError(message, {"new_password": message})
    user.password_hash = hash_password(new)
    user.password_changed_at = now
    user.session_version += 1
    _audit(session, "staff.password_changed", user, user, now)


def enable_two_factor(
    session: Session, user: StaffUser, secret: str, code: str, *, keyring: Keyring, now: datetime
) -> None:
    """Turn TOTP on once `code` proves the app holds `secret`, which is stored sealed under the
    current master key; ends the user's other sessions. Raises ValidationError for a wrong code.
    """
    step = totp.matching_step(secret, code, now, None)
    if step is None:
        message = "That code does not match. Check the time on your phone and try the next code."
        raise ValidationError(message, {"code": message})
    user.totp_secret = totp.seal_secret(keyring, user.id, secret)
    user.totp_last_step = step
    user.session_version += 1
    _audit(session, "staff.totp_enabled", user, user, now)


def disable_two_factor(
    session: Session,
    user: StaffUser,
    password: str,
    *,
    now: datetime,
    admins_need_it: bool,
    everyone_needs_it: bool = False,
) -> None:
    """Turn TOTP off once `password` matches; ends the user's other sessions.

    Raises ValidationError for a wrong password, ConflictError for a user who must keep it.
    """
    if admins_need_it and user.role == "admin":
        raise ConflictError("Admins must keep two-factor sign-in on.")
    if everyone_needs_it:
        raise ConflictError("Your team requires two-factor sign-in, so it stays on.")
    if not verify_password(user.password_hash, password):
        message = "Your password is not correct."
        raise ValidationError(message, {"password": message})
    user.totp_secret = None
    user.totp_last_step = None
    user.session_version += 1
    _audit(session, "staff.totp_disabled", user, user, now)


def _audit(
    session: Session,
    action: str,
    actor: StaffUser | None,
    user: StaffUser,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    record_event(
        session, action, actor_type="cli" if actor is None else "staff",
        actor_id="cli" if actor is None else actor.id, target_type="staff",
        target_id=user.id, details={"email": user.email} | (details or {}), now=now,
    )  # fmt: skip
