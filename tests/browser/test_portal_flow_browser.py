"""The customer's flow in real Chromium: without JavaScript, resubmissions (JavaScript on and
off), covering a PDF card photo over the server's preview from the keyboard, and a desktop
tab that learns the phone sent the photos."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from PIL import Image, ImageStat
from sqlalchemy import select

from tests.browser.conftest import DESKTOP
from tests.portal_helpers import create_flagged_order, flag_everything, jpeg_bytes, token_path
from verifier.core.policies import current_settings
from verifier.models import Document, VerificationCase
from verifier.portal.customer_mail import PortalContext
from verifier.portal.links import create_handoff_link, reopen_link
from verifier.vault.storage import Keyring, read_blob

pytestmark = pytest.mark.browser


@pytest.fixture(params=[True, False], ids=["js", "no-js"])
def any_page(request, browser):
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=request.param)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def no_js_page(browser):
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def write_pdf(path, size=(1240, 1754), pages=1) -> None:
    images = [Image.open(io.BytesIO(jpeg_bytes(size))).convert("RGB") for _ in range(pages)]
    images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=150)


def stored(app, doc: Document) -> Image.Image:
    data = read_blob(app.config["UPLOADS_DIR"], Keyring.from_config(app.config), doc.id,
                     doc.blob_name, doc.wrapped_key, doc.key_id)  # fmt: skip
    return Image.open(io.BytesIO(data)).convert("L")


def test_without_javascript_choose_a_file_works_and_a_pdf_can_be_sent(
    app, live_server, no_js_page, db_session, auth, tmp_path
):
    flag_everything(db_session)
    page = no_js_page
    page.goto(live_server + token_path(create_flagged_order(app.test_client(), auth)))
    photo_id = tmp_path / "licence.jpg"
    photo_id.write_bytes(jpeg_bytes())
    slot = page.locator("#slot-photo_id")
    slot.locator("#file-photo_id").set_input_files(str(photo_id))
    slot.get_by_role("button", name="Upload").click()
    page.locator("#slot-photo_id .received").wait_for()

    statement = tmp_path / "statement.pdf"
    write_pdf(statement, pages=4)
    poa = page.locator("#slot-proof_of_address")
    poa.locator("#file-proof_of_address").set_input_files(str(statement))
    poa.get_by_role("button", name="Upload").click()
    page.locator("#slot-proof_of_address .received").wait_for()
    assert "4 pages" in page.locator("#slot-proof_of_address .received").inner_text()

    # A card photo without JavaScript: the box must be ticked to say the number is covered.
    card = tmp_path / "card.jpg"
    card.write_bytes(jpeg_bytes((1600, 1000)))
    front = page.locator("#slot-card_front")
    front.locator("#file-card_front").set_input_files(str(card))
    front.get_by_role("button", name="Upload").click()
    assert "last four digits" in page.locator(".flash-error, .flash").first.inner_text()
    front = page.locator("#slot-card_front")
    front.locator("#file-card_front").set_input_files(str(card))
    front.locator("#covered-card_front").check()
    front.get_by_role("button", name="Upload").click()
    page.locator("#slot-card_front .received").wait_for()

    page.get_by_role("button", name="Send for review").click()
    page.get_by_role("heading", name="Thank you, we have your documents").wait_for()
    db_session.rollback()
    assert db_session.scalar(select(VerificationCase.status)) == "in_review"


def test_a_resubmission_starts_empty_and_needs_a_new_upload(
    app, live_server, any_page, db_session, auth, reviewer, tmp_path
):
    from verifier.review.claims import claim_case
    from verifier.review.decisions import request_resubmission

    flag_everything(db_session)
    client = app.test_client()
    body = create_flagged_order(client, auth)
    client.get(token_path(body))
    for kind in ("photo_id", "proof_of_address"):
        resp = client.post(f"/portal/documents/{kind}", headers={"Accept": "application/json"},
                           data={"file": (io.BytesIO(jpeg_bytes()), "a.jpg"),
                                 "csrf_token": _csrf(client)})  # fmt: skip
        assert resp.status_code == 201, resp.get_json()
    client.post("/portal/submit", data={"csrf_token": _csrf(client)})
    db_session.rollback()
    case = db_session.scalar(select(VerificationCase))
    assert case.status == "in_review"
    now = datetime.now(UTC)
    settings = current_settings(db_session)
    portal = PortalContext(live_server, "Test Shop", Keyring.from_config(app.config))
    links = []
    claim_case(db_session, case.id, reviewer.id, now, settings)
    request_resubmission(
        db_session, case.id, reviewer.id, now, settings, kinds=["proof_of_address"],
        message="The bill is older than three months.",
        reopen=lambda c: links.append(
            reopen_link(db_session, c, portal=portal, settings=settings, now=now)),
    )  # fmt: skip
    db_session.commit()

    page = any_page
    page.goto(links[0].url)
    page.get_by_role("heading", name="One more step for your order").wait_for()
    slot = page.locator("#slot-proof_of_address")
    assert slot.locator(".received").count() == 0  # not pre-filled with the rejected bill
    assert page.locator("#slot-photo_id").count() == 0
    send = page.get_by_role("button", name="Send for review")
    assert send.is_disabled()

    bill = tmp_path / "bill.jpg"
    bill.write_bytes(jpeg_bytes((1300, 900)))
    slot.locator("#file-proof_of_address").set_input_files(str(bill))
    if not page.evaluate("() => !!window.verifierPortalPoll"):
        slot.get_by_role("button", name="Upload").click()  # without JavaScript
    page.locator("#slot-proof_of_address .received").wait_for()
    assert page.get_by_role("button", name="Send for review").is_enabled()


def _csrf(client) -> str:
    page = client.get("/portal/").get_data(as_text=True)
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_a_pdf_card_photo_is_covered_over_the_servers_preview_from_the_keyboard(
    app, live_server, page, db_session, auth, tmp_path
):
    flag_everything(db_session)
    page.goto(live_server + token_path(create_flagged_order(app.test_client(), auth)))
    card = tmp_path / "card.pdf"
    write_pdf(card, size=(1600, 1000))
    slot = page.locator("#slot-card_front")
    slot.locator("#file-card_front").set_input_files(str(card))
    slot.locator(".needs-cover").wait_for()
    canvas = slot.locator(".cover-form canvas.mask-canvas")
    canvas.wait_for(state="visible")
    page.wait_for_function("c => c.width > 0", arg=canvas.element_handle())
    # Keyboard only: focus the picture, the frame covers the middle band; Enter paints it.
    canvas.focus()
    page.keyboard.press("Enter")
    confirm = slot.get_by_role("button", name="Confirm the covered photo")
    slot.locator("#cover-confirm-card_front").check()
    confirm.click()
    slot.locator(".received").wait_for()
    db_session.rollback()
    doc = db_session.scalar(select(Document))
    assert doc.cover == "preview" and doc.source_type == "application/pdf"
    image = stored(app, doc)
    w, h = image.size
    band = image.crop((int(w * 0.15), int(h * 0.45), int(w * 0.85), int(h * 0.55)))
    assert ImageStat.Stat(band).mean[0] < 12
    assert ImageStat.Stat(image.crop((0, 0, w, int(h * 0.3)))).mean[0] > 100


def test_the_desktop_learns_that_the_phone_sent_the_photos(
    app, live_server, page, phone_page, db_session, auth, tmp_path
):
    flag_everything(db_session)
    page.goto(live_server + token_path(create_flagged_order(app.test_client(), auth)))
    page.get_by_role("button", name="Continue on my phone").click()
    page.locator("#handoff-status").wait_for()
    db_session.rollback()
    case = db_session.scalar(select(VerificationCase))
    token, _ = create_handoff_link(db_session, case, now=datetime.now(UTC))
    db_session.commit()

    phone_page.goto(f"{live_server}/u/{token}")
    for kind in ("photo_id", "proof_of_address"):
        photo = tmp_path / f"{kind}.jpg"
        photo.write_bytes(jpeg_bytes())
        phone_page.locator(f"#file-{kind}").set_input_files(str(photo))
        phone_page.locator(f"#slot-{kind} .received").wait_for()
    phone_page.get_by_role("button", name="Send for review").click()
    phone_page.get_by_role("heading", name="Thank you, we have your documents").wait_for()

    page.evaluate("() => window.verifierHandoffPoll()")
    page.get_by_text("Your phone has sent the documents").wait_for()
