"""The customer portal in real Chromium: open the link on a phone, cover the card number with
the masking tool, watch the upload progress, send, and reach the confirmation."""

from __future__ import annotations

import io
import os
import socket
import threading
import time

import pytest
from PIL import Image, ImageDraw, ImageStat
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.portal_helpers import create_flagged_order, flag_everything, token_path
from verifier.models import Document, VerificationCase
from verifier.vault.storage import Keyring, read_blob

pytestmark = pytest.mark.browser


class SlowBody:
    """A request body read at about 3 MB/s, as over a mobile connection."""

    def __init__(self, stream):
        self.stream = stream

    def read(self, size=-1):
        time.sleep(0.01)
        return self.stream.read(32_768 if size is None or size < 0 else min(size, 32_768))

    def readline(self, size=-1):
        return self.stream.readline(size)


@pytest.fixture
def slow_server(app):
    """The app on a real server whose small socket buffer and slow reads make uploads take
    time, so the browser's upload progress reflects bytes really sent."""
    inner = app.wsgi_app

    def slow(environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            environ["wsgi.input"] = SlowBody(environ["wsgi.input"])
        return inner(environ, start_response)

    app.wsgi_app = slow
    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    app.wsgi_app = inner


def card_photo(path, *, side: str) -> None:
    """A light card-sized photo with a dark number line across its middle."""
    # Fine grain, as in a real photo, makes a file of a realistic size (about 1 MB).
    grain = Image.frombytes("L", (1600, 1000), os.urandom(1600 * 1000)).point(lambda v: v // 8)
    img = Image.merge("RGB", [grain.point(lambda v, c=c: c + v) for c in (200, 208, 216)])
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((60, 60, 1540, 940), radius=60, outline=(40, 60, 120), width=12)
    for x in range(200, 1400, 90):
        draw.rectangle((x, 470, x + 60, 530), fill=(30, 30, 30))  # the "digits"
    draw.text((200, 700), f"CARD {side.upper()}", fill=(30, 30, 30))
    img.save(path, "JPEG", quality=95)


def decrypt(app, doc: Document) -> Image.Image:
    keyring = Keyring.from_config(app.config)
    data = read_blob(app.config["UPLOADS_DIR"], keyring, doc.id, doc.blob_name,
                     doc.wrapped_key, doc.key_id)  # fmt: skip
    return Image.open(io.BytesIO(data)).convert("L")


def drag_over(page, canvas, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag across the canvas between two points given as fractions of its displayed box."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y0)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * x1, box["y"] + box["height"] * y1, steps=8)
    page.mouse.up()


def test_customer_uploads_masked_card_with_progress_and_reaches_confirmation(
    app, slow_server, phone_page, db_session, auth, tmp_path, screenshot_dir
):
    live_server = slow_server
    flag_everything(db_session)
    body = create_flagged_order(app.test_client(), auth)
    page = phone_page
    page.goto(live_server + token_path(body))
    assert page.url == live_server + "/portal/"  # the token has left the address bar
    page.get_by_role("heading", name="Please confirm it's you").wait_for()
    page.screenshot(path=str(screenshot_dir / "portal-upload-phone.png"), full_page=True)

    front = tmp_path / "front.jpg"
    card_photo(front, side="front")
    slot = page.locator("#slot-card_front")
    slot.locator("#file-card_front").set_input_files(str(front))
    canvas = slot.locator("canvas.mask-canvas")
    canvas.wait_for(state="visible")
    drag_over(page, canvas, 0.10, 0.44, 0.90, 0.56)  # cover the number line
    page.screenshot(path=str(screenshot_dir / "portal-masking-phone.png"), full_page=False)
    # Masking cannot be skipped: the upload waits for the customer to confirm the cover.
    assert slot.get_by_role("button", name="Upload covered photo").is_disabled()
    slot.locator("#covered-card_front").check()
    slot.get_by_role("button", name="Upload covered photo").click()
    slot.locator(".received").wait_for()
    assert slot.locator(".previews img").count() == 1

    # Send stays disabled until the set is complete.
    assert page.get_by_role("button", name="Send for review").is_disabled()
    back = tmp_path / "back.jpg"
    card_photo(back, side="back")
    back_slot = page.locator("#slot-card_back")
    back_slot.locator("#file-card_back").set_input_files(str(back))
    back_canvas = back_slot.locator("canvas.mask-canvas")
    back_canvas.wait_for(state="visible")
    drag_over(page, back_canvas, 0.70, 0.40, 0.95, 0.60)
    back_slot.locator("#covered-card_back").check()
    back_slot.get_by_role("button", name="Upload covered photo").click()
    back_slot.locator(".received").wait_for()

    # A large statement scan: big enough to outlast the socket buffers, so the bar moves.
    statement = tmp_path / "statement.jpg"
    Image.frombytes("RGB", (3000, 2200), os.urandom(3000 * 2200 * 3)).save(statement, quality=95)
    poa = page.locator("#slot-proof_of_address")
    poa.locator("#file-proof_of_address").set_input_files(str(statement))
    progress = poa.locator("progress.progress")
    seen = set()
    for _ in range(800):
        value = progress.evaluate("p => p.hidden ? -1 : (p.hasAttribute('value') ? p.value : 101)")
        seen.add(round(value))
        if poa.locator(".received").count():
            break
        page.wait_for_timeout(20)
    assert any(0 < v < 100 for v in seen), f"no intermediate progress seen: {sorted(seen)}"
    poa.locator(".received").wait_for()

    send = page.get_by_role("button", name="Send for review")
    assert send.is_enabled()
    send.click()
    page.get_by_role("heading", name="Thank you, we have your documents").wait_for()
    page.screenshot(path=str(screenshot_dir / "portal-confirmation-phone.png"), full_page=True)

    db_session.rollback()
    assert db_session.scalar(select(VerificationCase.status)) == "in_review"
    docs = {d.kind: d for d in db_session.scalars(select(Document))}
    assert set(docs) == {"card_front", "card_back", "proof_of_address"}
    stored = decrypt(app, docs["card_front"])
    w, h = stored.size
    # What was painted over on the phone is black in the stored image (unmasked, the number
    # band averages well above 100); the rest of the card is untouched.
    band = stored.crop((int(w * 0.15), int(h * 0.46), int(w * 0.85), int(h * 0.54)))
    assert ImageStat.Stat(band).mean[0] < 12
    assert stored.getpixel((w // 2, int(h * 0.8))) > 150


def test_desktop_offers_a_qr_code_for_the_phone(app, live_server, page, db_session, auth,
                                                screenshot_dir):  # fmt: skip
    flag_everything(db_session)
    body = create_flagged_order(app.test_client(), auth)
    page.goto(live_server + token_path(body))
    page.screenshot(path=str(screenshot_dir / "portal-upload-desktop.png"), full_page=True)
    page.get_by_role("button", name="Continue on my phone").click()
    qr = page.get_by_alt_text("QR code that opens this verification on your phone")
    qr.wait_for()
    assert qr.evaluate("img => img.naturalWidth") > 100
    page.screenshot(path=str(screenshot_dir / "portal-qr-desktop.png"))


def test_bad_file_shows_an_error_in_the_page(app, live_server, phone_page, db_session, auth,
                                             tmp_path):  # fmt: skip
    flag_everything(db_session)
    body = create_flagged_order(app.test_client(), auth)
    phone_page.goto(live_server + token_path(body))
    fake = tmp_path / "statement.pdf"
    fake.write_text("<html><script>alert(1)</script></html>")
    slot = phone_page.locator("#slot-proof_of_address")
    slot.locator("#file-proof_of_address").set_input_files(str(fake))
    error = slot.locator(".slot-error")
    error.wait_for(state="visible")
    assert "JPEG" in error.inner_text() or "type" in error.inner_text().lower()
    assert db_session.scalar(select(Document.id)) is None
