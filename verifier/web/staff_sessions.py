"""Staff sessions held on the server, and the staff-wide security setting.

The session cookie stays a signed Flask cookie; it now also names a row here by a random id
(only its SHA-256 is stored). A session lives while its row is open, the user's session
version still matches and the idle and age limits hold; ending the row from the sessions page
signs that browser out at its next request. `last_seen_at` is written at most once a minute,
so a busy reviewer does not cost a write per page.

The security setting says who must sign in with two factors: admins only (the environment's
REQUIRE_ADMIN_2FA decides whether even that applies) or every staff member.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from verifier.core.audit import record_event
from verifier.errors import NotFoundError, ValidationError
from verifier.models import Base, StaffUser, utcnow

TOUCH_EVERY = timedelta(minutes=1)
AGENT_LENGTH = 200

ADMINS = "admins"
EVERYONE = "everyone"
TWO_FACTOR_SCOPES = (ADMINS, EVERYONE)


class StaffSession(Base):
    """One signed-in browser of a staff user."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(AGENT_LENGTH))
    ended_at: Mapped[datetime | None]


class StaffSecurity(Base):
    """The one row of staff-wide security settings (absent means the defaults)."""

    __tablename__ = "staff_security"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint(f"two_factor_for IN ('{ADMINS}', '{EVERYONE}')", name="two_factor_for"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    two_factor_for: Mapped[str] = mapped_column(String(12), default=ADMINS)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    db: Session, user: StaffUser, *, now: datetime, address: str | None, agent: str | None
) -> str:
    """Record a new signed-in browser for `user`; returns the token its cookie carries."""
    token = secrets.token_urlsafe(32)
    db.add(
        StaffSession(
            user_id=user.id,
            token_hash=_digest(token),
            session_version=user.session_version,
            created_at=now,
            last_seen_at=now,
            address=(address or None) and address[:64],
            user_agent=(agent or None) and agent[:AGENT_LENGTH],
        )
    )
    return token


def live_session(db: Session, user: StaffUser, token: str | None) -> StaffSession | None:
    """The open row behind this cookie's token, or None when it was ended or never existed."""
    if not token:
        return None
    row = db.scalar(select(StaffSession).where(StaffSession.token_hash == _digest(token)))
    if (
        row is None
        or row.user_id != user.id
        or row.ended_at is not None
        or row.session_version != user.session_version
    ):
        return None
    return row


def touch(db: Session, row: StaffSession, now: datetime) -> bool:
    """Move `last_seen_at` on when it is a minute old; True when a write is pending."""
    if now - row.last_seen_at < TOUCH_EVERY:
        return False
    row.last_seen_at = now
    return True


def active_sessions(
    db: Session, user: StaffUser, *, seen_since: datetime, started_since: datetime
) -> list[StaffSession]:
    """The user's open sessions, newest first, leaving out those past the idle limit (not seen
    since `seen_since`) or the absolute one (started before `started_since`)."""
    query = (
        select(StaffSession)
        .where(
            StaffSession.user_id == user.id,
            StaffSession.ended_at.is_(None),
            StaffSession.session_version == user.session_version,
            StaffSession.last_seen_at >= seen_since,
            StaffSession.created_at >= started_since,
        )
        .order_by(StaffSession.last_seen_at.desc(), StaffSession.id.desc())
    )
    return list(db.scalars(query))


def end_session(db: Session, user: StaffUser, session_id: int, *, now: datetime) -> StaffSession:
    """Sign one of the user's own sessions out; raises NotFoundError for anyone else's."""
    row = db.get(StaffSession, session_id)
    if row is None or row.user_id != user.id:
        raise NotFoundError("That session is not one of yours.")
    if row.ended_at is None:
        row.ended_at = now
        record_event(
            db, "staff.session_ended", actor_type="staff", actor_id=user.id,
            target_type="staff_session", target_id=row.id, now=now,
        )  # fmt: skip
    return row


def end_other_sessions(db: Session, user: StaffUser, keep_id: int, *, now: datetime) -> int:
    """Sign out every open session of the user but `keep_id`; returns how many ended."""
    result = db.execute(
        update(StaffSession)
        .where(
            StaffSession.user_id == user.id,
            StaffSession.id != keep_id,
            StaffSession.ended_at.is_(None),
        )
        .values(ended_at=now)
    )
    ended = result.rowcount or 0  # type: ignore[attr-defined]
    record_event(
        db, "staff.sessions_ended", actor_type="staff", actor_id=user.id,
        target_type="staff", target_id=user.id, details={"ended": ended}, now=now,
    )  # fmt: skip
    return ended


def close_by_token(db: Session, token: str | None, now: datetime) -> None:
    """Mark this browser's row ended (sign-out)."""
    if token:
        db.execute(
            update(StaffSession)
            .where(StaffSession.token_hash == _digest(token), StaffSession.ended_at.is_(None))
            .values(ended_at=now)
        )


@dataclass(frozen=True)
class Device:
    browser: str
    system: str

    def __str__(self) -> str:
        return f"{self.browser} on {self.system}"


_BROWSERS = (
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_agent(agent: str | None) -> Device:
    """A short, honest name for the browser behind a User-Agent header."""
    text = agent or ""
    browser = next((name for mark, name in _BROWSERS if mark in text), "Unknown browser")
    system = next((name for mark, name in _SYSTEMS if mark in text), "an unknown system")
    return Device(browser, system)


def two_factor_scope(db: Session) -> str:
    """Who must use two-factor sign-in: ADMINS or EVERYONE."""
    return db.scalar(select(StaffSecurity.two_factor_for).where(StaffSecurity.id == 1)) or ADMINS


def set_two_factor_scope(db: Session, scope: str, *, actor: StaffUser, now: datetime) -> bool:
    """Change who must use two-factor sign-in; True when it changed. Audited."""
    if scope not in TWO_FACTOR_SCOPES:
        raise ValidationError(
            "Choose who must use two-factor sign-in.",
            {"two_factor_for": "Choose admins only or every staff member."},
        )
    row = db.get(StaffSecurity, 1)
    before = row.two_factor_for if row is not None else ADMINS
    if before == scope:
        return False
    if row is None:
        row = StaffSecurity(id=1)
        db.add(row)
    row.two_factor_for = scope
    row.updated_at = now
    row.updated_by = actor.id
    record_event(
        db, "staff.two_factor_scope", actor_type="staff", actor_id=actor.id,
        target_type="staff_security", target_id=1, details={"from": before, "to": scope}, now=now,
    )  # fmt: skip
    return True


def carry_over(db: Session, token: str, user: StaffUser) -> None:
    """Keep this browser's row open after the user's own change moved their version on."""
    db.execute(
        update(StaffSession)
        .where(StaffSession.token_hash == _digest(token), StaffSession.ended_at.is_(None))
        .values(session_version=user.session_version)
    )
