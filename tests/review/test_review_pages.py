"""The review pages over HTTP: access, queue, claiming, decisions, documents, erase, bulk."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.portal_helpers import email_body
from tests.review_helpers import ALL_YES, add_document, jpeg_bytes, make_case
from verifier.core.policies import create_policy_version
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    AuditEvent,
    Document,
    OutboxEmail,
    UploadLink,
    VerificationCase,
    WebhookEvent,
)
from verifier.portal.links import create_link
from verifier.vault.storage import Keyring


def recent(hours: float = 2) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


@pytest.fixture
def case_with_docs(app, db_session):
    """A case in review with a card front and a photo ID, as the portal leaves it."""
    case = make_case(db_session, "WEB-10042", created_at=recent())
    front = add_document(db_session, app, case, "card_front", data=jpeg_bytes((10, 200, 10)))
    photo = add_document(db_session, app, case, "photo_id")
    db_session.commit()
    return case, front, photo


def count(db_session, model, *where) -> int:
    db_session.rollback()  # see what the requests committed
    return db_session.scalar(select(func.count()).select_from(model).where(*where))


def fresh(db_session, model, key):
    db_session.rollback()
    return db_session.get(model, key, populate_existing=True)


def claim(client, case_id):
    return client.post(f"/review/cases/{case_id}/claim")


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/review/"),
        ("post", "/review/next"),
        ("post", "/review/bulk"),
        ("get", "/review/cases/{case}"),
        ("post", "/review/cases/{case}/claim"),
        ("post", "/review/cases/{case}/approve"),
        ("post", "/review/cases/{case}/lease"),
        ("get", "/review/documents/{doc}"),
        ("post", "/review/documents/{doc}/erase"),
    ],
)
def test_signed_out_users_are_sent_to_sign_in(client, case_with_docs, db_session, method, path):
    case, front, _ = case_with_docs
    response = getattr(client, method)(path.format(case=case.id, doc=front.id))
    assert response.status_code == 302
    assert "/staff/login" in response.headers["Location"]
    assert count(db_session, AuditEvent, AuditEvent.action == "document.viewed") == 0
    assert fresh(db_session, VerificationCase, case.id).claimed_by_id is None


def test_unknown_case_and_document_are_404(client, reviewer, login):
    login(client, reviewer)
    assert client.get("/review/cases/999999").status_code == 404
    assert client.get("/review/documents/" + "0" * 32).status_code == 404
    assert client.get("/review/documents/../../etc/passwd").status_code == 404


# --- queue ----------------------------------------------------------------------------------


def test_queue_lists_oldest_first_with_counts_late_flag_and_keyset_pages(
    app, client, reviewer, login, db_session
):
    for i in range(55):
        make_case(db_session, f"Q-{i:03d}", created_at=recent(100 - i))  # the first ones are late
    make_case(db_session, "WAIT-1", status=AWAITING_DOCUMENTS, created_at=recent())
    db_session.commit()
    login(client, reviewer)
    page = client.get("/review/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    ids = re.findall(r">(Q-\d{3})</a>", html)
    assert ids == [f"Q-{i:03d}" for i in range(50)]
    assert "WAIT-1" not in html
    assert re.search(r'In review\s*<span class="count">55</span>', html)
    assert re.search(r'Awaiting documents\s*<span class="count">1</span>', html)
    assert 'class="late"' in html and "badge-late" in html
    next_url = re.search(r'<a href="([^"]+)" rel="next">', html).group(1).replace("&amp;", "&")
    second = client.get(next_url).get_data(as_text=True)
    assert re.findall(r">(Q-\d{3})</a>", second) == [f"Q-{i:03d}" for i in range(50, 55)]
    assert 'rel="next"' not in second
    assert client.get("/review/?after=not-a-cursor").status_code == 400
    # Only the filters travel to the next page: "_"-names are url_for's own options.
    hostile = client.get("/review/?q=Q-&_external=1&_scheme=javascript&_anchor=x")
    link = re.search(r'<a href="([^"]+)" rel="next">', hostile.get_data(as_text=True)).group(1)
    assert link.startswith("/review/?") and "javascript" not in link and "#" not in link


def test_queue_filters_by_state_reason_and_search(client, reviewer, login, db_session):
    make_case(db_session, "WEB-777", email="bob@example.com")
    make_case(db_session, "SHOP-1", reason="amount_threshold", email="carol@example.com")
    make_case(db_session, "WAIT-1", status=AWAITING_DOCUMENTS)
    db_session.commit()
    login(client, reviewer)

    def orders(query: str) -> list[str]:
        html = client.get("/review/?" + query).get_data(as_text=True)
        return re.findall(r'/review/cases/\d+">([^<]+)</a>', html)

    assert orders("state=in_review&reason=rule") == ["SHOP-1"]
    assert orders("state=in_review&reason=random") == ["WEB-777"]
    assert orders("state=all&q=web-7") == ["WEB-777"]
    assert orders("state=all&q=CAROL@EX") == ["SHOP-1"]
    assert orders("state=awaiting_documents") == ["WAIT-1"]
    assert orders("state=all&q=nobody") == []
    assert client.get("/review/?state=bogus").status_code == 400


def test_next_claims_the_oldest_case_and_opens_it(client, reviewer, login, db_session):
    old = make_case(db_session, "OLD-1", created_at=recent(5))
    make_case(db_session, "NEW-1", created_at=recent(1))
    db_session.commit()
    login(client, reviewer)
    response = client.post("/review/next")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/review/cases/{old.id}")
    assert fresh(db_session, VerificationCase, old.id).claimed_by_id == reviewer.id
    html = client.get(f"/review/cases/{old.id}").get_data(as_text=True)
    assert "You are reviewing this case" in html and 'id="lease"' in html


# --- case page ------------------------------------------------------------------------------


def test_case_page_shows_order_beside_documents_without_inline_script_or_style(
    client, reviewer, login, case_with_docs
):
    case, front, photo = case_with_docs
    login(client, reviewer)
    claim(client, case.id)
    html = client.get(f"/review/cases/{case.id}").get_data(as_text=True)
    for text in (
        "WEB-10042",
        "Alice Meyer",
        "alice@example.com",
        "129.99 EUR",
        "Visa ending 4242",
        "1 High Street, SW1A 1AA, London, GB",
        "Random sample",
    ):
        assert text in html
    assert f'src="/review/documents/{front.id}"' in html
    assert f'src="/review/documents/{photo.id}"' in html
    assert html.count("Erase this image now") == 1  # card images only
    for check in ALL_YES:
        assert f'name="{check}"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert " style=" not in html and " onclick=" not in html
    assert '<meta name="csrf-token"' in html


def test_a_second_reviewer_sees_who_holds_the_case(
    client, app, reviewer, second_reviewer, login, case_with_docs
):
    case, _, _ = case_with_docs
    login(client, reviewer)
    claim(client, case.id)
    other = app.test_client()
    login(other, second_reviewer)
    response = claim(other, case.id)
    assert response.status_code == 303
    html = other.get(response.headers["Location"]).get_data(as_text=True)
    assert "reviewer@example.test is reviewing this case until" in html
    assert "Approve</button>" not in html and "Approve and next</button>" not in html
    assert 'name="card_name_matches"' not in html  # no checks to answer either


def test_approve_through_the_page(client, reviewer, login, case_with_docs, db_session):
    case, _, _ = case_with_docs
    login(client, reviewer)
    claim(client, case.id)
    response = client.post(f"/review/cases/{case.id}/approve", data=ALL_YES | {"note": "Fine"})
    assert response.status_code == 303
    decided = fresh(db_session, VerificationCase, case.id)
    assert (decided.status, decided.decided_by_id, decided.claimed_by_id) == (
        APPROVED,
        reviewer.id,
        None,
    )
    page = client.get(f"/review/cases/{case.id}").get_data(as_text=True)
    assert "<strong>Approved</strong> by reviewer@example.test" in page
    assert "Claim this case" not in page
    # A double submit changes nothing and sends no second webhook.
    again = client.post(f"/review/cases/{case.id}/approve", data=ALL_YES)
    assert again.status_code == 303
    assert "already approved" in client.get(again.headers["Location"]).get_data(as_text=True)
    assert count(db_session, WebhookEvent) == 1


def test_reject_without_a_failed_check_shows_the_error_on_the_form(
    client, reviewer, login, case_with_docs, db_session
):
    case, _, _ = case_with_docs
    login(client, reviewer)
    claim(client, case.id)
    response = client.post(
        f"/review/cases/{case.id}/reject", data=ALL_YES | {"reason_code": "documents_do_not_match"}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Name the check that failed" in html
    assert fresh(db_session, VerificationCase, case.id).status == IN_REVIEW
    response = client.post(
        f"/review/cases/{case.id}/reject",
        data=ALL_YES
        | {
            "card_last4_matches": "no",
            "reason_code": "documents_do_not_match",
        },
    )
    assert response.status_code == 303
    assert fresh(db_session, VerificationCase, case.id).status == REJECTED


def test_four_eyes_through_the_pages(
    app, client, reviewer, second_reviewer, login, case_with_docs, db_session
):
    create_policy_version(
        db_session,
        changes={"settings": {"four_eyes_rejections": True}},
        reason="test",
        actor_label="test",
        actor_id=None,
        now=datetime.now(UTC),
    )
    db_session.commit()
    case, _, _ = case_with_docs
    login(client, reviewer)
    claim(client, case.id)
    client.post(
        f"/review/cases/{case.id}/reject",
        data={
            "id_name_matches": "no",
            "reason_code": "suspected_altered_document",
        },
    )
    proposed = fresh(db_session, VerificationCase, case.id)
    assert (proposed.status, proposed.proposed_rejection_by_id) == (IN_REVIEW, reviewer.id)
    html = client.get(f"/review/cases/{case.id}").get_data(as_text=True)
    assert "A second reviewer must confirm or overturn it." in html
    client.post(f"/review/cases/{case.id}/confirm-rejection")
    assert fresh(db_session, VerificationCase, case.id).status == IN_REVIEW

    other = app.test_client()
    login(other, second_reviewer)
    claim(other, case.id)
    assert other.post(f"/review/cases/{case.id}/confirm-rejection").status_code == 303
    rejected = fresh(db_session, VerificationCase, case.id)
    assert (rejected.status, rejected.decided_by_id) == (REJECTED, second_reviewer.id)
    assert count(db_session, WebhookEvent) == 1


def test_resubmission_emails_a_new_link(app, client, reviewer, login, case_with_docs, db_session):
    case, _, _ = case_with_docs
    create_link(
        db_session,
        db_session.get(VerificationCase, case.id),
        expires_at=datetime.now(UTC) + timedelta(days=1),
        now=datetime.now(UTC),
    )
    db_session.commit()
    login(client, reviewer)
    claim(client, case.id)
    response = client.post(
        f"/review/cases/{case.id}/resubmission",
        data={"kinds": ["photo_id"], "message": "The photo is blurred."},
    )
    assert response.status_code == 303
    sent_back = fresh(db_session, VerificationCase, case.id)
    assert sent_back.status == RESUBMISSION_REQUESTED
    assert sent_back.resubmission_kinds == ["photo_id"]
    emails = db_session.scalars(select(OutboxEmail)).all()
    assert [e.kind for e in emails] == ["resubmission"]
    text = email_body(Keyring.from_config(app.config), emails[0])
    assert "The photo is blurred." in text
    links = db_session.scalars(select(UploadLink).order_by(UploadLink.id)).all()
    assert links[0].revoked_at is not None and links[1].revoked_at is None


def test_resubmission_form_errors(client, reviewer, login, case_with_docs):
    case, _, _ = case_with_docs
    login(client, reviewer)
    claim(client, case.id)
    response = client.post(f"/review/cases/{case.id}/resubmission", data={"message": "Again"})
    assert response.status_code == 422
    assert "Choose the documents the customer should send again." in response.get_data(as_text=True)


# --- lease renewal and CSRF -----------------------------------------------------------------


def test_lease_renewal_needs_the_csrf_header(app, client, reviewer, login, case_with_docs):
    case, _, _ = case_with_docs
    login(client, reviewer)
    claim(client, case.id)
    app.config["WTF_CSRF_ENABLED"] = True
    html = client.get(f"/review/cases/{case.id}").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
    assert client.post(f"/review/cases/{case.id}/lease").status_code == 400
    assert client.post(f"/review/cases/{case.id}/approve", data=ALL_YES).status_code == 400
    renewed = client.post(f"/review/cases/{case.id}/lease", headers={"X-CSRFToken": token})
    assert renewed.status_code == 200 and renewed.json["ok"] is True
    client.post(f"/review/cases/{case.id}/release", data={"csrf_token": token})
    lost = client.post(f"/review/cases/{case.id}/lease", headers={"X-CSRFToken": token})
    assert lost.status_code == 409 and "released" in lost.json["message"]


# --- documents ------------------------------------------------------------------------------


def test_documents_stream_with_safe_headers_and_each_view_is_audited(
    client, reviewer, login, case_with_docs, db_session
):
    _, front, _ = case_with_docs
    login(client, reviewer)
    response = client.get(f"/review/documents/{front.id}")
    assert response.status_code == 200
    assert response.data == jpeg_bytes((10, 200, 10))
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.headers["Content-Disposition"] == 'inline; filename="document.jpg"'
    client.get(f"/review/documents/{front.id}")
    db_session.rollback()
    viewed = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "document.viewed")
    ).all()
    assert [(e.actor_id, e.target_id) for e in viewed] == [(str(reviewer.id), front.id)] * 2
    assert all("bytes" not in e.details and "data" not in e.details for e in viewed)


def test_pci_erase_through_the_page(app, client, reviewer, login, case_with_docs, db_session):
    case, front, _ = case_with_docs
    create_link(
        db_session,
        db_session.get(VerificationCase, case.id),
        expires_at=datetime.now(UTC) + timedelta(days=1),
        now=datetime.now(UTC),
    )
    db_session.commit()
    blob = app.config["UPLOADS_DIR"] / front.blob_name[:2] / front.blob_name
    assert blob.exists()
    login(client, reviewer)
    refused = client.post(f"/review/documents/{front.id}/erase", data={})
    assert refused.status_code == 303 and blob.exists()
    response = client.post(
        f"/review/documents/{front.id}/erase",
        data={f"erase-{front.id}-reason_kind": "full_card_number_visible"},
    )
    assert response.status_code == 303
    assert not blob.exists()
    erased = fresh(db_session, Document, front.id)
    assert (erased.status, erased.blob_name, erased.wrapped_key) == ("erased", None, None)
    assert fresh(db_session, VerificationCase, case.id).status == RESUBMISSION_REQUESTED
    assert [e.kind for e in db_session.scalars(select(OutboxEmail))] == ["resubmission"]
    assert client.get(f"/review/documents/{front.id}").status_code == 404
    html = client.get(f"/review/cases/{case.id}").get_data(as_text=True)
    assert "a reviewer erased it because more than the last four digits" in html
    assert erased.erase_reason == "full_card_number_visible"


# --- bulk -----------------------------------------------------------------------------------


def test_bulk_actions_by_role(
    app, client, reviewer, second_reviewer, admin_user, login, db_session
):
    mine = make_case(db_session, "B-1")
    theirs = make_case(db_session, "B-2")
    waiting = make_case(db_session, "B-3", status=AWAITING_DOCUMENTS)
    soon = datetime.now(UTC) + timedelta(hours=1)
    create_link(db_session, waiting, expires_at=soon, now=datetime.now(UTC))
    db_session.commit()
    login(client, reviewer)
    claim(client, mine.id)
    other = app.test_client()
    login(other, second_reviewer)
    claim(other, theirs.id)

    response = client.post(
        "/review/bulk",
        data={"case_id": [mine.id, theirs.id], "action": "release", "back": "/review/"},
    )
    assert response.status_code == 303
    assert fresh(db_session, VerificationCase, mine.id).claimed_by_id is None
    assert fresh(db_session, VerificationCase, theirs.id).claimed_by_id == second_reviewer.id
    assert (
        client.post(
            "/review/bulk",
            data={"case_id": [theirs.id], "action": "reassign", "reviewer": reviewer.id},
        ).status_code
        == 403
    )

    admin = app.test_client()
    login(admin, admin_user)
    response = admin.post(
        "/review/bulk",
        data={"case_id": [theirs.id, mine.id], "action": "reassign", "reviewer": reviewer.id},
    )
    assert response.status_code == 303
    assert fresh(db_session, VerificationCase, theirs.id).claimed_by_id == reviewer.id
    assert fresh(db_session, VerificationCase, mine.id).claimed_by_id == reviewer.id
    response = client.post(
        "/review/bulk", data={"case_id": [waiting.id, mine.id], "action": "extend_links"}
    )
    assert response.status_code == 303
    html = client.get("/review/").get_data(as_text=True)
    assert "Extend upload links: 1 of 2 done." in html
    db_session.rollback()
    link = db_session.scalars(select(UploadLink).execution_options(populate_existing=True)).one()
    assert link.expires_at > soon + timedelta(days=1)


def test_case_page_shows_when_documents_will_be_purged(client, login, reviewer, case_with_docs):
    case, _front, _photo = case_with_docs
    login(client, reviewer)
    page = client.get(f"/review/cases/{case.id}").get_data(as_text=True)
    assert "Retention" in page
    assert "Documents are purged a set time after the case is decided" in page


def test_a_damaged_document_is_told_plainly_to_the_reviewer(app, client, reviewer, login,
                                                            case_with_docs, caplog):  # fmt: skip
    _case, front, _photo = case_with_docs
    login(client, reviewer)
    path = next(Path(app.config["UPLOADS_DIR"]).glob(f"*/{front.blob_name}"))
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")  # the tag no longer matches
    caplog.set_level(logging.ERROR)
    answer = client.get(f"/review/documents/{front.id}")
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert "be shown: its stored copy is damaged" in text and front.blob_name not in text
    assert any(front.id in r.getMessage() and "integrity alert" in r.getMessage()
               for r in caplog.records)  # fmt: skip
