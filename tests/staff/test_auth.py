"""Staff sign-in: messages, lock-out, throttling, revocation, timeouts, cookies, TOTP, CSRF."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import update

from tests.auth_helpers import actions, events, fresh_user, make_app, shift_session_clock
from tests.conftest import STAFF_PASSWORDS
from verifier.db import new_session
from verifier.errors import ConfigError
from verifier.models import LoginLock, StaffUser
from verifier.staff import totp
from verifier.staff.logins import (
    LOCK_DURATION,
    MAX_FAILED_LOGINS,
    MAX_FAILED_LOGINS_ACCOUNT,
    SIGN_IN_FAILED,
    SignInFailed,
    check_password_step,
    is_locked,
)
from verifier.web.auth import safe_next

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _post_login(client, email, password, **extra):
    return client.post("/staff/login", data={"email": email, "password": password, **extra})


def _text(response) -> str:
    return response.get_data(as_text=True)


# --- sign-in and its messages ---------------------------------------------------------------


def test_sign_in_lands_on_the_next_page_and_is_audited(client, admin_user, db_session):
    response = _post_login(
        client, admin_user.email, STAFF_PASSWORDS[admin_user.email], next="/admin/audit"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/audit"
    assert client.get("/admin/audit").status_code == 200
    user = fresh_user(db_session, admin_user.id)
    assert user.last_login_at is not None and user.failed_logins == 0
    (event,) = events(db_session, "staff.login")
    assert event.actor_id == str(admin_user.id) and event.details["two_factor"] is False


def test_wrong_password_and_unknown_email_get_the_same_message(client, reviewer, db_session):
    wrong = _post_login(client, reviewer.email, "not-the-password")
    unknown = _post_login(client, "nobody@example.test", "not-the-password")
    assert wrong.status_code == unknown.status_code == 422
    assert SIGN_IN_FAILED in _text(wrong) and SIGN_IN_FAILED in _text(unknown)
    # The pages differ only in the email typed back into the form.
    assert _text(wrong).replace(reviewer.email, "X") == _text(unknown).replace(
        "nobody@example.test", "X"
    )
    failures = events(db_session, "staff.login_failed")
    assert [(e.details["email"], e.details["reason"]) for e in failures] == [
        (reviewer.email, "bad_password"),
        ("nobody@example.test", "unknown_email"),
    ]
    assert all("not-the-password" not in str(e.details) for e in failures)
    with client.session_transaction() as flask_session:
        assert "_user_id" not in flask_session


def test_five_failures_lock_the_account_for_fifteen_minutes(app, reviewer):
    session = new_session(app)
    for attempt in range(5):
        with pytest.raises(SignInFailed):
            check_password_step(
                session, reviewer.email, "wrong", now=NOW + timedelta(seconds=attempt)
            )
    user = session.get(StaffUser, reviewer.id)
    assert is_locked(session, user, NOW + timedelta(minutes=14))
    # Locked: even the right password is refused, with the same message, and not counted.
    with pytest.raises(SignInFailed, match="not correct"):
        check_password_step(
            session, reviewer.email, STAFF_PASSWORDS[reviewer.email], now=NOW + timedelta(minutes=1)
        )
    after = NOW + timedelta(seconds=4) + LOCK_DURATION + timedelta(seconds=1)
    assert not is_locked(session, user, after)
    assert check_password_step(
        session, reviewer.email, STAFF_PASSWORDS[reviewer.email], now=after
    ) is user  # fmt: skip
    session.rollback()
    session.close()


def test_lock_out_over_http_and_sign_in_after_the_lock_ends(client, reviewer, db_session, login):
    for _ in range(5):
        assert _post_login(client, reviewer.email, "wrong password").status_code == 422
    refused = _post_login(client, reviewer.email, STAFF_PASSWORDS[reviewer.email])
    assert refused.status_code == 422 and SIGN_IN_FAILED in _text(refused)
    assert actions(db_session).count("staff.locked") == 1
    lock = db_session.get(LoginLock, (reviewer.id, "127.0.0.1"))
    assert lock is not None and lock.locked_until is not None
    # Fifteen minutes later (the lock's end moved into the past) the password works again.
    db_session.execute(
        update(LoginLock)
        .where(LoginLock.user_id == reviewer.id)
        .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
    )
    db_session.commit()
    login(client, reviewer)
    db_session.expire_all()
    assert db_session.get(LoginLock, (reviewer.id, "127.0.0.1")) is None


def test_an_outsider_cannot_lock_the_real_user_out(app, reviewer):
    # Anyone who knows a staff email can fail its password from their own address: that
    # locks their address out of the account, not the person signing in from elsewhere.
    session = new_session(app)
    password = STAFF_PASSWORDS[reviewer.email]
    for _attempt in range(MAX_FAILED_LOGINS * 3):
        with pytest.raises(SignInFailed):
            check_password_step(session, reviewer.email, "guess", now=NOW, ip="203.0.113.9")
    user = session.get(StaffUser, reviewer.id)
    assert is_locked(session, user, NOW, "203.0.113.9")
    assert not is_locked(session, user, NOW, "198.51.100.7")
    assert check_password_step(session, reviewer.email, password, now=NOW,
                               ip="198.51.100.7") is user  # fmt: skip
    with pytest.raises(SignInFailed):  # the outsider's address stays locked, right or wrong
        check_password_step(session, reviewer.email, password, now=NOW, ip="203.0.113.9")
    session.rollback()
    session.close()


def test_an_attack_spread_over_many_addresses_locks_the_whole_account(app, reviewer):
    session = new_session(app)
    for attempt in range(MAX_FAILED_LOGINS_ACCOUNT):
        with pytest.raises(SignInFailed):
            check_password_step(session, reviewer.email, "guess", now=NOW,
                                ip=f"192.0.2.{attempt}")  # fmt: skip
    user = session.get(StaffUser, reviewer.id)
    assert is_locked(session, user, NOW, "198.51.100.7")  # everywhere, for LOCK_DURATION
    assert not is_locked(session, user, NOW + LOCK_DURATION + timedelta(seconds=1), "198.51.100.7")
    session.rollback()
    session.close()


def test_login_posts_are_throttled_per_address_with_a_friendly_page(
    app, tmp_path, database_url, reviewer
):
    throttled = make_app(tmp_path, database_url, LOGIN_RATE_LIMIT="3/minute")
    client = throttled.test_client()
    for _ in range(3):
        assert _post_login(client, reviewer.email, "wrong password").status_code == 422
    response = _post_login(client, reviewer.email, STAFF_PASSWORDS[reviewer.email])
    assert response.status_code == 429
    assert "Too many requests" in _text(response)
    assert "<html" in _text(response)
    # Only POSTs count: the page itself still opens.
    assert client.get("/staff/login").status_code == 200


# --- session revocation and timeouts ----------------------------------------------------------


def test_sign_out_ends_every_session_of_the_user(app, reviewer, login, db_session):
    first, second = app.test_client(), app.test_client()
    login(first, reviewer)
    login(second, reviewer)
    stolen = first.get_cookie("session").value
    response = first.post("/staff/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login"
    assert first.get("/staff/password").status_code == 302
    following = second.get("/staff/password", follow_redirects=True)
    assert "Your session has ended" in _text(following)
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/staff/password").headers["Location"].startswith("/staff/login")
    assert "staff.logout" in actions(db_session)


def test_password_change_ends_other_sessions_and_keeps_this_one(app, reviewer, login, db_session):
    this, other = app.test_client(), app.test_client()
    login(this, reviewer)
    login(other, reviewer)
    new = "a brand new passphrase"
    response = this.post(
        "/staff/password",
        data={
            "current_password": STAFF_PASSWORDS[reviewer.email],
            "new_password": new,
            "confirm_password": new,
        },
    )
    assert response.status_code == 302
    assert this.get("/staff/password").status_code == 200
    assert other.get("/staff/password").status_code == 302
    assert "staff.password_changed" in actions(db_session)
    third = app.test_client()
    assert _post_login(third, reviewer.email, STAFF_PASSWORDS[reviewer.email]).status_code == 422
    assert _post_login(third, reviewer.email, new).status_code == 302


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"current_password": "wrong", "new_password": "x" * 6 + "yzabcdef"}, "not correct"),
        ({"new_password": "short"}, "at least 12 characters"),
        ({"new_password": "aaaaaaaaaaaaaaaa"}, "too easy to guess"),
        ({"new_password": "one new password", "confirm_password": "other"}, "not the same"),
    ],
)
def test_password_change_explains_what_is_wrong(client, reviewer, login, form, message):
    login(client, reviewer)
    data = {
        "current_password": STAFF_PASSWORDS[reviewer.email],
        "confirm_password": form.get("new_password"),
        **form,
    }
    response = client.post("/staff/password", data=data)
    assert response.status_code == 422
    assert message in _text(response)
    assert 'aria-invalid="true"' in _text(response)


def test_deactivation_ends_the_users_sessions(app, reviewer, admin_user, login):
    reviewer_client, admin_client = app.test_client(), app.test_client()
    login(reviewer_client, reviewer)
    login(admin_client, admin_user)
    assert reviewer_client.get("/staff/password").status_code == 200
    assert admin_client.post(f"/admin/staff/{reviewer.id}/deactivate").status_code == 302
    assert reviewer_client.get("/staff/password").status_code == 302
    response = _post_login(app.test_client(), reviewer.email, STAFF_PASSWORDS[reviewer.email])
    assert response.status_code == 422 and SIGN_IN_FAILED in _text(response)


@pytest.mark.parametrize(
    ("key", "seconds", "expired"),
    [
        ("staff_seen_at", 29 * 60, False),
        ("staff_seen_at", 31 * 60, True),
        ("staff_auth_at", 11 * 3600, False),
        ("staff_auth_at", 12 * 3600 + 60, True),
    ],
)
def test_idle_and_absolute_timeouts(client, reviewer, login, key, seconds, expired):
    login(client, reviewer)
    shift_session_clock(client, key, seconds)
    response = client.get("/staff/password")
    if not expired:
        assert response.status_code == 200
        return
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=/staff/password"
    page = client.get(response.headers["Location"])
    assert "Your session expired" in _text(page)
    with client.session_transaction() as flask_session:
        assert "_user_id" not in flask_session


def test_activity_keeps_an_idle_session_alive(client, reviewer, login):
    login(client, reviewer)
    shift_session_clock(client, "staff_seen_at", 25 * 60)
    assert client.get("/staff/password").status_code == 200
    with client.session_transaction() as flask_session:
        assert datetime.now(UTC).timestamp() - flask_session["staff_seen_at"] < 60


def test_sign_in_starts_a_fresh_session(client, reviewer, login):
    with client.session_transaction() as flask_session:
        flask_session["planted"] = "by someone else"
    login(client, reviewer)
    with client.session_transaction() as flask_session:
        assert "planted" not in flask_session


def _session_cookie_header(response) -> str:
    (header,) = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    return header


def test_session_cookie_flags_in_development(client, reviewer):
    response = _post_login(client, reviewer.email, STAFF_PASSWORDS[reviewer.email])
    header = _session_cookie_header(response)
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "Secure" not in header


def test_session_cookie_is_secure_in_production(app, tmp_path, database_url, reviewer):
    production = make_app(tmp_path, database_url, environ={"VERIFIER_ENV": "production"})
    assert production.config["REQUIRE_ADMIN_2FA"] is True
    client = production.test_client()
    response = client.post(
        "/staff/login",
        data={"email": reviewer.email, "password": STAFF_PASSWORDS[reviewer.email]},
        base_url="https://localhost",
    )
    header = _session_cookie_header(response)
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


def test_session_settings_come_from_the_environment(app, tmp_path, database_url, monkeypatch):
    monkeypatch.setenv("VERIFIER_SESSION_IDLE_MINUTES", "5")
    monkeypatch.setenv("VERIFIER_REQUIRE_ADMIN_2FA", "on")
    configured = make_app(tmp_path, database_url)
    assert configured.config["SESSION_IDLE_MINUTES"] == 5
    assert configured.config["SESSION_MAX_HOURS"] == 12
    assert configured.config["REQUIRE_ADMIN_2FA"] is True
    monkeypatch.setenv("VERIFIER_SESSION_MAX_HOURS", "soon")
    with pytest.raises(ConfigError, match="VERIFIER_SESSION_MAX_HOURS"):
        make_app(tmp_path, database_url)


# --- next, access ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "/staff/logout",
        "\t/admin",
        "",
    ],
)
def test_next_never_leaves_the_site(target):
    assert safe_next(target) is None


def test_next_keeps_a_local_path_and_query():
    assert safe_next("/admin/audit?action=staff.") == "/admin/audit?action=staff."


def test_sign_in_ignores_an_off_site_next(client, reviewer):
    response = _post_login(
        client, reviewer.email, STAFF_PASSWORDS[reviewer.email], next="https://evil.example"
    )
    assert response.status_code == 302
    assert "evil" not in response.headers["Location"]
    assert response.headers["Location"].startswith("/")


def test_anonymous_user_is_sent_to_sign_in_with_next(client):
    response = client.get("/admin/audit?action=staff.")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=/admin/audit?action%3Dstaff."
    page = client.get(response.headers["Location"])
    assert 'name="next" type="hidden" value="/admin/audit?action=staff."' in _text(page)


def test_reviewer_gets_403_on_admin_pages(client, reviewer, login):
    login(client, reviewer)
    response = client.get("/admin/staff")
    assert response.status_code == 403
    assert "You do not have access" in _text(response)


# --- two-factor ------------------------------------------------------------------------------


def _enrol(client) -> str:
    page = client.get("/staff/two-factor")
    assert page.status_code == 200
    assert "<svg" in _text(page) and "<title>QR code" in _text(page)
    with client.session_transaction() as flask_session:
        secret = flask_session["staff_totp_enrol"]
    assert totp.format_secret(secret) in _text(page)
    response = client.post("/staff/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    return secret


def test_totp_enrolment_then_sign_in_with_a_code(app, client, reviewer, login, db_session):
    login(client, reviewer)
    wrong = client.post("/staff/two-factor", data={"code": "000000"})
    assert wrong.status_code == 422 and "does not match" in _text(wrong)
    secret = _enrol(client)
    stored = fresh_user(db_session, reviewer.id).totp_secret
    assert stored.startswith("v1:") and secret not in stored  # sealed (tests/test_totp_at_rest.py)
    assert client.get("/staff/password").status_code == 200  # this session stays signed in

    other = app.test_client()
    step1 = _post_login(other, reviewer.email, STAFF_PASSWORDS[reviewer.email])
    assert step1.headers["Location"] == "/staff/login/code"
    with other.session_transaction() as flask_session:
        assert "_user_id" not in flask_session  # not signed in before the code
    bad = other.post("/staff/login/code", data={"code": "123456"})
    assert bad.status_code == 422 and "not correct" in _text(bad)
    # The code just used for enrolment cannot be used again; the next step's code works.
    next_code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    ok = other.post("/staff/login/code", data={"code": next_code})
    assert ok.status_code == 302 and "/staff/login" not in ok.headers["Location"]
    assert other.get("/staff/password").status_code == 200
    assert actions(db_session)[-2:] == ["staff.login_failed", "staff.login"]
    assert "staff.totp_enabled" in actions(db_session)


def test_a_totp_code_is_accepted_only_once():
    secret = totp.new_secret()
    code = pyotp.TOTP(secret).at(NOW)
    step = totp.matching_step(secret, code, NOW, None)
    assert step is not None
    assert totp.matching_step(secret, code, NOW, step) is None
    assert totp.matching_step(secret, code, NOW + timedelta(seconds=30), None) == step
    assert totp.matching_step(secret, code, NOW + timedelta(minutes=2), None) is None
    assert totp.matching_step(secret, "12345", NOW, None) is None


def test_disabling_two_factor_needs_the_password(client, reviewer, login, db_session):
    login(client, reviewer)
    _enrol(client)
    wrong = client.post("/staff/two-factor", data={"password": "wrong"})
    assert wrong.status_code == 422 and "not correct" in _text(wrong)
    ok = client.post("/staff/two-factor", data={"password": STAFF_PASSWORDS[reviewer.email]})
    assert ok.status_code == 302
    assert fresh_user(db_session, reviewer.id).totp_secret is None
    assert "staff.totp_disabled" in actions(db_session)


def test_admin_pages_require_two_factor_when_configured(
    app, tmp_path, database_url, admin_user, login
):
    strict = make_app(tmp_path, database_url, REQUIRE_ADMIN_2FA=True)
    client = strict.test_client()
    login(client, admin_user)
    response = client.get("/admin/staff")
    assert response.status_code == 302 and response.headers["Location"] == "/staff/two-factor"
    _enrol(client)
    assert client.get("/admin/staff").status_code == 200
    # An admin cannot turn it off while it is required.
    kept = client.post("/staff/two-factor", data={"password": STAFF_PASSWORDS[admin_user.email]})
    assert kept.status_code == 422 and "must keep" in _text(kept)


# --- CSRF ------------------------------------------------------------------------------------


def test_login_and_logout_without_csrf_token_are_refused(app, tmp_path, database_url, reviewer):
    protected = make_app(tmp_path, database_url, WTF_CSRF_ENABLED=True)
    client = protected.test_client()
    password = STAFF_PASSWORDS[reviewer.email]
    refused = _post_login(client, reviewer.email, password)
    assert refused.status_code == 400
    assert "<html" in _text(refused)

    page = _text(client.get("/staff/login"))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert _post_login(client, reviewer.email, password, csrf_token=token).status_code == 302
    assert client.post("/staff/logout").status_code == 400
    assert client.get("/staff/password").status_code == 200  # still signed in


def test_a_password_typed_into_the_email_field_is_not_audited(client, db_session):
    from sqlalchemy import select

    from verifier.models import AuditEvent

    client.post("/staff/login", data={"email": "hunter2-Secret!", "password": "x"})
    client.post("/staff/login", data={"email": "nobody@example.test", "password": "x"})
    db_session.rollback()
    typed = [
        e.details["email"]
        for e in db_session.scalars(
            select(AuditEvent).where(AuditEvent.action == "staff.login_failed")
        )
    ]
    assert "hunter2-Secret!" not in str(typed)
    assert "nobody@example.test" in typed
    assert "(not an email address)" in typed
