"""In real Chromium: a shorter retention period states what it destroys and saves only once
the admin ticks the confirmation box; the preview shows the backtest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.stats_helpers import add_order
from verifier.models import APPROVED, Document

pytestmark = pytest.mark.browser


def test_shorter_retention_needs_a_confirmation(page, live_server, sign_in, admin_user,
                                                db_session):  # fmt: skip
    now = datetime.now(UTC)
    order = add_order(db_session, at=now - timedelta(days=11), reason="random", draw=1,
                      status=APPROVED, decided_at=now - timedelta(days=10))  # fmt: skip
    for i in range(2):
        db_session.add(Document(case_id=order.case.id, kind="card_front", page=i + 1,
                                key_id="k1", wrapped_key=b"k" * 40, blob_name=f"b-{i}",
                                content_type="image/jpeg", source_type="image/jpeg",
                                width=10, height=10, byte_size=100))  # fmt: skip
    db_session.commit()
    sign_in(page, admin_user)
    page.goto(f"{live_server}/admin/settings/")
    page.get_by_label("Keep documents of decided cases for").fill("5")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="Backtest on stored orders")).to_be_visible()
    warning = page.get_by_role("alert").filter(has_text="what this change does")
    expect(warning).to_contain_text("2 documents become due at the next purge")

    page.get_by_label("Reason for this change").fill("Shorter retention after the audit")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_text("Nothing is saved yet.").first).to_be_visible()
    page.get_by_label("I have read what this change does").check()
    page.get_by_role("button", name="Save new version").click()
    page.wait_for_url(f"{live_server}/admin/settings/history")
    expect(page.get_by_text("Saved as policy version 2.")).to_be_visible()
