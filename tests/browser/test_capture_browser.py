"""Guided capture in real Chromium with a fake camera: "Take a photo" opens the in-page camera,
the live checks name what is wrong, the photo taken goes through the same upload (and card
covering) as a chosen file, a refused or missing camera leaves the file inputs working, and
the first action sits above the fold of a 390 x 844 phone in every language.

The camera is Chromium's fake device playing a Y4M file drawn here: a sharp, evenly lit
"card" for the good case and the same picture at a sixth of its light for the dark one.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE
from tests.browser_helpers import watch_csp
from tests.factories import order_payload
from tests.portal_helpers import flag_everything, token_path
from verifier.models import Document
from verifier.vault.storage import Keyring, read_blob

pytestmark = pytest.mark.browser
FAKE_CAMERA = "--use-fake-device-for-media-stream"


def card_scene(size=(640, 480), light: float = 1.0) -> Image.Image:
    """A card on a table, centred where the frame sits: light ground, dark print, no glare."""
    width, height = size
    img = Image.new("RGB", size, (104, 96, 90))
    draw = ImageDraw.Draw(img)
    card = (width * 0.266, height * 0.303, width * 0.734, height * 0.697)
    draw.rounded_rectangle(card, radius=18, fill=(186, 198, 214), outline=(40, 60, 120), width=4)
    draw.rectangle((card[0] + 20, card[1] + 24, card[0] + 60, card[1] + 54), fill=(214, 180, 96))
    left, top = int(card[0] + 20), int(card[1] + 70)
    for line, y in enumerate(range(top, int(card[3]) - 12, 16)):
        text = "4242 4242 4242 4242" if line % 3 == 0 else "VALID 12/29  A N OTHER"
        draw.text((left, y), text, fill=(24, 28, 44))
    if light != 1.0:
        img = img.point(lambda v: int(v * light))
    return img


def write_y4m(path: Path, picture: Image.Image, frames: int = 10) -> Path:
    """A Y4M video (4:2:0, full range) showing `picture` for `frames` frames."""
    width, height = picture.size
    y, cb, cr = picture.convert("YCbCr").split()
    half = (width // 2, height // 2)
    frame = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            fh.write(b"FRAME\n" + frame)
    return path


def _camera_browser(browser, video: Path):
    args = [*CHROMIUM_ARGS, FAKE_CAMERA, f"--use-file-for-fake-video-capture={video}"]
    return browser.browser_type.launch(executable_path=CHROMIUM, args=args)


@pytest.fixture(scope="module")
def bright_camera(browser, tmp_path_factory) -> Iterator:
    video = write_y4m(tmp_path_factory.mktemp("camera") / "card.y4m", card_scene())
    chromium = _camera_browser(browser, video)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def dark_camera(browser, tmp_path_factory) -> Iterator:
    video = write_y4m(tmp_path_factory.mktemp("camera") / "dark.y4m", card_scene(light=0.16))
    chromium = _camera_browser(browser, video)
    yield chromium
    chromium.close()


def phone(chromium, *, camera: bool = True, init_script: str | None = None):
    """A phone page; `camera` grants the camera (else Chromium refuses it, as a customer can)."""
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                   device_scale_factor=2)  # fmt: skip
    context.set_default_timeout(15_000)
    if camera:
        context.grant_permissions(["camera"])
    if init_script:
        context.add_init_script(init_script)
    return context, context.new_page()


def open_portal(app, auth, page, live_server, *, ref: str, locale: str = "en") -> None:
    payload = order_payload(external_id=ref, locale=locale)
    body = app.test_client().post("/api/v1/orders", headers=auth, json=payload).get_json()
    page.goto(live_server + token_path(body))
    page.locator("#slot-card_front").wait_for()


def stored(app, db_session, kind: str) -> tuple[Document, Image.Image]:
    db_session.expire_all()
    doc = db_session.scalars(select(Document).where(Document.kind == kind)).one()
    keyring = Keyring.from_config(app.config)
    data = read_blob(app.config["UPLOADS_DIR"], keyring, doc.id, doc.blob_name,
                     doc.wrapped_key, doc.key_id)  # fmt: skip
    return doc, Image.open(io.BytesIO(data))


def test_the_camera_checks_the_picture_and_takes_it_by_itself_into_the_card_cover_step(
    app, live_server, bright_camera, db_session, auth, screenshot_dir
):
    flag_everything(db_session)
    context, page = phone(bright_camera)
    violations = watch_csp(page)
    open_portal(app, auth, page, live_server, ref="CAM-1")
    slot = page.locator("#slot-card_front")
    slot.get_by_text("Take a photo", exact=True).click()
    camera = page.locator("#camera")
    camera.wait_for(state="visible")
    assert page.locator("#camera-step").text_content() == "Step 1 of 2"
    assert page.locator("#camera-title").text_content() == "Front of the card"
    page.locator("#camera[data-check]").wait_for()  # the video plays and is measured
    page.locator("#camera[data-check=ok]").wait_for()
    assert page.locator("#camera-check").text_content() == "Looks good. Take the photo now."
    last = page.evaluate("window.verifierCapture.last")
    assert last["problem"] is None and 60 < last["brightness"] < 225 and last["glare"] < 0.03
    frame = page.locator("#camera-frame").bounding_box()
    assert 1.5 < frame["width"] / frame["height"] < 1.7  # card-shaped
    page.screenshot(path=str(screenshot_dir / "portal-camera-phone.png"))

    page.get_by_label("Take the photo by itself when everything looks good").check()
    camera.wait_for(state="hidden", timeout=5_000)  # about a second of good frames, then shot
    assert page.evaluate("document.getElementById('camera-video').srcObject") is None
    # The photo goes to the same covering step as a chosen file, then up.
    slot.locator("canvas.mask-canvas").wait_for(state="visible")
    assert slot.locator(".camera-note").text_content() == "Photo taken."
    slot.locator("#covered-card_front").check()
    slot.get_by_role("button", name="Upload covered photo").click()
    slot.locator(".received").wait_for(timeout=30_000)
    assert slot.locator(".camera-note").is_hidden()
    doc, image = stored(app, db_session, "card_front")
    assert doc.cover == "painted"
    assert 1.45 < image.width / image.height < 1.75  # the framed card, not the whole picture
    assert violations == []
    context.close()


def test_a_photo_id_taken_with_the_button_is_uploaded_directly(
    app, live_server, bright_camera, db_session, auth
):
    flag_everything(db_session)
    context, page = phone(bright_camera)
    violations = watch_csp(page)
    open_portal(app, auth, page, live_server, ref="CAM-2")
    slot = page.locator("#slot-photo_id")
    slot.get_by_text("Take a photo", exact=True).click()
    assert page.locator("#camera-step").text_content() == "Step 1 of 2"
    assert "all four corners" in page.locator("#camera-hint").text_content()
    page.locator("#camera[data-check]").wait_for()  # the video plays and is measured
    page.get_by_role("button", name="Take the photo", exact=True).click()
    slot.locator(".received, .slot-error:not([hidden])").first.wait_for(timeout=30_000)
    assert slot.locator(".slot-error").is_hidden(), slot.locator(".slot-error").text_content()
    doc, image = stored(app, db_session, "photo_id")
    assert doc.cover is None and image.width > 200
    assert violations == []
    context.close()


def test_a_dark_picture_is_named_and_never_taken_by_itself(
    app, live_server, dark_camera, db_session, auth
):
    flag_everything(db_session)
    context, page = phone(dark_camera)
    violations = watch_csp(page)
    open_portal(app, auth, page, live_server, ref="CAM-3")
    opener = page.locator("#camera-card_back")
    page.locator("#slot-card_back").get_by_text("Take a photo", exact=True).click()
    page.locator("#camera[data-check=too_dark]").wait_for()
    assert page.locator("#camera-check").text_content() == "Too dark: move to more light."
    assert page.evaluate("window.verifierCapture.last.brightness") < 60
    page.get_by_label("Take the photo by itself when everything looks good").check()
    page.wait_for_timeout(2_000)  # twice the hold: nothing was taken
    assert page.locator("#camera").is_visible()
    for key in ["Tab"] * 5 + ["Shift+Tab"] * 5:  # a modal view: the keyboard stays inside
        page.keyboard.press(key)
        assert page.evaluate("document.getElementById('camera').contains(document.activeElement)")
    page.get_by_role("button", name="Cancel").click()
    assert page.locator("#camera").is_hidden()
    assert page.evaluate("document.activeElement.id") == opener.get_attribute("id")
    assert db_session.scalars(select(Document)).all() == []
    assert violations == []
    context.close()


def test_the_checks_name_glare_and_blur(app, live_server, page, db_session, auth):
    """The measures on pictures drawn in the page: even light, a lamp's reflection, a blur."""
    flag_everything(db_session)
    open_portal(app, auth, page, live_server, ref="CAM-4")
    found = page.evaluate("""() => {
      const c = document.createElement("canvas"); c.width = 240; c.height = 151;
      const ctx = c.getContext("2d");
      function scene(filter) {
        ctx.filter = "none"; ctx.fillStyle = "rgb(186,196,210)"; ctx.fillRect(0, 0, 240, 151);
        ctx.filter = filter; ctx.fillStyle = "rgb(30,34,48)"; ctx.font = "12px monospace";
        for (let y = 12; y < 151; y += 16) ctx.fillText("4242 4242 4242 4242 VALID", 4, y);
        ctx.filter = "none";
      }
      const run = () => { const m = window.verifierCapture.measure(
        ctx.getImageData(0, 0, 240, 151).data, 240, 151);
        return [window.verifierCapture.verdict(m), m]; };
      scene("none"); const sharp = run();
      ctx.fillStyle = "#fff"; ctx.beginPath(); ctx.arc(120, 75, 30, 0, 7); ctx.fill();
      const glare = run();
      scene("blur(3px)"); const blurred = run();
      const data = ctx.getImageData(0, 0, 240, 151).data, start = performance.now();
      for (let i = 0; i < 100; i++) window.verifierCapture.measure(data, 240, 151);
      return {sharp, glare, blurred, ms: (performance.now() - start) / 100};
    }""")
    print(
        f"one check of a 240 x 151 frame: {found['ms']:.2f} ms; sharpness sharp "
        f"{found['sharp'][1]['sharpness']:.0f}, blurred {found['blurred'][1]['sharpness']:.0f}"
    )
    assert found["ms"] < 40  # five times a second must leave the phone idle most of the time
    assert found["sharp"][0] is None, found["sharp"]
    assert found["glare"][0] == "glare", found["glare"]
    assert found["blurred"][0] == "blurry", found["blurred"]
    assert found["blurred"][1]["sharpness"] < found["sharp"][1]["sharpness"] / 5


def test_a_refused_camera_leaves_the_camera_app_and_the_file_input(
    app, live_server, bright_camera, db_session, auth, tmp_path
):
    flag_everything(db_session)
    context, page = phone(bright_camera, camera=False)  # Chromium refuses getUserMedia
    violations = watch_csp(page)
    open_portal(app, auth, page, live_server, ref="CAM-5")
    slot = page.locator("#slot-photo_id")
    slot.get_by_text("Take a photo", exact=True).click()
    note = slot.locator(".camera-note")
    note.wait_for(state="visible")
    assert "We could not use your camera here" in note.text_content()
    assert page.locator("#camera").is_hidden()
    # "Take a photo" now opens the camera app (the file input with `capture`).
    photo = tmp_path / "id.jpg"
    card_scene((1200, 800)).save(photo, "JPEG", quality=90)
    with page.expect_file_chooser() as chooser:
        slot.get_by_text("Take a photo", exact=True).click()
    chooser.value.set_files(str(photo))
    slot.locator(".received").wait_for(timeout=30_000)
    assert stored(app, db_session, "photo_id")[0].cover is None
    assert violations == []
    context.close()


def test_without_an_in_page_camera_take_a_photo_is_the_camera_app(
    app, live_server, browser, db_session, auth, tmp_path
):
    flag_everything(db_session)
    context, page = phone(browser, camera=False,
                          init_script="Object.defineProperty(navigator, 'mediaDevices', "
                                      "{value: undefined});")  # fmt: skip
    open_portal(app, auth, page, live_server, ref="CAM-6")
    slot = page.locator("#slot-proof_of_address")
    with page.expect_file_chooser() as chooser:
        slot.get_by_text("Take a photo", exact=True).click()
    assert "cannot show the camera" in slot.locator(".camera-note").text_content()
    assert chooser.value.element.get_attribute("capture") == "environment"
    photo = tmp_path / "bill.jpg"
    card_scene((800, 1130)).save(photo, "JPEG", quality=90)
    chooser.value.set_files(str(photo))
    slot.locator(".received").wait_for(timeout=30_000)
    context.close()


@pytest.mark.parametrize("locale", ["en", "fr", "de", "es"])
def test_the_first_action_is_above_the_fold_on_a_phone(
    app, live_server, phone_page, db_session, auth, locale
):
    flag_everything(db_session)
    violations = watch_csp(phone_page)
    open_portal(app, auth, phone_page, live_server, ref=f"FOLD-{locale}", locale=locale)
    first = phone_page.locator("#slot-card_front .pickers label").first
    box = first.bounding_box()
    print(f"{locale}: first action bottom {box['y'] + box['height']:.0f} px of 844")
    assert box["y"] + box["height"] < PHONE["height"], (locale, box)
    assert phone_page.locator("#slot-card_front .example").is_visible()
    assert phone_page.locator("#slot-card_front .step").is_visible()
    assert violations == []
