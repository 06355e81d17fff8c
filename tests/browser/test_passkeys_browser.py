"""Passkeys in real Chromium with its virtual authenticator (DevTools' WebAuthn domain): add one
on the two-factor page, sign in with it, and the team rule accepts it as a second factor.

WebAuthn needs a secure context: plain HTTP counts as one on `localhost` only, so these tests
open the live server by that name."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.auth_helpers import events
from tests.conftest import STAFF_PASSWORDS
from verifier.web.passkeys import StaffPasskey
from verifier.web.staff_sessions import EVERYONE, set_two_factor_scope

pytestmark = pytest.mark.browser


@pytest.fixture
def base(live_server) -> str:
    return live_server.replace("127.0.0.1", "localhost")


@pytest.fixture
def authenticator(page):
    """A virtual platform authenticator that answers at once, user verified."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp


def _password_step(page, base, user):
    page.goto(f"{base}/staff/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(STAFF_PASSWORDS[user.email])
    page.get_by_role("button", name="Sign in").click()


def _add_passkey(page, base, name):
    page.goto(f"{base}/staff/two-factor")
    page.get_by_label("Name for the new passkey").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text(f"Passkey \u201c{name}\u201d added")).to_be_visible()


def test_add_a_passkey_then_sign_in_with_it(page, base, authenticator, reviewer, db_session):
    _password_step(page, base, reviewer)
    page.wait_for_url(lambda url: "/staff/login" not in url)
    # No name: the page says so and asks the authenticator nothing.
    page.goto(f"{base}/staff/two-factor")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Give the passkey a name first")).to_be_visible()
    _add_passkey(page, base, "Work laptop")
    expect(page.locator(".passkey-list")).to_contain_text("Work laptop")
    (key,) = db_session.scalars(select(StaffPasskey)).all()
    assert key.user_id == reviewer.id and key.last_used_at is None

    page.get_by_role("button", name="Sign out").click()
    _password_step(page, base, reviewer)
    page.wait_for_url("**/staff/login/code")
    expect(page.get_by_role("heading", name="Use your passkey")).to_be_visible()
    expect(page.get_by_label("Six-digit code")).to_have_count(0)  # no TOTP app set up
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url("**/review/**")
    db_session.rollback()
    key = db_session.scalars(select(StaffPasskey).execution_options(populate_existing=True)).one()
    assert key.last_used_at is not None
    assert events(db_session, "staff.login")[-1].details["two_factor"] is True
    assert [e.details["name"] for e in events(db_session, "staff.passkey_added")] == ["Work laptop"]


def test_a_passkey_satisfies_the_team_rule_and_cannot_be_removed_last(
    page, base, authenticator, reviewer, admin_user, db_session
):
    _password_step(page, base, reviewer)
    page.wait_for_url(lambda url: "/staff/login" not in url)
    set_two_factor_scope(db_session, EVERYONE, actor=admin_user, now=reviewer.created_at)
    db_session.commit()
    page.goto(f"{base}/review/")
    page.wait_for_url("**/staff/two-factor")
    expect(page.get_by_text("Your team requires two-factor sign-in")).to_be_visible()
    _add_passkey(page, base, "Phone")
    page.goto(f"{base}/review/")
    assert "/review/" in page.url  # the passkey counts as the second factor
    page.goto(f"{base}/staff/two-factor")
    expect(page.get_by_text("your only second factor")).to_be_visible()
    expect(page.get_by_role("button", name="Remove Phone")).to_have_count(0)


def test_a_passkey_from_another_site_is_refused(browser, live_server, reviewer, db_session):
    """The same virtual authenticator on 127.0.0.1 (not a valid WebAuthn host): the browser
    refuses, and the page says why instead of failing silently."""
    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                     "hasUserVerification": True, "isUserVerified": True,
                     "automaticPresenceSimulation": True}},
    )  # fmt: skip
    _password_step(page, live_server, reviewer)
    page.wait_for_url(lambda url: "/staff/login" not in url)
    page.goto(f"{live_server}/staff/two-factor")
    page.get_by_label("Name for the new passkey").fill("Laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("[data-passkey-error]")).to_be_visible()
    assert db_session.scalars(select(StaffPasskey)).all() == []
    context.close()
