"""The customer portal over HTTP: the link exchange, uploads, submission, declining."""

import logging
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.portal_helpers import (
    create_flagged_order,
    email_body,
    flag_everything,
    jpeg_bytes,
    token_path,
    upload,
)
from verifier.models import (
    AuditEvent,
    Document,
    UploadLink,
    VerificationCase,
    WebhookEvent,
)
from verifier.web.limits import limiter


def _row_counts(db_session) -> dict:
    from verifier.models import Base

    db_session.rollback()
    return {
        t.name: db_session.scalar(select(func.count()).select_from(t))
        for t in Base.metadata.sorted_tables
    }


def test_opening_the_link_redirects_to_a_token_free_page_and_changes_nothing(
    client, auth, db_session
):
    flag_everything(db_session)
    body = create_flagged_order(client, auth)
    path = token_path(body)
    before = _row_counts(db_session)
    resp = client.get(path)
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/portal/"
    assert _row_counts(db_session) == before
    page = client.get("/portal/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "A-1001" in html and "Test Shop" in html and "€129.99" in html
    assert path.removeprefix("/u/") not in html
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert page.headers["Cache-Control"] == "no-store"
    assert "never ask for card or ID details" in html


def test_unknown_forged_and_revoked_links_get_the_same_page(client, auth, db_session):
    flag_everything(db_session)
    path = token_path(create_flagged_order(client, auth))
    forged = client.get(path[:-2] + "xy")
    unknown = client.get("/u/" + "A" * 43)
    db_session.execute(update(UploadLink).values(revoked_at=datetime.now(UTC)))
    db_session.commit()
    revoked = client.get(path)
    assert forged.status_code == unknown.status_code == revoked.status_code == 404
    assert forged.data == unknown.data == revoked.data
    assert b"This link is not valid" in forged.data


def test_expired_link_says_what_to_do(client, auth, db_session):
    flag_everything(db_session)
    path = token_path(create_flagged_order(client, auth))
    db_session.execute(
        update(UploadLink).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    )
    db_session.commit()
    resp = client.get(path)
    assert resp.status_code == 410
    assert b"This link has expired" in resp.data and b"contact Test Shop" in resp.data


def test_a_tampered_blob_is_an_integrity_alert_and_a_plain_message(
    app, client, opened, db_session, caplog
):
    resp = upload(client, "card_front", jpeg_bytes())
    preview_url = resp.get_json()["document"]["previews"][0]
    doc = db_session.scalar(select(Document))
    path = next(Path(app.config["UPLOADS_DIR"]).glob(f"*/{doc.blob_name}"))
    damaged = bytearray(path.read_bytes())
    damaged[-40] ^= 0x01  # one bit of the ciphertext flipped on disk
    path.write_bytes(bytes(damaged))
    caplog.set_level(logging.ERROR)
    preview = client.get(preview_url)
    text = preview.get_data(as_text=True)
    assert preview.status_code == 422
    assert "be shown: its stored copy is damaged" in text
    assert doc.blob_name not in text and "authentication" not in text and "Traceback" not in text
    alerts = [r.getMessage() for r in caplog.records if "integrity alert" in r.getMessage()]
    assert alerts and doc.id in alerts[0]


def test_portal_without_a_session_explains_how_to_get_back(client):
    resp = client.get("/portal/")
    assert resp.status_code == 403
    assert b"open your link again" in resp.data.lower()


def test_upload_stores_an_encrypted_reencoded_image(app, client, opened, db_session):
    original = jpeg_bytes()
    resp = upload(client, "card_front", original)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()["document"]
    assert body["kind"] == "card_front" and body["pages"] == 1
    doc = db_session.scalar(select(Document))
    blob = next(Path(app.config["UPLOADS_DIR"]).glob(f"*/{doc.blob_name}")).read_bytes()
    assert original not in blob and original[200:264] not in blob
    preview = client.get(body["previews"][0])
    assert preview.status_code == 200
    assert preview.mimetype == "image/jpeg"
    assert preview.headers["Content-Security-Policy"] == "sandbox"
    assert preview.data[:3] == b"\xff\xd8\xff" and preview.data != original
    assert preview.data[200:264] not in blob


@pytest.mark.parametrize(
    ("data", "filename", "code"),
    [
        (b"", "empty.jpg", "empty_file"),
        (b"<html><script>alert(1)</script></html>", "photo.jpg", "type_not_allowed"),
        (b"#!/bin/sh\nrm -rf /\n", "card.jpg", "type_not_allowed"),
        (jpeg_bytes()[:2000], "truncated.jpg", "unreadable"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(client, opened, db_session, data, filename,
                                                    code):  # fmt: skip
    resp = upload(client, "card_front", data, filename)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == code and len(error["message"]) > 20
    assert db_session.scalar(select(func.count(Document.id))) == 0


def test_oversized_upload_is_413_json(app, client, opened):
    app.config["UPLOAD_MAX_FILE_BYTES"] = 200_000
    resp = upload(client, "card_front", b"\xff\xd8\xff" + os.urandom(700_000))
    assert resp.status_code == 413
    error = resp.get_json()["error"]
    assert error["code"] == "too_large"
    assert "the limit is 195 KB" in error["message"] and "smaller photo" in error["message"]


def test_oversized_upload_without_javascript_gets_a_page_that_says_the_limit(app, client, opened):
    app.config["UPLOAD_MAX_FILE_BYTES"] = 2 * 1024 * 1024
    resp = upload(client, "proof_of_address", os.urandom(3 * 1024 * 1024), json=False)
    assert resp.status_code == 413
    page = resp.get_data(as_text=True)
    assert "the limit is 2 MB" in page and "Back to the upload page" in page
    assert "The request is too large" not in page


def test_upload_without_javascript_redirects_with_a_message(client, opened):
    resp = upload(client, "card_front", b"<html></html>", json=False)
    assert resp.status_code == 303
    page = client.get("/portal/").get_data(as_text=True)
    assert "Front of the card:" in page and "JPEG" in page


def test_replacing_a_document_keeps_one_and_deletes_the_old_blob(app, client, opened, db_session):
    first = upload(client, "card_front", jpeg_bytes())
    second = upload(client, "card_front", jpeg_bytes(size=(1000, 700)))
    assert first.status_code == second.status_code == 201
    docs = db_session.scalars(select(Document).order_by(Document.created_at)).all()
    assert [d.status for d in docs] == ["replaced", "active"]
    assert docs[0].wrapped_key is None and docs[0].blob_name is None
    blobs = [p.name for p in Path(app.config["UPLOADS_DIR"]).glob("*/*")]
    assert blobs == [docs[1].blob_name]
    assert client.get(first.get_json()["document"]["previews"][0]).status_code == 404


def test_submit_needs_a_complete_set_and_is_sent_once(client, opened, db_session):
    assert upload(client, "card_front", jpeg_bytes()).status_code == 201
    resp = client.post("/portal/submit")
    assert resp.status_code == 303
    assert b"still missing" in client.get("/portal/").data
    assert db_session.scalar(select(VerificationCase.status)) == "awaiting_documents"
    assert upload(client, "card_back", jpeg_bytes()).status_code == 201
    client.post("/portal/submit")
    client.post("/portal/submit")  # a double click
    db_session.rollback()
    case = db_session.scalar(select(VerificationCase))
    assert case.status == "in_review" and case.submitted_at is not None
    events = db_session.scalars(select(WebhookEvent)).all()
    assert [e.payload["data"]["status"] for e in events] == ["in_review"]
    page = client.get("/portal/").get_data(as_text=True)
    assert "we have your documents" in page and "Send for review" not in page
    late = upload(client, "photo_id", jpeg_bytes())
    assert late.status_code == 409


def test_photo_id_and_proof_of_address_also_complete_the_set(client, opened, db_session):
    assert upload(client, "photo_id", jpeg_bytes()).status_code == 201
    assert upload(client, "proof_of_address", jpeg_bytes()).status_code == 201
    client.post("/portal/submit")
    db_session.rollback()
    assert db_session.scalar(select(VerificationCase.status)) == "in_review"


def test_declining_tells_the_shop(client, opened, db_session):
    page = client.get("/portal/decline")
    assert b"rather not verify" in page.data
    resp = client.post("/portal/decline", data={"reason": "I cancelled the order"})
    assert resp.status_code == 303
    db_session.rollback()
    case = db_session.scalar(select(VerificationCase))
    assert case.status == "declined" and case.declined_reason == "I cancelled the order"
    event = db_session.scalar(select(WebhookEvent))
    assert event.payload["data"]["status"] == "declined"
    assert b"You chose not to verify" in client.get("/portal/").data


def test_per_case_upload_cap(client, auth, db_session):
    flag_everything(db_session, max_uploads_per_case=4)
    client.get(token_path(create_flagged_order(client, auth)))
    for _ in range(4):
        assert upload(client, "card_front", jpeg_bytes((700, 500))).status_code == 201
    resp = upload(client, "card_front", jpeg_bytes((700, 500)))
    assert resp.status_code == 429
    assert resp.get_json()["error"]["code"] == "too_many_uploads"


def test_handoff_shows_a_qr_code_with_a_short_lived_link(client, opened, db_session):
    resp = client.post("/portal/handoff")
    assert resp.status_code == 200
    assert b'src="data:image/svg+xml' in resp.data
    links = db_session.scalars(select(UploadLink).order_by(UploadLink.id)).all()
    assert len(links) == 2
    assert links[1].expires_at - datetime.now(UTC) <= timedelta(hours=1)
    assert client.get("/portal/handoff").status_code == 405


def test_upload_link_lookups_are_rate_limited(client, auth, db_session):
    limiter.reset()
    flag_everything(db_session)
    path = token_path(create_flagged_order(client, auth))
    statuses = [client.get(path).status_code for _ in range(31)]
    assert statuses[:30] == [303] * 30
    assert statuses[30] == 429
    limiter.reset()


def test_portal_session_only_reaches_its_own_case(client, auth, db_session):
    flag_everything(db_session)
    create_flagged_order(client, auth, "A-1")
    other = create_flagged_order(client, auth, "A-2")
    client.get(token_path(other))
    upload(client, "card_front", jpeg_bytes())
    docs = db_session.scalars(select(Document)).all()
    case_ids = {c.order.external_id: c.id for c in db_session.scalars(select(VerificationCase))}
    assert {d.case_id for d in docs} == {case_ids["A-2"]}


def test_no_plaintext_touches_the_disk_during_a_large_upload(app, client, opened, tmp_path,
                                                              monkeypatch, db_session):  # fmt: skip
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    original = jpeg_bytes((2400, 1800), noise=True, quality=92)
    assert len(original) > 3_000_000
    started = time.time() - 1
    resp = upload(client, "card_front", original)
    assert resp.status_code == 201, resp.get_json()
    reencoded = client.get(resp.get_json()["document"]["previews"][0]).data
    needles = [original[i : i + 48] for i in range(100_000, len(original), 700_000)]
    needles += [reencoded[i : i + 48] for i in range(20_000, len(reencoded), 300_000)]
    roots = [tmp_path, Path(tempfile.gettempdir()), Path(app.config["INSTANCE_DIR"]),
             Path("/dev/shm"), Path("/tmp")]  # fmt: skip
    scanned = 0
    # os.walk, not rglob: another process's temporary folder may vanish during the walk.
    files = (Path(top, name) for root in roots for top, _, names in os.walk(root) for name in names)
    for path in files:
        try:
            if not path.is_file() or path.stat().st_mtime < started:
                continue
            content = path.read_bytes()
        except OSError:
            continue
        scanned += 1
        assert not any(n in content for n in needles), f"plaintext found in {path}"
    assert scanned >= 1  # at least the encrypted blob itself was read
    audit = db_session.scalars(select(AuditEvent.details)).all()
    assert all(original[:64].hex() not in str(d) for d in audit)


def test_all_four_documents_when_the_admin_requires_them(client, auth, db_session):
    flag_everything(db_session, document_requirement="all")
    client.get(token_path(create_flagged_order(client, auth)))
    page = client.get("/portal/").get_data(as_text=True)
    assert "a photo ID (driving licence or passport)" in page and "or</li>" not in page
    for kind in ("card_front", "card_back"):
        assert upload(client, kind, jpeg_bytes()).status_code == 201
    client.post("/portal/submit")
    db_session.rollback()
    assert db_session.scalar(select(VerificationCase.status)) == "awaiting_documents"
    for kind in ("photo_id", "proof_of_address"):
        assert upload(client, kind, jpeg_bytes()).status_code == 201
    client.post("/portal/submit")
    db_session.rollback()
    assert db_session.scalar(select(VerificationCase.status)) == "in_review"


def test_resubmission_round_trip(app, client, auth, db_session, reviewer):
    """A reviewer asks again for the back of the card: the customer gets a new link that
    asks for that document only, and sending it puts the case back in review."""
    from verifier.core.policies import current_settings
    from verifier.models import OutboxEmail
    from verifier.portal.customer_mail import PortalContext
    from verifier.portal.links import reopen_link
    from verifier.review.claims import claim_case
    from verifier.review.decisions import request_resubmission
    from verifier.vault.storage import Keyring

    flag_everything(db_session)
    first_link = token_path(create_flagged_order(client, auth))
    client.get(first_link)
    for kind in ("card_front", "card_back"):
        assert upload(client, kind, jpeg_bytes()).status_code == 201
    client.post("/portal/submit")
    db_session.rollback()
    case = db_session.scalar(select(VerificationCase))
    now = datetime.now(UTC)
    settings = current_settings(db_session)
    portal = PortalContext("http://localhost", "Test Shop", Keyring.from_config(app.config))
    claim_case(db_session, case.id, reviewer.id, now, settings)
    request_resubmission(
        db_session, case.id, reviewer.id, now, settings, kinds=["card_back"],
        message="The photo of the back is blurred.",
        reopen=lambda c: reopen_link(db_session, c, portal=portal, settings=settings, now=now),
    )  # fmt: skip
    db_session.commit()
    email = db_session.scalar(select(OutboxEmail).where(OutboxEmail.kind == "resubmission"))
    text = email_body(portal.keyring, email)
    assert "The photo of the back is blurred." in text
    new_link = text.split("http://localhost")[1].split()[0]

    customer = app.test_client()
    assert customer.get(first_link).status_code == 404  # the old link was revoked
    assert customer.get(new_link).status_code == 303
    page = customer.get("/portal/").get_data(as_text=True)
    assert "One more step" in page and "The photo of the back is blurred." in page
    assert 'id="slot-card_back"' in page and 'id="slot-card_front"' not in page
    assert upload(customer, "card_front", jpeg_bytes()).status_code == 422
    assert upload(customer, "card_back", jpeg_bytes()).status_code == 201
    customer.post("/portal/submit")
    db_session.rollback()
    refreshed = db_session.get(VerificationCase, case.id, populate_existing=True)
    assert refreshed.status == "in_review" and refreshed.resubmission_count == 1
