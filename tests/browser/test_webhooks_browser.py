"""In real Chromium, with CSRF on: an admin adds a webhook endpoint, copies its secret (shown
once), sends a test ping to a real receiver (port 5111) and sees it delivered, rotates the
secret and deletes the endpoint, with no CSP violation. Saves screenshots for the docs."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.notify_helpers import WebhookReceiver

pytestmark = pytest.mark.browser
PORT = 5111


def test_admin_manages_an_endpoint_and_pings_it(page, live_server, admin_user, sign_in,
                                                 screenshot_dir):  # fmt: skip
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)  # fmt: skip
    sign_in(page, admin_user)
    page.goto(f"{live_server}/admin/webhooks/")
    page.get_by_role("link", name="Add an endpoint").click()
    page.get_by_label("Endpoint URL").fill("ftp://nope")
    page.get_by_role("button", name="Add the endpoint").click()
    expect(page.get_by_text("Enter a full http(s) address").first).to_be_visible()
    page.get_by_label("Endpoint URL").fill(f"http://127.0.0.1:{PORT}/hooks/verifier")
    page.get_by_label("Description (optional)").fill("order system")
    page.get_by_role("button", name="Add the endpoint").click()
    expect(page.get_by_text("Copy it now: it is shown only this once.")).to_be_visible()
    secret = page.locator("#secret").inner_text()
    assert secret.startswith("whsec_")
    page.screenshot(path=screenshot_dir / "webhook-endpoint-secret.png", full_page=True)
    page.get_by_role("link", name="Done").click()

    with WebhookReceiver(secret, port=PORT) as shop:
        page.get_by_role("button", name="Send test ping").click()
        expect(page.get_by_text("The test ping was delivered (HTTP 204")).to_be_visible()
    assert shop.requests[0].verified

    page.goto(f"{live_server}/admin/webhooks/")
    expect(page.get_by_text("order system")).to_be_visible()
    page.screenshot(path=screenshot_dir / "webhook-endpoints.png", full_page=True)
    page.get_by_role("link", name=f"http://127.0.0.1:{PORT}/hooks/verifier").click()
    page.get_by_role("button", name="Rotate the secret").click()
    expect(page.get_by_text("The secret is rotated")).to_be_visible()
    assert page.locator("#secret").inner_text() != secret
    page.get_by_role("link", name="Done").click()
    page.get_by_role("link", name="Delete this endpoint…").click()
    page.get_by_role("button", name="Delete the endpoint").click()
    expect(page.get_by_text("Tick the box to confirm the deletion.")).to_be_visible()
    page.get_by_label("Yes, delete this endpoint").check()
    page.get_by_role("button", name="Delete the endpoint").click()
    expect(page.get_by_text("is deleted and its secrets erased")).to_be_visible()
    assert violations == []
