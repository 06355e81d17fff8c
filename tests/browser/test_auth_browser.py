"""In real Chromium, with CSRF on: an admin enrols TOTP from the QR page, signs out, signs in
with a code, invites a colleague and reads the audit log, with no CSP violation on the way.
Saves screenshots for the docs (desktop 1280 and phone 390)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from tests.browser_helpers import watch_csp
from tests.conftest import STAFF_PASSWORDS

pytestmark = pytest.mark.browser


def test_admin_two_factor_invite_and_audit(page, live_server, admin_user, screenshot_dir):
    violations = watch_csp(page)
    page.goto(f"{live_server}/staff/login")
    page.get_by_label("Email").fill(admin_user.email)
    page.get_by_label("Password").fill(STAFF_PASSWORDS[admin_user.email])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/staff/login" not in url)

    page.get_by_role("link", name="Two-factor").click()
    expect(page.locator("svg.totp-qr")).to_be_visible()
    page.screenshot(path=screenshot_dir / "auth-two-factor-desktop.png", full_page=True)
    secret = page.locator(".totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Six-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_text("Two-factor sign-in is on")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out")).to_be_visible()
    page.get_by_label("Email").fill(admin_user.email)
    page.get_by_label("Password").fill(STAFF_PASSWORDS[admin_user.email])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/staff/login/code")
    # The enrolment code is spent; the next time step's code is accepted.
    page.get_by_label("Six-digit code").fill(
        pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    )
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/staff/login" not in url)

    page.get_by_role("link", name="Staff", exact=True).click()
    page.get_by_label("Email").fill("colleague@example.test")
    page.get_by_label("Role").last.select_option("reviewer")
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_text("shown only now")).to_be_visible()
    assert len(page.locator(".temp-password").inner_text()) >= 12
    page.screenshot(path=screenshot_dir / "auth-invite-desktop.png", full_page=True)

    page.get_by_role("link", name="Back to staff").click()
    page.screenshot(path=screenshot_dir / "auth-staff-desktop.png", full_page=True)
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Action starts with").fill("staff.")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("td code", has_text="staff.totp_enabled")).to_be_visible()
    expect(page.locator("td code", has_text="staff.created").first).to_be_visible()
    page.screenshot(path=screenshot_dir / "auth-audit-desktop.png", full_page=True)
    assert violations == []


def test_sign_in_on_a_phone(phone_page, live_server, reviewer, screenshot_dir):
    violations = watch_csp(phone_page)
    phone_page.goto(f"{live_server}/staff/login")
    phone_page.get_by_label("Email").fill(reviewer.email)
    phone_page.get_by_label("Password").fill("wrong password")
    phone_page.get_by_role("button", name="Sign in").click()
    expect(phone_page.get_by_role("alert")).to_contain_text("not correct")
    phone_page.screenshot(path=screenshot_dir / "auth-login-phone.png", full_page=True)
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing overflows sideways
    assert violations == []
