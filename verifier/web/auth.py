"""Staff sessions on the Flask side: Flask-Login, revocation, timeouts, access decorators.

A signed-in session holds the user's id, the user's `session_version` at sign-in and two
timestamps. Every request reloads the user and ends the session when the account is inactive,
the version has moved on (sign-out, password change, deactivation), the session has been idle
too long or has reached its absolute lifetime. It also names its row in `staff_sessions`
(verifier.web.staff_sessions) by a random token: ending that row from the sessions page signs the
browser out at its next request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from verifier.db import get_session
from verifier.errors import ConfigError
from verifier.models import StaffUser
from verifier.web import passkeys, staff_sessions

SESSION_VERSION_KEY = "staff_sv"
AUTH_AT_KEY = "staff_auth_at"
SEEN_AT_KEY = "staff_seen_at"
SESSION_TOKEN_KEY = "staff_sid"  # noqa: S105 (a session key name, not a secret)
# Keys this module owns; sign-out removes them and leaves other blueprints' keys alone.
STAFF_SESSION_KEYS = (
    SESSION_VERSION_KEY,
    AUTH_AT_KEY,
    SEEN_AT_KEY,
    SESSION_TOKEN_KEY,
    "staff_pending",
    "staff_totp_enrol",
    "staff_passkey_challenge",
)

DEFAULT_IDLE_MINUTES = 30
DEFAULT_MAX_HOURS = 12
# Pages a user who must change their password may still open.
PASSWORD_CHANGE_ENDPOINTS = frozenset({"staff.password", "staff.logout"})
# Pages a user who must set up two-factor sign-in may still open.
ENROL_ENDPOINTS = PASSWORD_CHANGE_ENDPOINTS | {
    "staff.two_factor",
    "staff.sessions",
    "staff.passkey_options",
    "staff.passkey_add",
}

login_manager = LoginManager()
F = TypeVar("F", bound=Callable[..., Any])


class SignedInStaff(UserMixin):
    """Flask-Login's view of a staff user; the models stay free of Flask."""

    def __init__(self, user: StaffUser):
        self.user = user

    def get_id(self) -> str:
        return str(self.user.id)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {raw!r}")
    return int(raw)


def init_auth(app: Flask) -> None:
    """Set up Flask-Login, per-request session checks and the `has_endpoint` Jinja global.

    Settings (app config, else VERIFIER_* environment, else default): SESSION_IDLE_MINUTES (30),
    SESSION_MAX_HOURS (12), REQUIRE_ADMIN_2FA (on in production, off in development).
    """
    production = app.config.get("ENV_NAME") == "production"
    app.config.setdefault(
        "SESSION_IDLE_MINUTES", _env_int("VERIFIER_SESSION_IDLE_MINUTES", DEFAULT_IDLE_MINUTES)
    )
    app.config.setdefault(
        "SESSION_MAX_HOURS", _env_int("VERIFIER_SESSION_MAX_HOURS", DEFAULT_MAX_HOURS)
    )
    raw_2fa = os.environ.get("VERIFIER_REQUIRE_ADMIN_2FA", "").strip().lower()
    app.config.setdefault(
        "REQUIRE_ADMIN_2FA", raw_2fa in {"1", "true", "yes", "on"} if raw_2fa else production
    )
    # Sessions are signed cookies: never readable by scripts, not sent on cross-site POSTs,
    # HTTPS-only in production. The remember-me cookie is never set, but gets the same flags.
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=app.config["SESSION_COOKIE_SECURE"],
    )
    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(redirect_to_login)
    app.before_request(_enforce_session)
    app.jinja_env.globals.update(
        has_endpoint=has_endpoint, first_endpoint=first_endpoint, current_staff=current_staff
    )


def _now_ts() -> int:
    return int(datetime.now(UTC).timestamp())


def _load_user(user_id: str) -> SignedInStaff | None:
    try:
        user = get_session().get(StaffUser, int(user_id))
    except ValueError:
        return None
    if user is None or not user.active or user.session_version != session.get(SESSION_VERSION_KEY):
        return None
    return SignedInStaff(user)


def _enforce_session() -> None:
    """End a revoked or timed-out session before the view runs; the view then sees no user."""
    if "_user_id" not in session or request.endpoint == "static" or request.blueprint == "api":
        return
    if not current_user.is_authenticated:
        end_staff_session()
        flash("Your session has ended. Please sign in again.", "info")
        return
    now = _now_ts()
    idle_limit = current_app.config["SESSION_IDLE_MINUTES"] * 60
    max_age = current_app.config["SESSION_MAX_HOURS"] * 3600
    seen_at = session.get(SEEN_AT_KEY, 0)
    auth_at = session.get(AUTH_AT_KEY, 0)
    if now - seen_at > idle_limit or now - auth_at > max_age or auth_at > now + 60:
        end_staff_session()
        flash("Your session expired. Please sign in again.", "info")
        return
    db = get_session()
    row = staff_sessions.live_session(db, current_user.user, session.get(SESSION_TOKEN_KEY))
    if row is None:
        end_staff_session()
        flash("This session was signed out from your sessions page. Please sign in again.", "info")
        return
    g.staff_session_id = row.id
    if staff_sessions.touch(db, row, datetime.now(UTC)):
        db.commit()
    session[SEEN_AT_KEY] = now


def start_staff_session(user: StaffUser) -> None:
    """Sign `user` in with a fresh session: nothing from before sign-in is carried over."""
    session.clear()
    login_user(SignedInStaff(user))
    now = _now_ts()
    db = get_session()
    session[SESSION_TOKEN_KEY] = staff_sessions.open_session(
        db, user, now=datetime.now(UTC), address=request.remote_addr,
        agent=request.headers.get("User-Agent"),
    )  # fmt: skip
    db.commit()
    session[SESSION_VERSION_KEY] = user.session_version
    session[AUTH_AT_KEY] = now
    session[SEEN_AT_KEY] = now


def keep_staff_session(user: StaffUser) -> None:
    """Keep this session valid after the user's own change moved their session version on."""
    session[SESSION_VERSION_KEY] = user.session_version
    token = session.get(SESSION_TOKEN_KEY)
    if token:
        db = get_session()
        staff_sessions.carry_over(db, token, user)
        db.commit()


def end_staff_session() -> None:
    """Forget the signed-in user in this browser (other blueprints' session keys stay)."""
    logout_user()
    for key in STAFF_SESSION_KEYS:
        session.pop(key, None)


def current_staff() -> StaffUser | None:
    """The signed-in staff user of this request, or None."""
    principal = current_user
    if principal is None or not principal.is_authenticated:
        return None
    return principal.user


def signed_in_staff() -> StaffUser:
    """The signed-in staff user, in a request that staff_guard or admin_guard let through."""
    user = current_staff()
    assert user is not None  # the guard sent everyone else to the sign-in page
    return user


def has_endpoint(name: str) -> bool:
    """Whether a view is registered under `name` (navigation links only for pages that exist)."""
    return name in current_app.view_functions


def first_endpoint(*names: str) -> str | None:
    """The first of `names` that is a registered view, or None (for navigation links)."""
    return next((name for name in names if has_endpoint(name)), None)


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None: sign-in never redirects elsewhere."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return None
    if target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    if parts.path.startswith(("/staff/login", "/staff/logout")):
        return None
    return target


def redirect_to_login():
    """A 302 to the sign-in page that brings the user back to this page afterwards."""
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("staff.login", next=safe_next(target)))


def default_landing(user: StaffUser) -> str:
    """Where a user goes after signing in when no `next` was asked for."""
    if user.password_changed_at is None:
        return url_for("staff.password")
    if has_endpoint("review.queue"):
        return url_for("review.queue")
    if user.role == "admin":
        return url_for("admin.staff")
    return url_for("home.index")


def staff_guard():
    """None when a signed-in staff user may go on; otherwise the response to send instead."""
    user = current_staff()
    if user is None:
        return redirect_to_login()
    if user.password_changed_at is None and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        flash("Choose your own password before you continue.", "info")
        return redirect(url_for("staff.password"))
    enrol_page = request.endpoint in ENROL_ENDPOINTS
    if not enrol_page and everyone_needs_two_factor() and not has_second_factor(user):
        flash("Your team requires two-factor sign-in. Set it up to continue.", "info")
        return redirect(url_for("staff.two_factor"))
    return None


def has_second_factor(user: StaffUser) -> bool:
    """Whether `user` signs in with a second factor: a TOTP app or at least one passkey."""
    if user.totp_secret:
        return True
    cache = g.setdefault("staff_has_passkey", {})
    if user.id not in cache:
        cache[user.id] = passkeys.has_passkey(get_session(), user)
    return cache[user.id]


def current_session_id() -> int | None:
    """The `staff_sessions` row of this request's session (None when signed out)."""
    return g.get("staff_session_id")


def everyone_needs_two_factor() -> bool:
    """Whether the admin setting requires two-factor sign-in of every staff member."""
    if "staff_two_factor_scope" not in g:
        g.staff_two_factor_scope = staff_sessions.two_factor_scope(get_session())
    return g.staff_two_factor_scope == staff_sessions.EVERYONE


def two_factor_required(user: StaffUser) -> bool:
    """Whether `user` must sign in with two factors: every staff member when the admin
    setting says so, admins when REQUIRE_ADMIN_2FA is on."""
    admin_rule = user.role == "admin" and current_app.config["REQUIRE_ADMIN_2FA"]
    return admin_rule or everyone_needs_two_factor()


def acts_as_admin(user) -> bool:
    """Whether `user` may use admin powers now: an admin, with two-factor when it is required."""
    return (
        user is not None
        and user.role == "admin"
        and (not two_factor_required(user) or has_second_factor(user))
    )


def admin_guard():
    """Like `staff_guard` for admins only: a reviewer gets 403; an admin without two-factor is
    sent to enrol when REQUIRE_ADMIN_2FA is on."""
    denied = staff_guard()
    if denied is not None:
        return denied
    user = signed_in_staff()
    if user.role != "admin":
        abort(403)
    if current_app.config["REQUIRE_ADMIN_2FA"] and not has_second_factor(user):
        flash("Admin pages need two-factor sign-in. Set it up to continue.", "info")
        return redirect(url_for("staff.two_factor"))
    return None


def staff_required(view: F) -> F:
    """Let signed-in reviewers and admins through; anonymous users go to the sign-in page."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        return staff_guard() or view(*args, **kwargs)

    return cast(F, wrapped)


def admin_required(view: F) -> F:
    """Let signed-in admins through; reviewers get 403, anonymous users the sign-in page."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        return admin_guard() or view(*args, **kwargs)

    return cast(F, wrapped)
