"""Browser fixtures: the app served by a real HTTP server, and a real Chromium driven by Playwright.

    live_server    base URL ("http://127.0.0.1:PORT") of the app fixture, served in a thread
    browser        one headless Chromium for the whole run (/usr/bin/chromium)
    page           a fresh desktop page (1280 x 800) in its own context: no shared cookies
    phone_page     a fresh phone page (390 x 844, touch)
    sign_in        sign_in(page, user): signs a staff user in through the real sign-in form

The `app` fixture is redefined here with CSRF protection on, as in production: every form
the browser submits carries its token. Mark browser tests with `@pytest.mark.browser`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from tests.conftest import STAFF_PASSWORDS, _empty_tables, make_environ
from verifier import create_app

CHROMIUM = os.environ.get("VERIFIER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def app(tmp_path, database_url):
    """The app with CSRF on (the shared fixture turns it off for form tests)."""
    (tmp_path / "uploads").mkdir()
    app = create_app({"ENVIRON": make_environ(tmp_path, database_url), "TESTING": True})
    yield app
    _empty_tables(app)
    app.extensions["verifier.engine"].dispose()


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """Serve `app` on a free port of 127.0.0.1 for the length of one test."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _page(browser: Browser, **options) -> Iterator[Page]:
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    yield from _page(browser, viewport=DESKTOP)


@pytest.fixture
def phone_page(browser) -> Iterator[Page]:
    yield from _page(browser, viewport=PHONE, is_mobile=True, has_touch=True,
                     device_scale_factor=2)  # fmt: skip


@pytest.fixture
def sign_in(live_server):
    """`sign_in(page, user)`: sign in through the form and wait to leave the sign-in page."""

    def _sign_in(page: Page, user, password: str | None = None) -> None:
        page.goto(f"{live_server}/staff/login")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(password or STAFF_PASSWORDS[user.email])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/staff/login" not in url)

    return _sign_in


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    """Where tests save screenshots: docs/screenshots/ with VERIFIER_UPDATE_SCREENSHOTS=1
    (`make screenshots`), a temporary folder otherwise, so a test run leaves the tree clean."""
    if os.environ.get("VERIFIER_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path
