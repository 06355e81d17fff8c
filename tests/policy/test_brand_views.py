"""The brand settings page, and the brand on customer pages and emails (sender, reply-to)."""

import email
import email.policy
import io
from urllib.parse import urlsplit

import pytest
from PIL import Image
from sqlalchemy import select

from tests.auth_helpers import csrf_admin_client, csrf_token
from tests.portal_helpers import create_flagged_order, email_body, flag_everything, token_path
from verifier.core.brand import load_brand
from verifier.db import new_session
from verifier.models import OutboxEmail
from verifier.notify.mail import FileBackend, deliver_due_emails
from verifier.vault.storage import Keyring

BRAND = {"shop_name": "Acme Outdoor", "support_email": "help@acme.test",
         "support_url": "https://help.acme.test/contact", "sender_name": "Acme Customer Care",
         "reply_to": "care@acme.test"}  # fmt: skip


def _png(size=(600, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def admin_client(client, admin_user, login):
    login(client, admin_user)
    return client


def _save(client, fields: dict, logo: bytes | None = None):
    data = dict(fields) | {"save": "1"}
    if logo is not None:
        data["logo"] = (io.BytesIO(logo), "logo.png")
    return client.post("/admin/settings/brand", data=data, content_type="multipart/form-data")


def test_the_admin_sets_the_brand_and_customers_see_it(app, admin_client, client, auth,
                                                       db_session):  # fmt: skip
    page = admin_client.get("/admin/settings/brand").get_data(as_text=True)
    assert "Test Shop" in page and "(VERIFIER_SHOP_NAME)" in page
    saved = _save(admin_client, BRAND, logo=_png())
    assert saved.status_code == 303
    followed = admin_client.get("/admin/settings/brand").get_data(as_text=True)
    assert "Brand saved" in followed
    db_session.rollback()
    brand = load_brand(db_session, "Test Shop")
    assert brand.shop_name == "Acme Outdoor" and brand.logo_digest
    logo = client.get(f"/brand/logo/{brand.logo_digest}.png")
    assert logo.status_code == 200 and logo.mimetype == "image/png"
    assert "immutable" in logo.headers["Cache-Control"]
    assert logo.headers["Content-Security-Policy"] == "sandbox"
    assert logo.data.startswith(b"\x89PNG") and logo.data != _png()  # re-encoded, not as sent

    admin_client.post("/staff/logout")
    # Every customer page, even the one for a bad link, carries the brand and its contact.
    invalid = client.get("/u/" + "x" * 43).get_data(as_text=True)
    for text in (f"/brand/logo/{brand.logo_digest}.png", 'alt="Acme Outdoor"', "help@acme.test",
                 "help.acme.test", "We never ask for card or ID details"):  # fmt: skip
        assert text in invalid, text
    db_session.rollback()
    flag_everything(db_session)
    body = create_flagged_order(client, auth)
    client.get(token_path(body))
    upload_page = client.get("/portal/").get_data(as_text=True)
    assert "<strong>Acme Outdoor</strong>" in upload_page
    assert "· Acme Outdoor</title>" in upload_page
    assert "Test Shop" not in upload_page


def test_emails_come_from_the_brand_and_say_where_the_link_goes(app, admin_client, client, auth,
                                                                db_session, tmp_path):  # fmt: skip
    assert _save(admin_client, BRAND).status_code == 303
    flag_everything(db_session)
    create_flagged_order(client, auth)
    db_session.rollback()
    row = db_session.scalars(select(OutboxEmail)).one()
    assert row.subject == "Please confirm your order A-1001 with Acme Outdoor"
    text = email_body(Keyring.from_config(app.config), row)
    html = email_body(Keyring.from_config(app.config), row, "html_body")
    host = urlsplit(app.config["BASE_URL"]).hostname
    assert f"This link goes to {host}." in text and f"{app.config['BASE_URL']}/u/" in text
    assert f"This link goes to <strong>{host}</strong>." in html
    assert "We never ask for card or ID details by email or phone." in text
    assert "Questions: help@acme.test" in text and "https://help.acme.test/contact" in text
    report = deliver_due_emails(lambda: new_session(app), FileBackend(tmp_path / "out"),
                                row.created_at, mail_from="Verifier <no-reply@shop.test>",
                                keyring=Keyring.from_config(app.config),
                                shop_name="Test Shop")  # fmt: skip
    assert report.sent == 1
    (path,) = (tmp_path / "out").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["From"] == "Acme Customer Care <no-reply@shop.test>"
    assert message["Reply-To"] == "care@acme.test"


def test_unset_brand_reads_as_the_installation_shop(app, client, auth, db_session, tmp_path):
    flag_everything(db_session)
    create_flagged_order(client, auth)
    db_session.rollback()
    row = db_session.scalars(select(OutboxEmail)).one()
    deliver_due_emails(lambda: new_session(app), FileBackend(tmp_path / "out"), row.created_at,
                       mail_from="Verifier <no-reply@shop.test>",
                       keyring=Keyring.from_config(app.config), shop_name="Test Shop")  # fmt: skip
    (path,) = (tmp_path / "out").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["From"] == "Test Shop <no-reply@shop.test>" and message["Reply-To"] is None


def test_each_bad_field_gets_its_message_and_nothing_is_saved(admin_client, db_session):
    bad = BRAND | {"support_email": "nope", "support_url": "ftp://x"}
    resp = _save(admin_client, bad, logo=b"GIF89a not really")
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "Give an email address such as help@example.com." in page
    assert "Give a web address that starts with https://" in page
    assert "The logo must be a PNG, JPEG or WebP image." in page
    assert 'aria-invalid="true"' in page
    assert 'value="Acme Outdoor"' in page  # what was typed stays in the form
    db_session.rollback()
    assert load_brand(db_session, "Test Shop").shop_name == "Test Shop"


@pytest.mark.parametrize(("who", "status"), [("anonymous", 302), ("reviewer", 403)])
def test_only_admins_reach_the_brand_page(client, reviewer, login, who, status):
    if who == "reviewer":
        login(client, reviewer)
    assert client.get("/admin/settings/brand").status_code == status
    assert _save(client, BRAND).status_code == status


def test_a_brand_post_without_its_csrf_token_is_refused(tmp_path, database_url, admin_user):
    app, client = csrf_admin_client(tmp_path, database_url, admin_user)
    assert _save(client, BRAND).status_code == 400
    page = client.get("/admin/settings/brand").get_data(as_text=True)
    token = csrf_token(page)
    assert _save(client, BRAND | {"csrf_token": token}).status_code == 303
    app.extensions["verifier.engine"].dispose()
