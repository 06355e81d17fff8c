"""The reviewer's workbench in real Chromium, by keyboard (issue 13, item 1), with CSRF on.

A clean case, from the queue to the next case, in at most 6 key presses, counted; zooming and
panning stay inside the viewer's frame (the page never widens); compare mode puts the card
and the ID side by side; the `?` overlay lists the shortcuts; shortcuts never fire while
typing; the page still works at a tablet's width. Saves the wide-screen screenshot for the docs.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser_helpers import watch_csp
from tests.review_helpers import add_document, jpeg_bytes, make_case
from verifier.core.checklist import CHECKS
from verifier.demo.cases import demo_card_image
from verifier.models import APPROVED, VerificationCase

pytestmark = pytest.mark.browser

WIDE = {"width": 1600, "height": 1000}
TABLET = {"width": 820, "height": 1180}


@pytest.fixture
def two_cases(app, db_session):
    """The oldest case has all four kinds of document; a second one waits behind it."""
    now = datetime.now(UTC)
    rng = random.Random(13)
    first = make_case(db_session, "WEB-41001", created_at=now - timedelta(hours=3))
    second = make_case(db_session, "WEB-41002", created_at=now - timedelta(hours=1),
                       email="bruno@example.com")  # fmt: skip
    holder, last4 = first.order.cardholder_name, first.order.card_last4
    for side in ("front", "back"):
        add_document(db_session, app, first, f"card_{side}",
                     data=demo_card_image(side, holder, last4, rng))  # fmt: skip
    add_document(db_session, app, first, "photo_id", data=jpeg_bytes((40, 90, 160), (600, 400)))
    add_document(db_session, app, first, "proof_of_address",
                 data=jpeg_bytes((230, 230, 220), (500, 700)))  # fmt: skip
    add_document(db_session, app, second, "card_front",
                 data=demo_card_image("front", holder, last4, rng))  # fmt: skip
    db_session.commit()
    return first, second


@pytest.fixture
def wide_page(browser):
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_a_clean_case_takes_six_key_presses_from_the_queue_to_the_next_case(
    app, db_session, wide_page, live_server, sign_in, reviewer, two_cases
):
    page = wide_page
    first, second = two_cases
    violations = watch_csp(page)
    sign_in(page, reviewer)
    page.goto(f"{live_server}/review/")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()

    presses: list[str] = []

    def press(key: str) -> None:
        presses.append(key)
        page.keyboard.press(key)

    press("Shift+N")  # next case: claims the oldest one and opens it
    page.wait_for_url(f"**/review/cases/{first.id}")
    expect(page.get_by_text("You are reviewing this case")).to_be_visible()
    press("Shift+Y")  # yes to both checks of the card (the current document)
    press("y")  # the ID's name matches...
    press("y")  # ...and it has not expired
    press("Shift+Y")  # the proof of address matches the billing address
    expect(page.locator("#approve-next")).to_be_focused()
    press("a")  # approve and next
    page.wait_for_url(f"**/review/cases/{second.id}")
    expect(page.get_by_text("Order WEB-41001 approved. The shop has been told.")).to_be_visible()
    expect(page.get_by_text("You are reviewing this case")).to_be_visible()

    assert len(presses) <= 6, presses
    assert len(presses) == 6
    db_session.rollback()
    decided = db_session.get(VerificationCase, first.id, populate_existing=True)
    assert decided.status == APPROVED and decided.decided_by_id == reviewer.id
    assert decided.checklist == dict.fromkeys(CHECKS, "yes")
    taken = db_session.get(VerificationCase, second.id, populate_existing=True)
    assert taken.claimed_by_id == reviewer.id
    assert violations == []


def test_viewer_compare_overlay_and_typing_by_keyboard(
    app, db_session, wide_page, live_server, sign_in, reviewer, two_cases, screenshot_dir
):
    page = wide_page
    first, _ = two_cases
    violations = watch_csp(page)
    sign_in(page, reviewer)
    page.goto(f"{live_server}/review/")
    page.keyboard.press("Shift+N")
    page.wait_for_url(f"**/review/cases/{first.id}")
    front = page.get_by_role("img", name="Card, front sent by the customer")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=front.element_handle()
    )

    # The checklist sits beside the documents: the card's checks are level with the card.
    card_check = page.get_by_role("group", name=CHECKS["card_name_matches"])
    frame = page.get_by_role("group", name="Card, front, image viewer")
    box, check_box = frame.bounding_box(), card_check.bounding_box()
    assert check_box["x"] > box["x"] + box["width"] - 1  # to its right
    assert check_box["y"] < box["y"] + box["height"]  # not below it
    page.screenshot(path=screenshot_dir / "review-workbench-wide.png")

    # J goes to the next document; + zooms it, arrows pan it; the page never widens.
    width = page.evaluate("() => document.documentElement.scrollWidth")
    page.keyboard.press("j")
    expect(frame).to_be_focused()
    for _ in range(4):
        page.keyboard.press("+")
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    transform = front.evaluate("img => img.style.transform")
    assert "scale(5.0625)" in transform and "translate(180px" in transform, transform
    assert frame.bounding_box() == box  # the frame keeps its size and place
    assert page.evaluate("() => document.documentElement.scrollWidth") == width
    assert _no_horizontal_scroll(page)
    # Drag to pan, R to rotate, 0 to reset.
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.down()
    page.mouse.move(centre[0] - 50, centre[1] + 20, steps=4)
    page.mouse.up()
    assert "translate(130px, 20px)" in front.evaluate("img => img.style.transform")
    page.keyboard.press("r")
    assert "rotate(90deg)" in front.evaluate("img => img.style.transform")
    page.keyboard.press("0")
    assert front.evaluate("img => img.style.transform") == (
        "translate(0px, 0px) rotate(0deg) scale(1)"
    )
    assert _no_horizontal_scroll(page)

    # C: card and ID side by side (level with each other), and back.
    card_group = page.locator("#group-card")
    id_group = page.locator("#group-photo_id")
    page.keyboard.press("c")
    expect(page.locator("#workbench")).to_have_class("workbench compare")
    assert "compare=1" in page.url
    a, b = card_group.bounding_box(), id_group.bounding_box()
    assert abs(a["y"] - b["y"]) < 2 and b["x"] > a["x"] + a["width"] - 1
    page.screenshot(path=screenshot_dir / "review-workbench-compare.png")
    page.keyboard.press("c")
    expect(page.locator("#workbench")).to_have_class("workbench")

    # ?: the overlay lists every shortcut; Escape closes it.
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    actions = ("Next case", "Next / previous document", "Zoom the current document", "Rotate",
               "Answer the current check yes / no / not applicable",
               "Approve and open the next case", "Reject", "Ask the customer again")  # fmt: skip
    for action in actions:
        expect(dialog.get_by_text(action, exact=False).first).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Typing in the note fires no shortcut: the letters land in the text, nothing is answered.
    note = page.get_by_label("Note (kept with the decision)")
    note.click()
    page.keyboard.type("ayny dax")
    expect(note).to_have_value("ayny dax")
    assert page.url.endswith(f"/review/cases/{first.id}")
    assert page.locator("fieldset.check input:checked").count() == 0  # all four documents sent
    page.keyboard.press("Escape")  # leaves the text box; shortcuts work again
    page.keyboard.press("y")
    expect(card_check.get_by_label("Yes", exact=True)).to_be_checked()
    assert violations == []


def test_the_workbench_at_a_tablet_width(
    browser, live_server, sign_in, reviewer, two_cases, screenshot_dir
):
    first, _ = two_cases
    context = browser.new_context(viewport=TABLET, has_touch=True)
    page = context.new_page()
    try:
        sign_in(page, reviewer)
        page.goto(f"{live_server}/review/")
        page.get_by_role("button", name="Review the next case").click()
        page.wait_for_url(f"**/review/cases/{first.id}")
        assert _no_horizontal_scroll(page)
        # Each group stacks its image over its checks; every check and button is reachable.
        frame = page.get_by_role("group", name="Card, front, image viewer").bounding_box()
        check = page.get_by_role("group", name=CHECKS["card_name_matches"]).bounding_box()
        assert check["y"] >= frame["y"] + frame["height"] - 1
        assert frame["width"] <= TABLET["width"]
        page.get_by_role("group", name=CHECKS["card_name_matches"]).get_by_label(
            "Yes", exact=True
        ).check()
        expect(page.get_by_role("button", name="Approve and next")).to_be_visible()
        page.screenshot(path=screenshot_dir / "review-workbench-tablet.png", full_page=True)
    finally:
        context.close()
