"""A reviewer's day in real Chromium, with CSRF on: take the next case from the queue, look at
the card photos in the viewer (zoom, rotate, full size), answer the cross-checks and approve;
then the worker tells the shop, whose receiver on 127.0.0.1 checks the signed webhook.
Saves screenshots for the docs (queue and case on a desktop, the case on a phone)."""

from __future__ import annotations

import json
import random
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.browser_helpers import watch_csp
from tests.notify_helpers import WebhookReceiver
from tests.review_helpers import add_document, make_case
from verifier.core.checklist import CHECKS
from verifier.core.policies import current_policy
from verifier.demo.cases import demo_card_image
from verifier.models import APPROVED, AuditEvent, SamplingDecision, VerificationCase
from verifier.notify.webhooks import verify_signature
from verifier.worker import run_worker

pytestmark = pytest.mark.browser

ANSWERS = {
    "card_name_matches": "Yes",
    "card_last4_matches": "Yes",
    "id_name_matches": "Not applicable",
    "id_not_expired": "Not applicable",
    "address_matches_and_recent": "Not applicable",
}


@pytest.fixture
def queue(app, db_session):
    """Three cases in review; the oldest has real encrypted photos of the card, front and back."""
    now = datetime.now(UTC)
    policy = current_policy(db_session)
    rng = random.Random(4242)
    cases = [
        make_case(db_session, "WEB-20417", created_at=now - timedelta(hours=5)),
        make_case(db_session, "WEB-20431", created_at=now - timedelta(hours=2),
                  email="bruno@example.com"),
        make_case(db_session, "WEB-20458", created_at=now - timedelta(minutes=40),
                  email="chiara@example.com", reason="amount_threshold"),
    ]  # fmt: skip
    for case in cases:
        db_session.add(SamplingDecision(order_id=case.order_id, policy_id=policy.id, flagged=True,
                                        reason=case.reason, draw=rng.randrange(500),
                                        rate_bp=policy.rate_bp))  # fmt: skip
    oldest = cases[0]
    holder, last4 = oldest.order.cardholder_name, oldest.order.card_last4
    for side in ("front", "back"):
        add_document(db_session, app, oldest, f"card_{side}",
                     data=demo_card_image(side, holder, last4, rng))  # fmt: skip
    db_session.commit()
    return oldest


@pytest.fixture
def receiver(app):
    """The shop's webhook endpoint on loopback, and the app configured to call it."""
    with WebhookReceiver(secret=secrets.token_urlsafe(32)) as hooks:
        app.config.update(WEBHOOK_URL=hooks.url, WEBHOOK_SECRET=hooks.secret)
        yield hooks


def _loaded(page, image) -> bool:
    image.scroll_into_view_if_needed()
    handle = image.element_handle()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle)
    return image.evaluate("img => img.naturalWidth") > 0


def _transform(image) -> tuple[float, ...]:
    """The image's CSS transform as (a, b, c, d) of its matrix, once the transition is over."""
    value = image.evaluate(
        """img => new Promise(done => {
               const settle = () => done(getComputedStyle(img).transform);
               img.getAnimations().length ? Promise.all(img.getAnimations().map(a => a.finished))
                   .then(settle) : settle();
           })"""
    )
    if value == "none":
        return (1.0, 0.0, 0.0, 1.0)
    assert value.startswith("matrix("), value
    return tuple(round(float(n), 3) for n in value[7:-1].split(",")[:4])


def test_reviewer_takes_the_next_case_views_the_card_and_approves(
    app, db_session, page, phone_page, live_server, sign_in, reviewer, queue, receiver,
    screenshot_dir,
):  # fmt: skip
    violations = watch_csp(page)
    sign_in(page, reviewer)
    page.goto(f"{live_server}/review/")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_role("link", name="WEB-20417")).to_be_visible()
    page.screenshot(path=screenshot_dir / "review-queue-desktop.png", full_page=True)

    # "Next case" claims the oldest case waiting and opens it.
    page.get_by_role("button", name="Review the next case").click()
    page.wait_for_url(f"**/review/cases/{queue.id}")
    expect(page.get_by_role("heading", name="Order WEB-20417")).to_be_visible()
    expect(page.get_by_text("You are reviewing this case")).to_be_visible()

    # The viewer: both photos decrypt and load; zoom and rotate change the CSS transform.
    front = page.get_by_role("img", name="Card, front sent by the customer")
    back = page.get_by_role("img", name="Card, back sent by the customer")
    assert _loaded(page, front) and _loaded(page, back)
    tools = page.get_by_role("toolbar", name="Image tools for Card, front")
    assert _transform(front) == (1, 0, 0, 1)
    tools.get_by_role("button", name="Zoom in").click()
    assert _transform(front) == (1.5, 0, 0, 1.5)
    tools.get_by_role("button", name="Rotate").click()
    a, b, c, d = _transform(front)  # a quarter turn, still zoomed (shrunk to fit the frame)
    assert a == d == 0 and b > 0 and c == -b, (a, b, c, d)
    tools.get_by_role("button", name="Reset").click()
    assert _transform(front) == (1, 0, 0, 1)
    full_size = page.get_by_role("link", name="Full size Card, front").get_attribute("href")
    served = page.request.get(f"{live_server}{full_size}")
    assert served.ok and served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "no-store"
    assert served.headers["content-security-policy"] == "sandbox"
    assert served.headers["x-content-type-options"] == "nosniff"

    # The cross-checks.
    for name, answer in ANSWERS.items():
        page.get_by_role("group", name=CHECKS[name]).get_by_label(answer, exact=True).check()
    page.get_by_label("Note (kept with the decision)").fill("Card photos match the order.")
    page.screenshot(path=screenshot_dir / "review-case-desktop.png", full_page=True)

    sign_in(phone_page, reviewer)
    phone_page.goto(f"{live_server}/review/cases/{queue.id}")
    phone_image = phone_page.get_by_role("img", name="Card, front sent by the customer")
    assert _loaded(phone_page, phone_image)
    phone_page.screenshot(path=screenshot_dir / "review-case-phone.png", full_page=True)

    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_text("Order WEB-20417 approved. The shop has been told.")).to_be_visible()
    expect(page.get_by_role("heading", name="Decision")).to_be_visible()
    assert violations == []

    db_session.rollback()  # read what the requests committed
    case = db_session.get(VerificationCase, queue.id, populate_existing=True)
    assert case.status == APPROVED and case.decided_by_id == reviewer.id
    assert case.checklist == {
        name: answer.lower().replace(" ", "_") for name, answer in ANSWERS.items()
    }
    views = db_session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "document.viewed")
    )
    assert views >= 3  # both photos on the desktop and the full-size one, at least

    # The worker tells the shop: one signed `case.status_changed` event.
    results = {r.name: r for r in run_worker(app, once=True)}
    assert results["deliver-webhooks"].ok, results["deliver-webhooks"].line()
    assert len(receiver.requests) == 1
    hook = receiver.requests[0]
    assert hook.verified and hook.answered == 204
    assert verify_signature(receiver.secret, hook.signature, hook.body, datetime.now(UTC))
    assert not verify_signature("another-secret-" * 3, hook.signature, hook.body,
                                datetime.now(UTC))  # fmt: skip
    event = json.loads(hook.body)
    assert event["type"] == "case.status_changed"
    assert hook.header_event_id == event["id"]
    assert event["data"]["status"] == APPROVED
    assert event["data"]["previous_status"] == "in_review"
    assert event["data"]["order_external_id"] == "WEB-20417"
    assert event["data"]["case_id"] == queue.id
