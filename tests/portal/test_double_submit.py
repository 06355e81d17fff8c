"""*Send for review* pressed twice at once (a double click, two tabs): the case goes to review
once, with one status event for the shop and one receipt for the customer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select

from tests.portal_helpers import jpeg_bytes, upload
from verifier.core.policies import current_settings
from verifier.models import OutboxEmail, VerificationCase, WebhookEvent
from verifier.portal.submissions import submit_documents


def _in_review_events(db_session, case_id: int) -> int:
    db_session.rollback()
    events = db_session.scalars(select(WebhookEvent.payload)).all()
    return sum(1 for e in events if e["data"]["case_id"] == case_id
               and e["data"]["status"] == "in_review")  # fmt: skip


def _receipts(db_session, case_id: int) -> int:
    db_session.rollback()
    query = select(func.count(OutboxEmail.id)).where(
        OutboxEmail.case_id == case_id, OutboxEmail.kind == "receipt"
    )
    return db_session.scalar(query)


def _ready(client) -> None:
    for kind in ("photo_id", "proof_of_address"):
        assert upload(client, kind, jpeg_bytes()).status_code == 201


def test_a_case_read_before_another_request_sent_it_is_not_sent_again(app, client, opened):
    """The portal reads the case before the send (its session check); a second request that read
    it while the first was sending must see it sent, not the copy it read (PostgreSQL took the
    row lock but kept the stale copy and sent the case twice)."""
    _ready(client)
    case_id = opened["case"]["id"]
    now = datetime.now(UTC)
    make = app.extensions["verifier.sessionmaker"]
    with make() as late, make() as first:
        assert late.get(VerificationCase, case_id).status == "awaiting_documents"  # as the check
        late.commit()
        settings = current_settings(first)
        assert submit_documents(first, case_id, settings=settings, now=now) is True
        first.commit()
        assert submit_documents(late, case_id, settings=settings, now=now) is False
        late.commit()


def test_two_sends_at_once_go_to_review_once(app, client, opened, db_session):
    _ready(client)
    case_id = opened["case"]["id"]
    second = app.test_client()
    second.set_cookie("session", client.get_cookie("session").value)
    barrier = threading.Barrier(2)
    answers = []

    def press(browser) -> None:
        barrier.wait()
        answers.append(browser.post("/portal/submit").status_code)

    threads = [threading.Thread(target=press, args=(b,)) for b in (client, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [303, 303]
    db_session.rollback()
    assert db_session.get(VerificationCase, case_id).status == "in_review"
    assert _in_review_events(db_session, case_id) == 1
    assert _receipts(db_session, case_id) == 1
