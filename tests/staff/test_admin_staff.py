"""Admin staff pages: access table, invitations, forced password change, role and status."""

from __future__ import annotations

import re

import pytest

from tests.auth_helpers import actions, events, fresh_user
from tests.conftest import STAFF_PASSWORDS
from verifier.staff.users import verify_password


def _text(response) -> str:
    return response.get_data(as_text=True)


def _temporary_password(page: str) -> str:
    return re.search(r'<code class="temp-password">([^<]+)</code>', page).group(1)


ROUTES = [
    ("GET", "/admin/staff"),
    ("POST", "/admin/staff"),
    ("GET", "/admin/audit"),
    ("POST", "/admin/staff/1/deactivate"),
    ("POST", "/admin/staff/1/reactivate"),
    ("POST", "/admin/staff/1/role"),
    ("POST", "/admin/staff/1/reset-password"),
    ("POST", "/admin/staff/1/reset-two-factor"),
    ("GET", "/staff/password"),
    ("GET", "/staff/two-factor"),
]
# role -> expected status for (admin pages, staff pages)
EXPECTED = {"anonymous": (302, 302), "reviewer": (403, 200), "admin": (None, 200)}


@pytest.mark.parametrize("role", ["anonymous", "reviewer", "admin"])
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_access_table(client, reviewer, admin_user, login, role, method, path):
    if role != "anonymous":
        login(client, reviewer if role == "reviewer" else admin_user)
    response = client.open(path, method=method, data={})
    admin_status, staff_status = EXPECTED[role]
    expected = admin_status if path.startswith("/admin/") else staff_status
    if expected is None:  # an admin gets the page or a form's answer, never a refusal
        assert response.status_code in {200, 302, 404, 409, 422}
        assert not response.headers.get("Location", "").startswith("/staff/")
        return
    assert response.status_code == expected
    if expected == 302:
        assert response.headers["Location"].startswith("/staff/login")


def test_staff_list_shows_each_user(client, admin_user, reviewer, login):
    login(client, admin_user)
    page = _text(client.get("/admin/staff"))
    assert reviewer.email in page and admin_user.email in page
    assert "never" in page  # the reviewer has not signed in yet
    assert "(you)" in page


def test_invited_user_must_choose_a_password_at_first_sign_in(
    app, client, admin_user, login, db_session
):
    login(client, admin_user)
    response = client.post(
        "/admin/staff", data={"email": "New.Person@Example.test", "role": "reviewer"}
    )
    assert response.status_code == 200
    password = _temporary_password(_text(response))
    assert "shown only now" in _text(response)
    assert password not in _text(client.get("/admin/staff"))
    invited = events(db_session, "staff.created")[-1]
    assert invited.actor_type == "staff" and invited.actor_id == str(admin_user.id)
    assert invited.details == {"email": "new.person@example.test", "role": "reviewer"}

    newcomer = app.test_client()
    step = newcomer.post(
        "/staff/login", data={"email": "new.person@example.test", "password": password}
    )
    assert step.status_code == 302 and step.headers["Location"] == "/staff/password"
    # Every other staff page sends them back to choose a password first.
    assert newcomer.get("/staff/two-factor").headers["Location"] == "/staff/password"
    chosen = "my own good passphrase"
    done = newcomer.post(
        "/staff/password",
        data={"current_password": password, "new_password": chosen, "confirm_password": chosen},
    )
    assert done.status_code == 302
    assert newcomer.get("/staff/two-factor").status_code == 200


def test_inviting_an_existing_email_explains_the_conflict(client, admin_user, reviewer, login):
    login(client, admin_user)
    response = client.post("/admin/staff", data={"email": reviewer.email, "role": "admin"})
    assert response.status_code == 409
    assert "already exists" in _text(response)


def test_admin_cannot_deactivate_or_demote_themselves(client, admin_user, login, db_session):
    login(client, admin_user)
    response = client.post(f"/admin/staff/{admin_user.id}/deactivate")
    assert response.status_code == 409
    assert "cannot deactivate" in _text(response)
    response = client.post(f"/admin/staff/{admin_user.id}/role", data={"role": "reviewer"})
    assert response.status_code == 409
    assert "cannot change your own role" in _text(response)
    user = fresh_user(db_session, admin_user.id)
    assert user.active and user.role == "admin"


def test_role_change_and_reactivation(client, admin_user, reviewer, login, db_session):
    login(client, admin_user)
    assert (
        client.post(f"/admin/staff/{reviewer.id}/role", data={"role": "admin"}).status_code == 302
    )
    assert fresh_user(db_session, reviewer.id).role == "admin"
    client.post(f"/admin/staff/{reviewer.id}/deactivate")
    assert fresh_user(db_session, reviewer.id).active is False
    page = client.post(f"/admin/staff/{reviewer.id}/reactivate", follow_redirects=True)
    assert "can sign in again" in _text(page)
    assert fresh_user(db_session, reviewer.id).active is True
    assert actions(db_session)[-3:] == [
        "staff.role_changed",
        "staff.deactivated",
        "staff.reactivated",
    ]


def test_password_reset_gives_a_new_temporary_password(
    app, client, admin_user, reviewer, login, db_session
):
    reviewer_client = app.test_client()
    login(reviewer_client, reviewer)
    login(client, admin_user)
    response = client.post(f"/admin/staff/{reviewer.id}/reset-password")
    password = _temporary_password(_text(response))
    assert reviewer_client.get("/staff/password").status_code == 302  # signed out
    old = reviewer_client.post(
        "/staff/login", data={"email": reviewer.email, "password": STAFF_PASSWORDS[reviewer.email]}
    )
    assert old.status_code == 422
    new = reviewer_client.post("/staff/login", data={"email": reviewer.email, "password": password})
    assert new.headers["Location"] == "/staff/password"
    assert "staff.password_reset" in actions(db_session)


def test_reset_two_factor_for_a_lost_phone(client, admin_user, reviewer, login, db_session):
    db_user = fresh_user(db_session, reviewer.id)
    db_user.totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    db_session.commit()
    login(client, admin_user)
    assert "Reset two-factor" in _text(client.get("/admin/staff"))
    response = client.post(f"/admin/staff/{reviewer.id}/reset-two-factor")
    assert response.status_code == 302
    assert fresh_user(db_session, reviewer.id).totp_secret is None
    assert "staff.totp_reset" in actions(db_session)


def test_navigation_shows_links_by_role(app, client, admin_user, reviewer, login):
    anonymous = _text(app.test_client().get("/"))
    assert "Staff sign in" in anonymous and "Sign out" not in anonymous
    login(client, reviewer)
    page = _text(client.get("/staff/password"))
    assert reviewer.email in page and "Sign out" in page
    assert 'href="/admin/staff"' not in page and 'href="/admin/audit"' not in page
    admin = app.test_client()
    login(admin, admin_user)
    page = _text(admin.get("/staff/password"))
    assert 'href="/admin/staff"' in page and 'href="/admin/audit"' in page


def test_cli_resets_a_password_and_two_factor(runner, reviewer, db_session):
    db_user = fresh_user(db_session, reviewer.id)
    db_user.totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    db_session.commit()
    result = runner.invoke(args=["reset-two-factor", reviewer.email])
    assert result.exit_code == 0, result.output
    assert fresh_user(db_session, reviewer.id).totp_secret is None
    result = runner.invoke(args=["reset-password", reviewer.email.upper()])
    assert result.exit_code == 0, result.output
    password = result.output.strip().splitlines()[-1]
    user = fresh_user(db_session, reviewer.id)
    assert user.password_changed_at is None
    assert verify_password(user.password_hash, password)
    reset = events(db_session, "staff.password_reset")[-1]
    assert (reset.actor_type, reset.actor_id) == ("cli", "cli")
    assert password not in str(reset.details)
    unknown = runner.invoke(args=["reset-password", "nobody@example.test"])
    assert unknown.exit_code != 0 and "no staff user" in unknown.output
