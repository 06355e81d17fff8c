"""Card numbers covered in the decoder: real files through the portal and the decoder, read
back by Tesseract (an OCR independent of the one that masked them)."""

from __future__ import annotations

import io
import sys
from dataclasses import replace

import pillow_heif
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from tests.portal_helpers import upload
from verifier.errors import UploadRejected
from verifier.models import Document
from verifier.portal import cardmask, decoding

pillow_heif.register_heif_opener()  # only so the tests can write HEIC samples

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
TESSDATA = "/usr/share/tesseract-ocr/5/tessdata"
NUMBER = "4242 4242 4242 4242"


def card_front(number: str = NUMBER) -> Image.Image:
    image = Image.new("RGB", (1200, 760), (30, 60, 120))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 64)
    draw.text((80, 100), "DEMO BANK", font=font, fill="white")
    draw.text((80, 400), number, font=font, fill="white")
    draw.text((80, 560), "J SMITH", font=ImageFont.truetype(FONT, 40), fill="white")
    return image


def card_back(code: str = "737") -> Image.Image:
    image = Image.new("RGB", (1200, 760), (200, 200, 210))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 80, 1200, 220), fill=(10, 10, 10))
    draw.rectangle((80, 300, 800, 400), fill=(245, 245, 235))
    draw.text((840, 310), code, font=ImageFont.truetype(FONT, 60), fill=(20, 20, 20))
    return image


def dark_card_back(code: str = "737") -> Image.Image:
    """A photo of a dark card whose security code is printed dark too, beside the strip."""
    image = Image.new("RGB", (1600, 1000), (90, 140, 70))  # the table
    draw = ImageDraw.Draw(image)
    draw.rectangle((200, 150, 1400, 910), fill=(30, 30, 40))
    draw.rectangle((200, 230, 1400, 370), fill=(15, 15, 15))
    draw.rectangle((270, 440, 1000, 530), fill=(235, 235, 225))
    draw.text((1040, 450), code, font=ImageFont.truetype(FONT, 50), fill=(15, 15, 15))
    small = ImageFont.truetype(FONT, 34)
    draw.text((270, 640), "AUTHORISED SIGNATURE - NOT VALID UNLESS SIGNED", font=small,
              fill=(230, 230, 230))  # fmt: skip
    draw.text((270, 720), "Customer service 0800 642 1993", font=small, fill=(230, 230, 230))
    return image


def bill() -> Image.Image:
    image = Image.new("RGB", (1240, 1000), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 30)
    lines = ["City Energy Ltd, electricity bill", "Bill date 14/03/2026",
             "Account number 31969008", "Reference 1234 5678 9012 34",
             "Phone 0113 496 0000", "Total due GBP 123.45 by 28 March 2026"]  # fmt: skip
    for n, line in enumerate(lines):
        draw.text((60, 60 + n * 70), line, font=font, fill=(20, 20, 20))
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, quality=92) if fmt != "PNG" else image.save(out, fmt)
    return out.getvalue()


def pdf_of(image: Image.Image) -> bytes:
    pdf = FPDF(unit="pt", format=(image.width * 0.6, image.height * 0.6))
    pdf.add_page()
    pdf.image(image, x=0, y=0, w=image.width * 0.6, h=image.height * 0.6)
    return bytes(pdf.output())


def tesseract_digits(jpeg: bytes) -> str:
    """Every digit Tesseract reads on the stored image, in reading order."""
    import tesserocr

    image = Image.open(io.BytesIO(jpeg)).convert("L")
    with tesserocr.PyTessBaseAPI(path=TESSDATA, lang="eng", psm=tesserocr.PSM.SPARSE_TEXT) as api:
        api.SetImage(image)
        text = api.GetUTF8Text()
    return "".join(c for c in text if c.isdigit())


def masked_share(jpeg: bytes, box: tuple[int, int, int, int]) -> float:
    """Share of pixels in `box` that are the mask's dark fill (JPEG-tolerant)."""
    region = Image.open(io.BytesIO(jpeg)).convert("L").crop(box)
    return sum(region.histogram()[:50]) / (region.width * region.height)


def decode(data: bytes, kind: str) -> decoding.ProcessedUpload:
    return decoding.decode_upload(data, replace(decoding.DEFAULT_LIMITS, document_kind=kind))


# --- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "ok"),
    [("4242424242424242", True), ("4242424242424241", False), ("378282246310005", True),
     ("6011111111111117", True), ("79927398713", True), ("79927398710", False), ("", False),
     ("4242x", False)],
)  # fmt: skip
def test_luhn(digits, ok):
    assert cardmask.luhn_ok(digits) is ok


def test_card_numbers_in_any_grouping_and_references_that_only_look_like_one():
    amex = "378282246310005"
    assert cardmask.find_card_runs(amex, strict=True, groups=frozenset({4, 10})) == [(0, 15)]
    # A 14-digit reference fails Luhn as a whole; a 13-digit slice of it passing does not count.
    reference = "95245560858181"
    assert not cardmask.luhn_ok(reference) and cardmask.luhn_ok(reference[1:])
    assert cardmask.find_card_runs(reference, strict=True, groups=frozenset({4, 8, 12})) == []
    # On a card slot a number with one misread digit is still covered whole.
    assert cardmask.find_card_runs("4242424242424241", strict=False) == [(0, 16)]
    assert cardmask.find_card_runs("424242424242", strict=True) == []


# --- through the decoder ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF", "PDF"])
def test_a_card_front_keeps_only_its_last_four_digits_in_every_format(fmt):
    image = card_front()
    data = pdf_of(image) if fmt == "PDF" else encode(image, fmt)
    page = decode(data, "card_front").pages[0]
    assert page.masked == 1
    assert tesseract_digits(page.data) == "4242"


def test_a_card_in_the_photo_id_slot_is_masked_too():
    page = decode(encode(card_front(), "PNG"), "photo_id").pages[0]
    assert page.masked == 1
    assert tesseract_digits(page.data) == "4242"


def test_a_card_back_has_its_security_code_covered_and_the_strip_left():
    page = decode(encode(card_back("737"), "PNG"), "card_back").pages[0]
    assert page.masked >= 1
    assert "737" not in tesseract_digits(page.data)
    assert masked_share(page.data, (840, 310, 950, 380)) > 0.9
    assert masked_share(page.data, (100, 310, 600, 390)) == 0  # the signature strip


def test_a_dark_code_on_a_dark_card_back_is_found_on_the_equalised_second_reading():
    image = dark_card_back("737")
    first, _ = cardmask.read_glyphs(image)
    assert not cardmask._has_code(first)  # the plain reading misses it: the second one works
    page = decode(encode(image, "PNG"), "card_back").pages[0]
    assert page.masked >= 2  # the code and the service number's groups
    assert masked_share(page.data, (1045, 462, 1125, 498)) > 0.9
    assert masked_share(page.data, (290, 450, 900, 520)) == 0  # the signature strip


def test_a_bill_with_dates_phones_and_references_is_not_masked():
    page = decode(encode(bill(), "PNG"), "proof_of_address").pages[0]
    assert page.masked == 0
    assert "31969008" in tesseract_digits(page.data)


def test_without_ocr_the_decoder_refuses_rather_than_store_unmasked(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # import now fails
    monkeypatch.setattr(cardmask, "_engine_instance", None)
    with pytest.raises(UploadRejected) as refused:
        decode(encode(card_front(), "PNG"), "card_front")
    assert refused.value.code == "masking_unavailable"
    assert "rapidocr" in cardmask.check_engine()


# --- through the portal ----------------------------------------------------------------------


def test_the_portal_stores_a_masked_card_and_says_so(
    app, client, opened, db_session, login, reviewer
):
    resp = upload(client, "card_front", encode(card_front(), "JPEG"))
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()["document"]
    assert body["auto_masked"] == 1 and "card number" in body["masked_message"]
    stored = client.get(body["previews"][0]).data
    assert tesseract_digits(stored) == "4242"
    doc = db_session.scalar(select(Document))
    assert doc.auto_masked == 1
    assert "We covered the card number" in client.get("/portal/").get_data(as_text=True)

    staff = app.test_client()
    login(staff, reviewer)
    page = staff.get(f"/review/cases/{doc.case_id}").get_data(as_text=True)
    assert "Number covered automatically" in page


def test_readyz_says_card_photos_are_refused_without_ocr(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "refused" in ready.get_json()["card_masking"]
