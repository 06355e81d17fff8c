"""Regression tests for findings of the security review (each failed before its fix)."""

from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy import select

from tests.conftest import make_environ
from tests.portal_helpers import create_flagged_order, flag_everything, token_path
from tests.review_helpers import NOW, add_document, make_case, make_staff
from verifier import create_app
from verifier.core.settings import Settings
from verifier.db import new_session
from verifier.errors import NotFoundError
from verifier.models import AuditEvent, Document, UploadLink
from verifier.review.documents import erase_document
from verifier.web.limits import limiter


@pytest.fixture
def csrf_app(app, tmp_path, database_url):
    """The app as production runs it: CSRF checks on (the shared fixture turns them off)."""
    environ = make_environ(tmp_path, database_url, VERIFIER_UPLOAD_MAX_FILE_BYTES="100000")
    csrf_app = create_app({"ENVIRON": environ, "TESTING": True})
    yield csrf_app
    csrf_app.extensions["verifier.engine"].dispose()


@pytest.mark.parametrize("path", ["/staff/login", "/portal/documents/card_front", "/review/bulk"])
def test_every_post_body_is_bounded_before_the_csrf_check_parses_it(csrf_app, path):
    # The CSRF check reads request.form, which parses files into memory, before any
    # blueprint's own cap runs: without an app-wide ceiling any body size was accepted.
    body = {"file": (io.BytesIO(b"\0" * 3_000_000), "big.jpg")}
    resp = csrf_app.test_client().post(path, data=body, content_type="multipart/form-data")
    assert resp.status_code == 413


def test_an_upload_within_the_cap_still_reaches_the_csrf_check(csrf_app):
    body = {"file": (io.BytesIO(b"\0" * 50_000), "small.jpg")}
    resp = csrf_app.test_client().post(
        "/staff/login", data=body, content_type="multipart/form-data"
    )
    assert resp.status_code == 400  # no CSRF token


def test_an_error_while_opening_a_link_does_not_log_the_token(app, client, caplog, monkeypatch):
    # Flask logs "Exception on <path>" on the app's own logger, which the access-log
    # redaction did not cover: a failure on /u/<token> wrote the token to the error log.
    def broken(*args, **kwargs):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr("verifier.portal.views.resolve_token", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    token = "T0k3n-" + "x" * 37
    with caplog.at_level(logging.ERROR):
        resp = client.get(f"/u/{token}")
    assert resp.status_code == 500
    assert "/u/[redacted]" in caplog.text
    assert token not in caplog.text


def test_a_card_image_erased_meanwhile_is_not_erased_again(app, db_session):
    # Two reviewers erase the same image at once: the second read the document before the
    # first committed, then waited for the case lock. It must not send the customer a second
    # link (revoking the one just emailed) nor audit an erase of zero pages.

    staff = make_staff(db_session, "priya@shop.test")
    case = make_case(db_session, "A-1")
    front = add_document(db_session, app, case, "card_front")
    db_session.commit()
    assert db_session.get(Document, front.id).status == "active"  # read, then the lock waits
    db_session.commit()
    reopened: list[int] = []
    uploads = app.config["UPLOADS_DIR"]

    def erase(session):
        return erase_document(
            session, front.id, staff.id, NOW, uploads, "security_code_visible",
            settings=Settings(), reopen=lambda c: reopened.append(c.id),
        )  # fmt: skip

    first = new_session(app)
    assert erase(first).resubmission_requested
    first.commit()
    first.close()
    with pytest.raises(NotFoundError):
        erase(db_session)
    db_session.rollback()
    assert reopened == [case.id]
    erased = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "document.erased"))
    assert len(erased.all()) == 1


def test_handoff_links_cannot_be_minted_without_limit(client, auth, db_session):
    # Every handoff adds an upload link row: one portal session could add them unbounded.

    limiter.reset()
    flag_everything(db_session)
    client.get(token_path(create_flagged_order(client, auth)))
    statuses = [client.post("/portal/handoff").status_code for _ in range(11)]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429
    db_session.commit()
    assert len(db_session.scalars(select(UploadLink)).all()) == 11
    limiter.reset()
