"""Staff sessions on the server (list, sign out one or all others) and the two-factor rule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
from sqlalchemy import func, select, update

from tests.auth_helpers import actions, events, fresh_user
from verifier.staff import totp
from verifier.vault.storage import Keyring
from verifier.web.staff_sessions import (
    ADMINS,
    EVERYONE,
    StaffSession,
    describe_agent,
    two_factor_scope,
)

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)
FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:132.0) Gecko/132.0 Firefox/132.0"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _rows(db_session, user) -> list[StaffSession]:
    db_session.rollback()
    query = select(StaffSession).where(StaffSession.user_id == user.id).order_by(StaffSession.id)
    return list(db_session.scalars(query.execution_options(populate_existing=True)))


def _browser(app, agent: str, address: str):
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": agent, "REMOTE_ADDR": address})
    return client


def test_sign_in_opens_a_row_that_stores_only_a_hash(app, reviewer, login, db_session):
    client = _browser(app, CHROME_MAC, "198.51.100.7")
    login(client, reviewer)
    (row,) = _rows(db_session, reviewer)
    with client.session_transaction() as flask_session:
        token = flask_session["staff_sid"]
    assert token not in row.token_hash and len(row.token_hash) == 64
    assert row.address == "198.51.100.7" and row.ended_at is None
    assert str(describe_agent(row.user_agent)) == "Chrome on macOS"


def test_sessions_page_lists_each_browser_and_marks_this_one(app, reviewer, login):
    desk = _browser(app, CHROME_MAC, "198.51.100.7")
    phone = _browser(app, FIREFOX_ANDROID, "203.0.113.9")
    login(desk, reviewer)
    login(phone, reviewer)
    page = _text(desk.get("/staff/sessions"))
    assert "Chrome on macOS" in page and "Firefox on Android" in page
    assert "198.51.100.7" in page and "203.0.113.9" in page
    assert page.count("this browser") == 1
    assert page.count("Sign out<span") == 1  # only the other browser gets a button
    assert "Sign out every other session" in page


def test_signing_out_another_session_ends_it_at_its_next_request(app, reviewer, login, db_session):
    desk = _browser(app, CHROME_MAC, "198.51.100.7")
    phone = _browser(app, FIREFOX_ANDROID, "203.0.113.9")
    login(desk, reviewer)
    login(phone, reviewer)
    phone_row = _rows(db_session, reviewer)[1]
    response = desk.post(f"/staff/sessions/{phone_row.id}/end")
    assert response.status_code == 302
    assert "That session is signed out" in _text(desk.get("/staff/sessions"))
    gone = phone.get("/review/")
    assert gone.status_code == 302 and "/staff/login" in gone.headers["Location"]
    assert "signed out from your sessions page" in _text(phone.get("/staff/login"))
    assert desk.get("/review/").status_code == 200  # this browser stays in
    assert actions(db_session)[-1] == "staff.session_ended"


def test_nobody_can_end_someone_elses_session(app, reviewer, second_reviewer, login, db_session):
    mine = _browser(app, CHROME_MAC, "198.51.100.7")
    theirs = _browser(app, CHROME_MAC, "198.51.100.8")
    login(mine, reviewer)
    login(theirs, second_reviewer)
    (their_row,) = _rows(db_session, second_reviewer)
    assert mine.post(f"/staff/sessions/{their_row.id}/end").status_code == 404
    assert mine.post("/staff/sessions/999999/end").status_code == 404
    assert theirs.get("/review/").status_code == 200
    assert _rows(db_session, second_reviewer)[0].ended_at is None


def test_this_session_cannot_be_ended_from_the_list(app, reviewer, login, db_session):
    client = _browser(app, CHROME_MAC, "198.51.100.7")
    login(client, reviewer)
    (row,) = _rows(db_session, reviewer)
    client.post(f"/staff/sessions/{row.id}/end")
    assert "use Sign out to end it" in _text(client.get("/staff/sessions"))
    assert client.get("/review/").status_code == 200


def test_sign_out_every_other_session(app, reviewer, login, db_session):
    browsers = [_browser(app, CHROME_MAC, f"198.51.100.{n}") for n in (1, 2, 3)]
    for browser in browsers:
        login(browser, reviewer)
    keep = browsers[0]
    keep.post("/staff/sessions/end-others")
    assert "Signed out 2 other sessions." in _text(keep.get("/staff/sessions"))
    for other in browsers[1:]:
        assert other.get("/review/").status_code == 302
    assert keep.get("/review/").status_code == 200
    (event,) = events(db_session, "staff.sessions_ended")
    assert event.details == {"ended": 2}
    keep.post("/staff/sessions/end-others")
    assert "no other sessions" in _text(keep.get("/staff/sessions"))


def test_ending_a_session_needs_the_csrf_token(app, tmp_path, database_url, reviewer, db_session):
    from tests.auth_helpers import make_app
    from tests.conftest import STAFF_PASSWORDS

    strict = make_app(tmp_path, database_url, WTF_CSRF_ENABLED=True)
    desk, phone = strict.test_client(), strict.test_client()
    for browser in (desk, phone):
        page = _text(browser.get("/staff/login"))
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        browser.post(
            "/staff/login",
            data={"email": reviewer.email, "password": STAFF_PASSWORDS[reviewer.email],
                  "csrf_token": token},
        )  # fmt: skip
    phone_row = _rows(db_session, reviewer)[1]
    desk.post(f"/staff/sessions/{phone_row.id}/end")  # no token
    assert _rows(db_session, reviewer)[1].ended_at is None
    assert phone.get("/review/").status_code == 200


def test_last_seen_moves_at_most_once_a_minute(app, reviewer, login, db_session):
    client = _browser(app, CHROME_MAC, "198.51.100.7")
    login(client, reviewer)
    (row,) = _rows(db_session, reviewer)
    first_seen = row.last_seen_at
    client.get("/review/")
    assert _rows(db_session, reviewer)[0].last_seen_at == first_seen
    earlier = first_seen - timedelta(minutes=5)
    db_session.execute(update(StaffSession).values(last_seen_at=earlier))
    db_session.commit()
    client.get("/review/")
    assert _rows(db_session, reviewer)[0].last_seen_at > earlier


def test_timed_out_and_ended_sessions_leave_the_list(app, reviewer, login, db_session):
    desk = _browser(app, CHROME_MAC, "198.51.100.7")
    stale = _browser(app, FIREFOX_ANDROID, "203.0.113.9")
    login(desk, reviewer)
    login(stale, reviewer)
    stale_row = _rows(db_session, reviewer)[1]
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    db_session.execute(
        update(StaffSession).where(StaffSession.id == stale_row.id).values(last_seen_at=long_ago)
    )
    db_session.commit()
    assert "Firefox on Android" not in _text(desk.get("/staff/sessions"))


def test_password_change_keeps_this_browser_and_ends_the_others(app, reviewer, login, db_session):
    from tests.conftest import STAFF_PASSWORDS

    desk = _browser(app, CHROME_MAC, "198.51.100.7")
    phone = _browser(app, FIREFOX_ANDROID, "203.0.113.9")
    login(desk, reviewer)
    login(phone, reviewer)
    new = "a much longer new passphrase 42"
    response = desk.post(
        "/staff/password",
        data={"current_password": STAFF_PASSWORDS[reviewer.email], "new_password": new,
              "confirm_password": new},
    )  # fmt: skip
    assert response.status_code == 302, _text(response)
    assert desk.get("/review/").status_code == 200
    assert phone.get("/review/").status_code == 302
    page = _text(desk.get("/staff/sessions"))
    assert "Chrome on macOS" in page and "Firefox on Android" not in page


def test_sign_out_closes_the_row(app, reviewer, login, db_session):
    client = _browser(app, CHROME_MAC, "198.51.100.7")
    login(client, reviewer)
    client.post("/staff/logout")
    assert _rows(db_session, reviewer)[0].ended_at is not None


def test_a_session_without_a_row_is_refused(app, reviewer, login, db_session):
    client = _browser(app, CHROME_MAC, "198.51.100.7")
    login(client, reviewer)
    with client.session_transaction() as flask_session:
        flask_session["staff_sid"] = "made-up"
    assert client.get("/review/").status_code == 302


# --- two-factor for every staff member --------------------------------------------------------


def _enrol(client, db_session, user, app):
    page = _text(client.get("/staff/two-factor"))
    secret = re.search(r'class="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    response = client.post("/staff/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302, _text(response)
    return secret


def test_admin_requires_two_factor_of_everyone(app, admin_user, reviewer, login, db_session):
    admin = app.test_client()
    login(admin, admin_user)
    page = _text(admin.get("/admin/staff"))
    assert "2 active staff members have not set it up yet." in page
    response = admin.post("/admin/staff/two-factor-rule", data={"two_factor_for": EVERYONE})
    # The admin has no second factor yet either: straight to setting it up.
    assert response.headers["Location"].endswith("/staff/two-factor")
    assert two_factor_scope(db_session) == EVERYONE
    (event,) = events(db_session, "staff.two_factor_scope")
    assert event.details == {"from": ADMINS, "to": EVERYONE}

    staff = app.test_client()
    login(staff, reviewer)
    blocked = staff.get("/review/")
    assert blocked.status_code == 302 and blocked.headers["Location"].endswith("/staff/two-factor")
    assert "Your team requires two-factor sign-in" in _text(staff.get("/staff/two-factor"))
    assert staff.get("/staff/sessions").status_code == 200  # may still look after themselves
    _enrol(staff, db_session, reviewer, app)
    assert staff.get("/review/").status_code == 200
    assert fresh_user(db_session, reviewer.id).totp_secret


def test_two_factor_cannot_be_turned_off_while_everyone_needs_it(
    app, admin_user, reviewer, login, db_session
):
    from tests.conftest import STAFF_PASSWORDS

    staff = app.test_client()
    login(staff, reviewer)
    _enrol(staff, db_session, reviewer, app)
    admin = app.test_client()
    login(admin, admin_user)
    admin.post("/admin/staff/two-factor-rule", data={"two_factor_for": EVERYONE})
    page = _text(staff.get("/staff/two-factor"))
    assert "stays on" in page and "Turn off two-factor sign-in" not in page
    refused = staff.post("/staff/two-factor", data={"password": STAFF_PASSWORDS[reviewer.email]})
    assert refused.status_code == 422 and "stays on" in _text(refused)
    assert fresh_user(db_session, reviewer.id).totp_secret


def test_rule_back_to_admins_only_frees_reviewers(app, admin_user, reviewer, login, db_session):
    admin = app.test_client()
    login(admin, admin_user)
    admin.post("/admin/staff/two-factor-rule", data={"two_factor_for": EVERYONE})
    _enrol(admin, db_session, admin_user, app)
    response = admin.post("/admin/staff/two-factor-rule", data={"two_factor_for": ADMINS})
    assert response.headers["Location"].endswith("/admin/staff")
    assert "required of admins only" in _text(admin.get("/admin/staff"))
    staff = app.test_client()
    login(staff, reviewer)
    assert staff.get("/review/").status_code == 200
    admin.post("/admin/staff/two-factor-rule", data={"two_factor_for": ADMINS})
    assert "that is already the rule" in _text(admin.get("/admin/staff"))


def test_rule_rejects_unknown_values_and_reviewers(app, admin_user, reviewer, login, db_session):
    admin = app.test_client()
    login(admin, admin_user)
    bad = admin.post("/admin/staff/two-factor-rule", data={"two_factor_for": "nobody"})
    assert bad.status_code == 422 and "Choose admins only or every staff member" in _text(bad)
    staff = app.test_client()
    login(staff, reviewer)
    assert (
        staff.post("/admin/staff/two-factor-rule", data={"two_factor_for": ADMINS}).status_code
        == 403
    )
    assert two_factor_scope(db_session) == ADMINS
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(StaffSession)) == 2


def test_sealed_secret_still_signs_in_under_the_rule(app, admin_user, reviewer, login, db_session):
    staff = app.test_client()
    login(staff, reviewer)
    secret = _enrol(staff, db_session, reviewer, app)
    admin = app.test_client()
    login(admin, admin_user)
    admin.post("/admin/staff/two-factor-rule", data={"two_factor_for": EVERYONE})
    fresh = app.test_client()
    # Wait out the step just used: a code is never accepted twice.
    user = fresh_user(db_session, reviewer.id)
    stored = totp.open_secret(Keyring.from_config(app.config), user.id, user.totp_secret)
    assert stored == secret
    db_session.execute(update(type(user)).values(totp_last_step=None))
    db_session.commit()
    login(fresh, reviewer, code=pyotp.TOTP(secret).now())
    assert fresh.get("/review/").status_code == 200
