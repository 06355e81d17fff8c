"""The shop's brand: field checks, the logo's re-encoding, defaults, and the email sender."""

import io
from datetime import UTC, datetime

import pytest
from PIL import Image
from sqlalchemy import select

from verifier.core.brand import (
    LOGO_BOX,
    Brand,
    load_brand,
    load_logo,
    reencode_logo,
    save_brand,
    validate_brand,
)
from verifier.errors import ValidationError
from verifier.models import AuditEvent

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _image(fmt: str, size=(1200, 600), **save) -> bytes:
    img = Image.new("RGB", size, (20, 80, 160))
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def test_every_bad_field_is_named_with_what_to_do():
    with pytest.raises(ValidationError) as caught:
        validate_brand({"shop_name": "x" * 81, "support_email": "not an email",
                        "support_url": "javascript:alert(1)", "reply_to": "a@",
                        "sender_name": "Shop\nBcc: x@example.com"})  # fmt: skip
    fields = caught.value.fields
    assert set(fields) == {"shop_name", "support_email", "support_url", "reply_to", "sender_name"}
    assert "https://" in fields["support_url"] and "help@example.com" in fields["support_email"]
    assert "one line" in fields["sender_name"]  # no header injection through the From name


def test_empty_fields_fall_back_to_the_installation_defaults(db_session):
    assert load_brand(db_session, "Demo Shop") == Brand(shop_name="Demo Shop")
    assert validate_brand({"shop_name": "  "})["shop_name"] is None


def test_a_logo_is_kept_as_a_small_png_without_its_metadata():
    exif = Image.Exif()
    exif[0x010F] = "Secret Camera Maker"
    png = reencode_logo(_image("JPEG", exif=exif.tobytes()))
    with Image.open(io.BytesIO(png)) as out:
        assert out.format == "PNG"
        assert out.width <= LOGO_BOX[0] and out.height <= LOGO_BOX[1]
        assert not out.getexif()
    assert b"Secret Camera Maker" not in png


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "PNG, JPEG or WebP"),
        (_image("GIF"), "PNG, JPEG or WebP"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG, JPEG or WebP"),
        (b"", "Choose a logo file"),
        (b"x" * (2 * 1024 * 1024 + 1), "under 2 MB"),
    ],
    ids=["svg", "gif", "truncated-png", "empty", "too-large"],
)
def test_a_logo_that_is_not_a_small_raster_image_is_refused(data, says):
    with pytest.raises(ValidationError) as caught:
        reencode_logo(data)
    assert says in caught.value.fields["logo"]


def test_a_decompression_bomb_is_refused_before_decoding():
    bomb = _image("PNG", size=(5000, 4000), optimize=True)  # 20 MP of one colour, a few KB
    with pytest.raises(ValidationError) as caught:
        reencode_logo(bomb)
    assert "megapixels" in caught.value.fields["logo"]


def test_saving_is_audited_and_names_what_changed(db_session):
    logo = reencode_logo(_image("PNG"))
    changed = save_brand(db_session, {"shop_name": "Acme Outdoor", "reply_to": "help@acme.test"},
                         logo=logo, remove_logo=False, actor_label="admin@example.com",
                         actor_id=None, now=NOW)  # fmt: skip
    db_session.commit()
    assert changed == ["shop_name", "reply_to", "logo"]
    brand = load_brand(db_session, "Demo Shop")
    assert brand.shop_name == "Acme Outdoor" and brand.logo_digest
    assert load_logo(db_session, brand.logo_digest) == logo
    assert load_logo(db_session, "0" * 16) is None
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "settings.brand_changed")).one()  # fmt: skip
    assert event.details["fields"] == ["shop_name", "reply_to", "logo"]
    same = save_brand(db_session, {"shop_name": "Acme Outdoor", "reply_to": "help@acme.test"},
                      logo=logo, remove_logo=False, actor_label="admin@example.com",
                      actor_id=None, now=NOW)  # fmt: skip
    assert same == []
    removed = save_brand(db_session, {"shop_name": "Acme Outdoor", "reply_to": "help@acme.test"},
                         logo=None, remove_logo=True, actor_label="admin@example.com",
                         actor_id=None, now=NOW)  # fmt: skip
    assert removed == ["logo"] and load_brand(db_session, "Demo Shop").logo_digest is None


def test_the_sender_is_the_brand_at_the_configured_address():
    assert Brand("Acme").sender("Verifier <no-reply@shop.test>") == "Acme <no-reply@shop.test>"
    named = Brand("Acme", sender_name="Acme, Customer Care")
    assert named.sender("no-reply@shop.test") == '"Acme, Customer Care" <no-reply@shop.test>'
