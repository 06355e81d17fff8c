"""In real Chromium: an admin changes the rate with a reason, finds it in the history, and reads
the dashboard's charts. Saves screenshots for the docs (desktop 1280 and phone 390)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.stats_helpers import add_order
from verifier.core.sampling import RULE_AMOUNT, RULE_COUNTRY
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    DECLINED,
    EXPIRED,
    IN_REVIEW,
    REJECTED,
    QualityReview,
    VerificationCase,
)

pytestmark = pytest.mark.browser


def seed_month(session, reviewer_id: int, now: datetime) -> None:
    """A month of a small shop: ~40 orders a day, 5 % drawn at random, a few forced by rules."""
    rng = random.Random(20261123)
    for day in range(30, 0, -1):
        for _ in range(rng.randint(30, 50)):
            at = now - timedelta(days=day) + timedelta(minutes=rng.randint(0, 1439))
            draw = rng.randrange(10_000)
            rule = rng.random() < 0.03
            if draw >= 500 and not rule:
                add_order(session, at=at, draw=draw)
                continue
            reason = rng.choice((RULE_AMOUNT, RULE_COUNTRY)) if rule else "random"
            fails = rng.random() < (0.35 if rule and draw >= 500 else 0.08)
            if day <= 2:
                status = rng.choice((AWAITING_DOCUMENTS, IN_REVIEW))
            elif rng.random() < 0.08:
                status = rng.choice((DECLINED, EXPIRED))
            else:
                status = REJECTED if fails else APPROVED
            decided = status in (APPROVED, REJECTED)
            submitted = at + timedelta(hours=rng.uniform(1, 30))
            order = add_order(
                session, at=at, reason=reason, draw=draw, status=status,
                submitted_at=submitted if status != AWAITING_DOCUMENTS else None,
                decided_at=submitted + timedelta(hours=rng.uniform(0.2, 20)) if decided else None,
                decided_by_id=reviewer_id if decided else None,
                resubmissions=int(rng.random() < 0.1),
            )  # fmt: skip
            if decided and rng.random() < 0.3:
                session.add(QualityReview(
                    case_id=order.case.id, first_reviewer_id=reviewer_id,
                    reviewer_id=None, created_at=order.case.decided_at,
                ))  # fmt: skip
    session.commit()


def complete_quality_reviews(session, second_id: int, now: datetime) -> None:
    """Let a second reviewer check 25 of the sampled decisions, agreeing nine times in ten."""
    rng = random.Random(7)
    for review in session.scalars(select(QualityReview).order_by(QualityReview.id).limit(25)):
        status = session.get(VerificationCase, review.case_id).status
        agrees = rng.random() < 0.9
        review.verdict = status if agrees else ({APPROVED: REJECTED}.get(status, APPROVED))
        review.agrees = agrees
        review.reviewer_id, review.completed_at = second_id, now - timedelta(days=1)
    session.commit()


def test_admin_changes_the_rate_sees_the_history_and_the_dashboard(
    page,
    phone_page,
    live_server,
    sign_in,
    admin_user,
    reviewer,
    second_reviewer,
    db_session,
    screenshot_dir,
):
    now = datetime.now(UTC)
    seed_month(db_session, reviewer.id, now)
    complete_quality_reviews(db_session, second_reviewer.id, now)

    sign_in(page, admin_user)
    page.goto(f"{live_server}/admin/settings/")
    expect(page.get_by_role("heading", name="Sampling and review settings")).to_be_visible()
    rate = page.get_by_label("Random sampling rate (%)")
    expect(rate).to_have_value("5")

    # Preview first: nothing is saved, the load is shown.
    rate.fill("7.5")
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("status").filter(has_text="Preview: nothing is saved yet")
    expect(preview).to_be_visible()
    expect(preview).to_contain_text("Random sampling rate: 5 % → 7.5 %")
    expect(page.get_by_label("Random sampling rate (%)")).to_have_value("7.5")
    page.screenshot(path=screenshot_dir / "settings-desktop.png", full_page=True)

    # Saving without a reason is refused with a message tied to the field.
    page.get_by_role("button", name="Save new version").click()
    reason = page.get_by_label("Reason for this change")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#reason-error")).to_contain_text("Say why")

    reason.fill("Chargebacks doubled after the holiday sale")
    page.get_by_role("button", name="Save new version").click()
    page.wait_for_url(f"{live_server}/admin/settings/history")
    expect(page.get_by_text("Saved as policy version 2.")).to_be_visible()
    newest = page.locator("#version-2")
    expect(newest).to_contain_text("Chargebacks doubled after the holiday sale")
    expect(newest).to_contain_text(admin_user.email)
    row = newest.get_by_role("row", name="Random sampling rate")
    expect(row).to_contain_text("5 %")
    expect(row).to_contain_text("7.5 %")
    expect(page.locator("#version-1")).to_contain_text("Initial default policy")

    page.goto(f"{live_server}/admin/dashboard/")
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(7)  # estimate, received, flagged, queue, timing, outcomes, QA
    expect(page.locator("#chart-flagged rect.bar").first).to_be_visible()
    assert page.locator("#chart-flagged rect.bar").count() > 20
    assert page.locator("#chart-estimate circle.point").count() == 2
    expect(page.locator("#chart-received > title")).to_have_text("Orders received per day")
    expect(page.get_by_text("randomly sampled orders decided in this period")).to_be_visible()
    page.screenshot(path=screenshot_dir / "dashboard-desktop.png", full_page=True)

    # The same pages on a phone: nothing wider than the screen.
    sign_in(phone_page, admin_user)
    for path, name in (("/admin/settings/", "settings"), ("/admin/dashboard/", "dashboard")):
        phone_page.goto(f"{live_server}{path}")
        overflow = phone_page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone"
        phone_page.screenshot(path=screenshot_dir / f"{name}-phone.png", full_page=True)
