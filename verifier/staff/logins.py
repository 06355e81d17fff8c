"""Staff sign-in: password and TOTP checks, failed-attempt counting, lock-out, sign-out."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session, object_session

from verifier.core.audit import record_event
from verifier.errors import VerifierError
from verifier.models import LoginLock, StaffUser
from verifier.staff import totp
from verifier.staff.users import hash_password, verify_password
from verifier.vault.secretbox import SecretUnreadable
from verifier.vault.storage import Keyring
from verifier.web import passkeys

_LOOKS_LIKE_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
log = logging.getLogger(__name__)

MAX_FAILED_LOGINS = 5  # from one address: that address is locked out of that account
# From all addresses together: the account is locked everywhere (an attack spread over many
# addresses). Far above what one person mistyping reaches, so an outsider needs a botnet.
MAX_FAILED_LOGINS_ACCOUNT = 50
LOCK_DURATION = timedelta(minutes=15)
UNKNOWN_ADDRESS = "unknown"
# One message for every failed password step: it must not tell whether the email exists,
# whether the account is locked or deactivated, or which of email and password was wrong.
SIGN_IN_FAILED = (
    "The email or password is not correct, or the account is locked for 15 minutes after "
    "5 failed attempts. Try again, or ask an admin to reset your password."
)
CODE_FAILED = "That code is not correct, or it has been used already. Wait for the next code."
CODE_UNCHECKABLE = (
    "Your two-factor code cannot be checked for this account. Ask an admin to reset your "
    "two-factor sign-in, then set it up again."
)


class SignInFailed(VerifierError):
    """A sign-in step failed; the message is safe to show and reveals nothing about accounts.

    `code` is "wrong_code" when only the TOTP code was wrong and the user may try another.
    """

    code = "sign_in_failed"
    status = 401


@cache
def _dummy_hash() -> str:
    # Unknown emails are checked against this, so they take as long as known ones.
    return hash_password(secrets.token_urlsafe(24))


def is_locked(session: Session, user: StaffUser, now: datetime, ip: str | None = None) -> bool:
    """Whether `user` may not sign in from `ip` now: that address, or the account, is locked."""
    if user.locked_until is not None and user.locked_until > now:
        return True
    lock = session.get(LoginLock, (user.id, _address(ip)))
    return lock is not None and lock.locked_until is not None and lock.locked_until > now


def _address(ip: str | None) -> str:
    return (ip or UNKNOWN_ADDRESS)[:64]


def clear_login_locks(session: Session, user: StaffUser) -> None:
    """Forget every failed attempt and lock of `user` (a reset, a reactivation, a sign-in)."""
    user.failed_logins = 0
    user.locked_until = None
    session.execute(delete(LoginLock).where(LoginLock.user_id == user.id))


def _lock_row(session: Session, query: Select[StaffUser]) -> StaffUser | None:
    # FOR UPDATE serialises concurrent attempts on one account, so no failure goes uncounted.
    return session.scalar(query.with_for_update())


def check_password_step(
    session: Session, email: str, password: str, *, now: datetime, ip: str | None = None
) -> StaffUser:
    """The active, unlocked user that `password` matches; else counts and audits the failure
    (locking the account at the fifth) and raises SignInFailed."""
    given = (email or "").strip()[:254]
    user = None
    if given:
        user = _lock_row(
            session, select(StaffUser).where(func.lower(StaffUser.email) == given.lower())
        )
    if user is None:
        verify_password(_dummy_hash(), password)
        _audit_failure(session, None, given, "unknown_email", now, ip)
        raise SignInFailed(SIGN_IN_FAILED)
    matches = verify_password(user.password_hash, password)
    if is_locked(session, user, now, ip):
        _audit_failure(session, user, given, "locked", now, ip)
    elif not user.active:
        _audit_failure(session, user, given, "inactive", now, ip)
    elif not matches:
        _count_failure(session, user, given, "bad_password", now, ip)
    else:
        return user
    raise SignInFailed(SIGN_IN_FAILED)


def check_code_step(
    session: Session,
    user_id: int,
    session_version: int,
    code: str,
    *,
    keyring: Keyring,
    now: datetime,
    ip: str | None = None,
) -> StaffUser:
    """The user whose password step passed, once `code` is their current, unused TOTP code
    (the stored secret opened with `keyring`); a wrong code counts as a failed attempt.
    Raises SignInFailed."""
    user = _lock_row(session, select(StaffUser).where(StaffUser.id == user_id))
    if (
        user is None
        or not user.active
        or not user.totp_secret
        or user.session_version != session_version
    ):
        raise SignInFailed("Sign in again.")
    if is_locked(session, user, now, ip):
        _audit_failure(session, user, user.email, "locked", now, ip)
        raise SignInFailed(SIGN_IN_FAILED)
    try:
        secret = totp.open_secret(keyring, user.id, user.totp_secret)
    except SecretUnreadable as exc:
        # Not the user's fault, so not counted towards the lock; an admin resets two-factor.
        log.error(
            "Staff user %s cannot sign in with a code: their TOTP secret does not open. %s "
            "An admin can reset their two-factor sign-in.",
            user.id,
            exc.message,
        )
        _audit_failure(session, user, user.email, "totp_unreadable", now, ip)
        raise SignInFailed(CODE_UNCHECKABLE) from None
    step = totp.matching_step(secret, code, now, user.totp_last_step)
    if step is None:
        _count_failure(session, user, user.email, "bad_code", now, ip)
        if is_locked(session, user, now, ip):
            raise SignInFailed(SIGN_IN_FAILED)
        raise SignInFailed(CODE_FAILED, code="wrong_code")
    user.totp_last_step = step
    return user


def check_passkey_step(
    session: Session,
    user_id: int,
    session_version: int,
    credential: object,
    *,
    state: dict[str, object] | None,
    host_url: str,
    now: datetime,
    ip: str | None = None,
) -> StaffUser:
    """The user whose password step passed, once `credential` is a valid assertion from one of
    their passkeys for the challenge in `state`; a failed one counts as a failed attempt.
    Raises SignInFailed."""
    user = _lock_row(session, select(StaffUser).where(StaffUser.id == user_id))
    if user is None or not user.active or user.session_version != session_version:
        raise SignInFailed("Sign in again.")
    if is_locked(session, user, now, ip):
        _audit_failure(session, user, user.email, "locked", now, ip)
        raise SignInFailed(SIGN_IN_FAILED)
    try:
        passkeys.authenticate(session, user, credential, state=state, host_url=host_url, now=now)
    except passkeys.PasskeyFailed as exc:
        _count_failure(session, user, user.email, "bad_passkey", now, ip)
        if is_locked(session, user, now, ip):
            raise SignInFailed(SIGN_IN_FAILED) from None
        raise SignInFailed(exc.message, code="wrong_code") from None
    return user


def needs_code(user: StaffUser) -> bool:
    """Whether sign-in asks for a second factor: a TOTP code or a passkey."""
    if user.totp_secret:
        return True
    session = object_session(user)
    return session is not None and passkeys.has_passkey(session, user)


def complete_sign_in(
    session: Session, user: StaffUser, *, now: datetime, ip: str | None = None
) -> None:
    """Reset the failure counters, note the sign-in time and audit `staff.login`."""
    clear_login_locks(session, user)
    user.last_login_at = now
    record_event(
        session, "staff.login", actor_type="staff", actor_id=user.id, target_type="staff",
        target_id=user.id, details={"ip": ip, "two_factor": needs_code(user)}, now=now,
    )  # fmt: skip


def sign_out(session: Session, user: StaffUser, *, now: datetime) -> None:
    """End every session of `user` (the session version moves on) and audit `staff.logout`."""
    user.session_version += 1
    record_event(
        session, "staff.logout", actor_type="staff", actor_id=user.id, target_type="staff",
        target_id=user.id, now=now,
    )  # fmt: skip


def _count_failure(
    session: Session, user: StaffUser, given: str, reason: str, now: datetime, ip: str | None
) -> None:
    """Count a failure for this account from this address, and for the account; lock the
    address at MAX_FAILED_LOGINS, the whole account at MAX_FAILED_LOGINS_ACCOUNT. The
    caller holds the user row FOR UPDATE, so concurrent attempts are counted one by one."""
    _audit_failure(session, user, given, reason, now, ip)
    address = _address(ip)
    lock = session.get(LoginLock, (user.id, address))
    if lock is None:
        lock = LoginLock(user_id=user.id, address=address, failures=0, last_failure_at=now)
        session.add(lock)
    lock.failures = (lock.failures or 0) + 1
    lock.last_failure_at = now
    if lock.failures >= MAX_FAILED_LOGINS:
        lock.locked_until = now + LOCK_DURATION
        lock.failures = 0  # after the lock, five fresh attempts
        record_event(
            session, "staff.locked", actor_type="system", target_type="staff", target_id=user.id,
            details={"until": lock.locked_until.isoformat(), "ip": ip, "scope": "address"},
            now=now,
        )  # fmt: skip
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= MAX_FAILED_LOGINS_ACCOUNT:
        user.locked_until = now + LOCK_DURATION
        user.failed_logins = 0
        record_event(
            session, "staff.locked", actor_type="system", target_type="staff", target_id=user.id,
            details={"until": user.locked_until.isoformat(), "ip": ip, "scope": "account"},
            now=now,
        )  # fmt: skip


def _audit_failure(
    session: Session,
    user: StaffUser | None,
    given: str,
    reason: str,
    now: datetime,
    ip: str | None,
) -> None:
    # The email as typed is kept (it shows guessing); the password never is. Something that is
    # not an email address may be a password typed into the wrong field: it is not kept.
    typed = given if _LOOKS_LIKE_EMAIL.match(given or "") else "(not an email address)"
    record_event(
        session, "staff.login_failed", actor_type="staff", target_type="staff",
        target_id=None if user is None else user.id,
        details={"email": typed, "reason": reason, "ip": ip}, now=now,
    )  # fmt: skip
