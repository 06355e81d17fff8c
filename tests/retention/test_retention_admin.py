"""Erasure on request, legal holds (admin pages and API), the evidence PDF, receipts and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select

from tests.retention_helpers import (
    DAY,
    NOW,
    add_document,
    blob_path,
    factory,
    jpeg_bytes,
    keyring_of,
    make_case,
    plaintext_on_disk,
)
from verifier.core.settings import Settings
from verifier.db import new_session
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import AuditEvent, Document, Order, OutboxEmail, VerificationCase
from verifier.retention.erasure import erase_customer
from verifier.retention.purge import purge_due_documents


@pytest.fixture
def uploads(app) -> Path:
    return Path(app.config["UPLOADS_DIR"])


def events(app, action: str) -> list[AuditEvent]:
    with new_session(app) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def fetch(app, model, ident):
    with new_session(app) as session:
        return session.get(model, ident)


@pytest.fixture
def customer(app, db_session, uploads):
    """Alice: a decided order with two documents (not yet due) and an open one with one."""
    keyring = keyring_of(app)
    decided = make_case(db_session, "R-1", "approved", decided_at=NOW - 2 * DAY)
    open_case = make_case(db_session, "R-2", "awaiting_documents", link_expires_at=NOW + DAY)
    other = make_case(db_session, "R-3", "approved", decided_at=NOW - 2 * DAY,
                      email="bob@example.com")  # fmt: skip
    docs = [
        add_document(db_session, uploads, keyring, decided, "card_front", seed=1),
        add_document(db_session, uploads, keyring, decided, "photo_id", seed=2),
        add_document(db_session, uploads, keyring, open_case, "card_front", seed=3),
    ]
    bobs = add_document(db_session, uploads, keyring, other, "card_front", seed=4)
    db_session.add(
        OutboxEmail(case_id=open_case.id, kind="reminder", to_address="alice@example.com",
                    subject="Reminder", text_body="Dear Alice Meyer", html_body="<p>Alice</p>",
                    created_at=NOW, next_attempt_at=NOW)
    )  # fmt: skip
    db_session.commit()
    return {
        "cases": [decided, open_case],
        "docs": [(d.id, d.blob_name) for d in docs],
        "bob": (other, bobs.id, bobs.blob_name),
    }


# --- erasure ---------------------------------------------------------------------------------


def test_erasure_by_email_destroys_documents_and_details_at_once(app, uploads, customer):
    report = erase_customer(
        factory(app), uploads, email=" Alice@Example.com ", reason="Customer asked to be forgotten",
        actor_id=7, now=NOW,
    )  # fmt: skip

    assert (report.documents_erased, report.blobs_deleted, report.orders_anonymised) == (3, 3, 2)
    assert sorted(report.orders) == ["R-1", "R-2"]
    for doc_id, blob_name in customer["docs"]:
        doc = fetch(app, Document, doc_id)
        assert (doc.status, doc.wrapped_key, doc.blob_name) == ("erased", None, None)
        assert doc.erased_at == NOW
        assert not blob_path(uploads, blob_name).exists()
    assert not plaintext_on_disk(uploads, [jpeg_bytes(i) for i in (1, 2, 3)])
    with new_session(app) as session:
        orders = {o.external_id: o for o in session.scalars(select(Order))}
        email = session.scalar(select(OutboxEmail))
        cases = [session.get(VerificationCase, c.id) for c in customer["cases"]]
    assert orders["R-1"].customer_name == "[anonymised]" and orders["R-1"].anonymised_at == NOW
    assert orders["R-1"].amount_minor == 12999
    assert orders["R-3"].customer_name == "Alice Meyer"  # another customer's order is untouched
    assert (email.status, email.to_address, email.text_body) == (
        "cancelled", "anonymised@anonymised.invalid", "[anonymised]"
    )  # fmt: skip
    assert all(c.documents_purged_at == NOW for c in cases)
    _bob_case, _bob_id, bob_blob = customer["bob"]
    assert blob_path(uploads, bob_blob).exists()

    (event,) = events(app, "retention.erasure")
    assert event.actor_id == "7"
    assert event.details["documents_erased"] == 3
    assert "alice" not in str(event.details).lower()  # the erased email is not kept in the log


def test_erasure_by_order_number_takes_that_customers_orders(app, uploads, customer):
    report = erase_customer(factory(app), uploads, order_external_id="R-2", reason="request",
                            actor_id=1, now=NOW)  # fmt: skip
    assert sorted(report.orders) == ["R-1", "R-2"] and report.documents_erased == 3


def test_erasure_of_a_held_case_is_refused_and_erases_nothing(app, db_session, uploads, customer):
    case = db_session.get(VerificationCase, customer["cases"][0].id)
    case.legal_hold_at, case.legal_hold_reason = NOW, "chargeback CB-9"
    db_session.commit()

    with pytest.raises(ConflictError, match="chargeback CB-9"):
        erase_customer(factory(app), uploads, email="alice@example.com", reason="request",
                       actor_id=1, now=NOW)  # fmt: skip
    for doc_id, blob_name in customer["docs"]:
        assert fetch(app, Document, doc_id).wrapped_key is not None
        assert blob_path(uploads, blob_name).exists()
    assert events(app, "retention.erasure") == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, ValidationError),
        ({"email": "alice@example.com", "order_external_id": "R-1"}, ValidationError),
        ({"email": "nobody@example.com"}, NotFoundError),
        ({"order_external_id": "NOPE"}, NotFoundError),
        ({"email": "alice@example.com", "reason": "  "}, ValidationError),
    ],
)
def test_erasure_input_errors(app, uploads, customer, kwargs, error):
    kwargs = {"reason": "request"} | kwargs
    with pytest.raises(error):
        erase_customer(factory(app), uploads, actor_id=1, now=NOW, **kwargs)


def test_erasure_interrupted_before_the_files_go_is_finished_by_the_purge(app, uploads, customer):
    class Crash(Exception):
        pass

    def crash(step):
        raise Crash(step)

    with pytest.raises(Crash):
        erase_customer(factory(app), uploads, email="alice@example.com", reason="request",
                       actor_id=1, now=NOW, _fault=crash)  # fmt: skip
    for doc_id, blob_name in customer["docs"]:
        doc = fetch(app, Document, doc_id)
        assert doc.wrapped_key is None and doc.status == "erased"  # keys gone with the commit
        assert blob_path(uploads, blob_name).exists()
    report = purge_due_documents(factory(app), uploads, NOW, Settings())
    assert report.blobs_deleted == 3 and report.unfinished_completed == 3
    for doc_id, blob_name in customer["docs"]:
        assert fetch(app, Document, doc_id).blob_name is None
        assert not blob_path(uploads, blob_name).exists()


# --- API: legal hold -------------------------------------------------------------------------


def test_api_hold_and_release(app, client, auth, customer):
    response = client.post("/api/v1/orders/R-1/hold", json={"reason": "Chargeback CB-1"},
                           headers=auth)  # fmt: skip
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["held"] is True and body["reason"] == "Chargeback CB-1"
    case = fetch(app, VerificationCase, customer["cases"][0].id)
    assert case.legal_hold_reason == "Chargeback CB-1" and case.legal_hold_at is not None

    # The held documents outlive their retention period.
    report = purge_due_documents(factory(app), app.config["UPLOADS_DIR"], NOW + 90 * DAY,
                                 Settings())  # fmt: skip
    assert report.held_cases == 1
    assert fetch(app, Document, customer["docs"][0][0]).wrapped_key is not None

    response = client.delete("/api/v1/orders/R-1/hold", headers=auth)
    assert response.status_code == 200
    assert response.get_json()["held"] is False
    assert fetch(app, VerificationCase, case.id).legal_hold_at is None
    assert client.delete("/api/v1/orders/R-1/hold", headers=auth).status_code == 200
    (held,) = events(app, "case.legal_hold_set")
    assert held.actor_type == "api" and held.details["reason"] == "Chargeback CB-1"
    assert len(events(app, "case.legal_hold_released")) == 1


@pytest.mark.parametrize("method", ["post", "delete"])
def test_api_hold_errors(app, client, auth, db_session, customer, method):
    make_case(db_session, "CLEARED-1", None, with_case=False)
    db_session.commit()
    call = getattr(client, method)
    body = {"json": {"reason": "chargeback"}}
    assert call("/api/v1/orders/R-1/hold", **body).status_code == 401
    assert call("/api/v1/orders/R-1/hold", headers={"Authorization": "Bearer nope"},
                **body).status_code == 401  # fmt: skip
    missing = call("/api/v1/orders/NOPE/hold", headers=auth, **body)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    no_case = call("/api/v1/orders/CLEARED-1/hold", headers=auth, **body)
    assert no_case.status_code == 409 and no_case.get_json()["error"]["code"] == "no_case"
    blank = call("/api/v1/orders/R-1/hold", headers=auth, json={"reason": "  "})
    assert blank.status_code == 422 and "reason" in blank.get_json()["error"]["fields"]


def test_api_hold_needs_a_reason(client, auth, customer):
    for kwargs in ({"json": {}}, {"json": {"reason": 5}}, {}, {"json": {"reason": "x" * 501}}):
        response = client.post("/api/v1/orders/R-1/hold", headers=auth, **kwargs)
        assert response.status_code == 422, kwargs
        assert response.get_json()["error"]["fields"] == {"reason": response.get_json()["error"][
            "fields"]["reason"]}  # fmt: skip


# --- admin pages -----------------------------------------------------------------------------


ROUTES = [
    ("get", "/admin/retention/"),
    ("get", "/admin/retention/cases/{case}/receipt"),
    ("post", "/admin/retention/cases/{case}/evidence"),
    ("post", "/admin/retention/holds"),
    ("post", "/admin/retention/holds/{case}/release"),
    ("post", "/admin/retention/erasure"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(("who", "expected"), [("anonymous", 302), ("reviewer", 403)])
def test_retention_pages_are_for_admins_only(
    client, login, reviewer, customer, method, path, who, expected
):
    if who == "reviewer":
        login(client, reviewer)
    url = path.format(case=customer["cases"][0].id)
    response = getattr(client, method)(url)
    assert response.status_code == expected
    if expected == 302:
        assert "/staff/login" in response.headers["Location"]


def test_index_shows_schedule_holds_and_runs(app, client, login, admin_user, db_session, customer):
    case = db_session.get(VerificationCase, customer["cases"][0].id)
    case.legal_hold_at, case.legal_hold_reason = NOW, "chargeback CB-3"
    db_session.commit()
    purge_due_documents(factory(app), app.config["UPLOADS_DIR"], NOW, Settings(), actor="worker")
    login(client, admin_user)

    response = client.get("/admin/retention/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Stored documents and when they go" in html
    assert "R-1" in html and "chargeback CB-3" in html and "legal hold" in html
    assert "R-3" in html  # scheduled: decided 2 days ago
    assert re.search(r"<td>#\d+</td>\s*<td>[\d-]+ [\d:]+</td>\s*<td>worker</td>", html)


def test_admin_sets_and_releases_a_hold(app, client, login, admin_user, customer):
    login(client, admin_user)
    case_id = customer["cases"][0].id
    missing = client.post("/admin/retention/holds", data={"order_external_id": "R-1"})
    assert missing.status_code == 422
    unknown = client.post("/admin/retention/holds",
                          data={"order_external_id": "NOPE", "reason": "x"})  # fmt: skip
    assert unknown.status_code == 404 and "No order" in unknown.get_data(as_text=True)

    data = {"order_external_id": "R-1", "reason": "chargeback CB-4"}
    response = client.post("/admin/retention/holds", data=data)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/admin/retention/cases/{case_id}/receipt")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "chargeback CB-4" in page and "because of an open legal matter" in page
    assert fetch(app, VerificationCase, case_id).legal_hold_reason == "chargeback CB-4"
    (event,) = events(app, "case.legal_hold_set")
    assert event.actor_type == "staff" and event.actor_id == str(admin_user.id)

    no_reason = client.post(f"/admin/retention/holds/{case_id}/release", data={"reason": ""})
    assert no_reason.status_code == 303
    assert fetch(app, VerificationCase, case_id).legal_hold_at is not None
    client.post(f"/admin/retention/holds/{case_id}/release", data={"reason": "dispute won"})
    assert fetch(app, VerificationCase, case_id).legal_hold_at is None
    (released,) = events(app, "case.legal_hold_released")
    assert released.details["reason"] == "dispute won"


def test_admin_erasure_form(app, client, login, admin_user, customer, uploads):
    login(client, admin_user)
    unconfirmed = client.post("/admin/retention/erasure",
                              data={"email": "alice@example.com", "reason": "request"})  # fmt: skip
    assert unconfirmed.status_code == 422
    assert "Tick the box" in unconfirmed.get_data(as_text=True)
    both = client.post(
        "/admin/retention/erasure",
        data={
            "email": "alice@example.com",
            "order_external_id": "R-1",
            "reason": "r",
            "confirm": "y",
        },
    )
    assert both.status_code == 422
    assert all(blob_path(uploads, name).exists() for _id, name in customer["docs"])

    response = client.post(
        "/admin/retention/erasure",
        data={"email": "alice@example.com", "reason": "GDPR request", "confirm": "y"},
    )
    assert response.status_code == 303
    page = client.get("/admin/retention/").get_data(as_text=True)
    assert "Erased 3 document(s)" in page
    assert not any(blob_path(uploads, name).exists() for _id, name in customer["docs"])


def test_admin_erasure_refuses_a_held_case_and_says_why(
    app, client, login, admin_user, db_session, customer, uploads
):
    case = db_session.get(VerificationCase, customer["cases"][1].id)
    case.legal_hold_at, case.legal_hold_reason = NOW, "police request 42"
    db_session.commit()
    login(client, admin_user)
    response = client.post(
        "/admin/retention/erasure",
        data={"order_external_id": "R-1", "reason": "request", "confirm": "y"},
    )
    assert response.status_code == 409
    assert "police request 42" in response.get_data(as_text=True)
    assert all(blob_path(uploads, name).exists() for _id, name in customer["docs"])


def test_receipt_after_purge_can_be_shown_to_the_customer(app, client, login, admin_user, customer):
    report = purge_due_documents(factory(app), app.config["UPLOADS_DIR"], NOW + 60 * DAY,
                                 Settings())  # fmt: skip
    login(client, admin_user)
    case_id = customer["cases"][0].id
    found = client.get("/admin/retention/cases?order=R-1")
    assert found.headers["Location"].endswith(f"/cases/{case_id}/receipt")
    html = client.get(f"/admin/retention/cases/{case_id}/receipt").get_data(as_text=True)
    wording = html[html.index('id="customer-wording"') : html.index("Details (staff only)")]
    assert "we permanently deleted" in wording
    assert "front of the payment card (1 image)" in wording and "photo ID (1 image)" in wording
    assert f"(deletion run {report.run_id})" in wording
    assert (
        "no copy of the\n        document, including any copy in our backups, can be read"
        in wording
    )


def test_csrf_is_required_for_erasure(app, client, login, admin_user, customer):
    login(client, admin_user)
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post(
        "/admin/retention/erasure",
        data={"email": "alice@example.com", "reason": "request", "confirm": "y"},
    )
    assert response.status_code == 400
    assert fetch(app, Document, customer["docs"][0][0]).wrapped_key is not None


# --- evidence bundle -------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    return "\n".join(page.get_textpage().get_text_range() for page in document)


def image_count(data: bytes) -> int:
    document = pdfium.PdfDocument(data)
    return sum(
        1
        for page in document
        for obj in page.get_objects()
        if obj.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE
    )


def test_evidence_pdf_holds_the_case_and_its_export_is_audited(
    app, client, login, admin_user, db_session, customer, uploads
):
    case = db_session.get(VerificationCase, customer["cases"][0].id)
    case.checklist = {"card_name_matches": "yes", "id_not_expired": "not_applicable"}
    db_session.commit()
    login(client, admin_user)
    files_before = sorted(p.name for p in Path(app.config["INSTANCE_DIR"]).rglob("*"))

    response = client.post(f"/admin/retention/cases/{case.id}/evidence")
    data = response.get_data()
    assert response.status_code == 200
    assert data.startswith(b"%PDF")
    assert response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert "attachment" in response.headers["Content-Disposition"]
    text = pdf_text(data)
    for expected in ("order R-1", "Alice Meyer", "129.99 EUR", "approved",
                     "The name on the card matches the cardholder on the order: yes",
                     "front of the payment card", "photo ID", "Audit trail"):  # fmt: skip
        assert expected in text, expected
    assert image_count(data) == 2
    (event,) = events(app, "case.evidence_exported")
    assert (event.actor_type, event.target_id) == ("staff", str(case.id))
    # Decrypted only in memory: nothing new on disk, no plaintext in the uploads folder.
    assert sorted(p.name for p in Path(app.config["INSTANCE_DIR"]).rglob("*")) == files_before
    assert not plaintext_on_disk(uploads, [jpeg_bytes(i) for i in (1, 2)])

    # A second export lists the first one in its audit trail.
    again = pdf_text(client.post(f"/admin/retention/cases/{case.id}/evidence").get_data())
    assert "case.evidence_exported" in again


def test_evidence_pdf_after_purge_says_when_and_by_which_run(
    app, client, login, admin_user, customer
):
    report = purge_due_documents(factory(app), app.config["UPLOADS_DIR"], NOW + 60 * DAY,
                                 Settings())  # fmt: skip
    login(client, admin_user)
    data = client.post(f"/admin/retention/cases/{customer['cases'][0].id}/evidence").get_data()
    text = pdf_text(data)
    assert data.startswith(b"%PDF") and image_count(data) == 0
    assert f"by purge run #{report.run_id}" in text
    assert "The documents were destroyed on" in text


def test_evidence_of_unknown_case_is_404(client, login, admin_user):
    login(client, admin_user)
    assert client.post("/admin/retention/cases/999999/evidence").status_code == 404


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_purge_dry_run_then_purge(app, runner, db_session, uploads):
    case = make_case(db_session, "CLI-1", "rejected", decided_at=NOW - 400 * DAY)
    doc = add_document(db_session, uploads, keyring_of(app), case)
    db_session.commit()

    dry = runner.invoke(args=["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Dry run: nothing was changed. 1 document(s) would go:" in dry.output
    assert doc.id in dry.output
    assert blob_path(uploads, doc.blob_name).exists()

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert re.search(r"Purge run \d+: 1 document\(s\) purged", result.output)
    assert not blob_path(uploads, doc.blob_name).exists()
    assert fetch(app, Document, doc.id).status == "purged"
