"""In real Chromium, with CSRF on: an admin reads the purge schedule, puts a case on legal hold,
downloads its evidence PDF and erases a customer, with no CSP violation on the way.
Saves screenshots for the docs (desktop 1280 and phone 390)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_helpers import watch_csp
from tests.retention_helpers import add_document, keyring_of, make_case
from verifier.core.settings import Settings
from verifier.db import new_session
from verifier.retention.purge import purge_due_documents

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(app, db_session):
    """Cases in every retention state, dated from the real clock the pages use."""
    now = datetime.now(UTC)
    uploads, keyring = Path(app.config["UPLOADS_DIR"]), keyring_of(app)
    due = make_case(db_session, "SHOP-1001", "approved", decided_at=now - timedelta(days=31),
                    created_at=now - timedelta(days=35))  # fmt: skip
    soon = make_case(db_session, "SHOP-1002", "rejected", decided_at=now - timedelta(days=27),
                     created_at=now - timedelta(days=29), email="bruno@example.com")  # fmt: skip
    gone = make_case(db_session, "SHOP-1003", "approved", decided_at=now - timedelta(days=45),
                     created_at=now - timedelta(days=50), email="chiara@example.com")  # fmt: skip
    pending = make_case(db_session, "SHOP-1004", "in_review", created_at=now - timedelta(days=1),
                        email="dmitri@example.com")  # fmt: skip
    for case, kinds in ((due, ("card_front", "card_back")), (soon, ("photo_id",)),
                        (gone, ("card_front", "card_back")), (pending, ("photo_id",))):  # fmt: skip
        for i, kind in enumerate(kinds):
            add_document(db_session, uploads, keyring, case, kind, seed=case.id * 3 + i)
    db_session.commit()
    # One case purged already, by a run the page lists.
    purge_due_documents(
        lambda: new_session(app), uploads, now - timedelta(days=14), Settings(), actor="worker",
    )  # fmt: skip
    return {"due": due, "gone": gone}


def test_admin_holds_exports_and_erases(
    page, phone_page, live_server, admin_user, sign_in, shop, screenshot_dir
):
    violations = watch_csp(page)
    sign_in(page, admin_user)
    page.goto(f"{live_server}/admin/retention/")
    expect(page.get_by_role("heading", name="Retention", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="SHOP-1001")).to_be_visible()
    expect(page.get_by_text("due now").first).to_be_visible()
    page.screenshot(path=screenshot_dir / "retention-desktop.png", full_page=True)

    hold = page.locator("form", has=page.get_by_role("button", name="Set legal hold"))
    hold.get_by_label("Order number").fill("SHOP-1001")
    hold.get_by_label("Reason for the hold").fill("Chargeback CB-2211 opened by the issuer")
    hold.get_by_role("button", name="Set legal hold").click()
    expect(page.get_by_text("is on legal hold")).to_be_visible()
    expect(page.get_by_text("because of an open legal matter")).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("button", name="Download evidence PDF").click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert download.value.suggested_filename == f"evidence-case-{shop['due'].id}.pdf"

    page.goto(f"{live_server}/admin/retention/cases/{shop['gone'].id}/receipt")
    expect(page.get_by_text("we permanently deleted")).to_be_visible()
    page.screenshot(path=screenshot_dir / "retention-receipt-desktop.png", full_page=True)

    page.goto(f"{live_server}/admin/retention/")
    erase = page.locator("form", has=page.get_by_role("button", name="Erase now"))
    erase.get_by_label("or the customer's email").fill("bruno@example.com")
    erase.get_by_label("Reason").fill("Customer's erasure request by email")
    erase.get_by_role("button", name="Erase now").click()
    expect(page.get_by_text("Tick the box to confirm.")).to_be_visible()
    erase = page.locator("form", has=page.get_by_role("button", name="Erase now"))
    erase.get_by_label("I understand").check()
    erase.get_by_role("button", name="Erase now").click()
    expect(page.get_by_text("Erased 1 document(s)")).to_be_visible()
    assert violations == []

    sign_in(phone_page, admin_user)
    phone_page.goto(f"{live_server}/admin/retention/")
    expect(phone_page.get_by_role("heading", name="Legal holds")).to_be_visible()
    phone_page.screenshot(path=screenshot_dir / "retention-phone.png", full_page=True)
