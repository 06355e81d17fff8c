"""Blind second reviews: who may check what, agreement, and the pages that show them."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.review_helpers import add_document, make_case, make_staff
from verifier.errors import ConflictError, ValidationError
from verifier.models import APPROVED, REJECTED, QualityReview
from verifier.review.quality import agreement_report, next_quality_review, record_quality_verdict

NOW = datetime.now(UTC).replace(microsecond=0)


def _decided(session, external_id, status, decider, *, note="first reviewer's private note"):
    case = make_case(session, external_id, status=status, created_at=NOW - timedelta(days=2))
    case.decided_at = NOW - timedelta(days=1)
    case.decided_by_id = decider.id
    case.decision_note = note
    review = QualityReview(case_id=case.id, first_reviewer_id=decider.id,
                           created_at=NOW - timedelta(days=1))  # fmt: skip
    session.add(review)
    session.flush()
    return case, review


@pytest.fixture
def staff(db_session):
    people = {name: make_staff(db_session, f"{name}@example.test") for name in ("ann", "ben", "cy")}
    db_session.commit()
    return people


def test_next_check_is_never_ones_own_decision(db_session, staff):
    _decided(db_session, "Q-1", APPROVED, staff["ann"])
    _, second = _decided(db_session, "Q-2", REJECTED, staff["ben"])
    db_session.commit()

    blind = next_quality_review(db_session, staff["ann"].id)
    assert blind.review.id == second.id
    assert blind.order.external_id == "Q-2"
    assert blind.pending == 1
    assert next_quality_review(db_session, staff["cy"].id).pending == 2


def test_a_proposer_of_the_rejection_may_not_check_it_either(db_session, staff):
    case, review = _decided(db_session, "Q-1", REJECTED, staff["ben"])
    case.proposed_rejection_by_id = staff["ann"].id
    db_session.commit()
    assert next_quality_review(db_session, staff["ann"].id) is None
    with pytest.raises(ConflictError):
        record_quality_verdict(db_session, review.id, staff["ann"].id, APPROVED, NOW)


def test_verdict_records_agreement_once(db_session, staff):
    _, agreeing = _decided(db_session, "Q-1", APPROVED, staff["ann"])
    _, differing = _decided(db_session, "Q-2", APPROVED, staff["ann"])
    db_session.commit()

    assert record_quality_verdict(db_session, agreeing.id, staff["ben"].id, APPROVED, NOW).agrees
    assert not record_quality_verdict(db_session, differing.id, staff["ben"].id, REJECTED,
                                      NOW).agrees  # fmt: skip
    with pytest.raises(ConflictError, match="already"):
        record_quality_verdict(db_session, agreeing.id, staff["cy"].id, REJECTED, NOW)
    with pytest.raises(ConflictError, match="took part"):
        record_quality_verdict(db_session, agreeing.id, staff["ann"].id, APPROVED, NOW)
    with pytest.raises(ValidationError):
        record_quality_verdict(db_session, agreeing.id, staff["cy"].id, "maybe", NOW)
    db_session.commit()
    assert next_quality_review(db_session, staff["cy"].id) is None


def test_agreement_report_per_reviewer_and_disagreements(db_session, staff):
    pairs = [("ann", APPROVED, APPROVED), ("ann", REJECTED, REJECTED), ("ann", APPROVED, REJECTED),
             ("ben", APPROVED, APPROVED)]  # fmt: skip
    for i, (first, status, verdict) in enumerate(pairs):
        _, review = _decided(db_session, f"Q-{i}", status, staff[first])
        record_quality_verdict(db_session, review.id, staff["cy"].id, verdict, NOW)
    _decided(db_session, "Q-open", APPROVED, staff["ben"])
    db_session.commit()

    report = agreement_report(db_session, start=NOW - timedelta(days=1), end=NOW + timedelta(1))

    assert (report.overall.checked, report.overall.agreed) == (4, 3)
    assert [(a.label, a.checked, a.agreed) for a in report.per_reviewer] == [
        ("ann@example.test", 3, 2), ("ben@example.test", 1, 1)]  # fmt: skip
    assert report.per_reviewer[0].rate == pytest.approx(2 / 3)
    [miss] = report.disagreements
    assert (miss.order_external_id, miss.first_decision, miss.second_verdict) == (
        "Q-2", APPROVED, REJECTED)  # fmt: skip
    assert (miss.first_reviewer, miss.second_reviewer) == ("ann@example.test", "cy@example.test")
    assert report.pending == 1


def test_the_check_page_hides_the_first_decision(app, client, reviewer, second_reviewer, login,
                                                 db_session):  # fmt: skip
    case, review = _decided(db_session, "Q-77", APPROVED, second_reviewer,
                            note="Looked fine to me, signed Bea")  # fmt: skip
    document = add_document(db_session, app, case, "card_front")
    db_session.commit()
    login(client, reviewer)

    page = client.get("/review/quality/").get_data(as_text=True)
    assert "Q-77" in page
    assert f"/review/documents/{document.id}" in page
    assert "Looked fine to me" not in page
    assert second_reviewer.email not in page
    assert "approved" not in page.replace('value="approved"', "")

    image = client.get(f"/review/documents/{document.id}")
    assert image.status_code == 200 and image.mimetype == "image/jpeg"

    missing = client.post(f"/review/quality/{review.id}", data={})
    assert missing.status_code == 422
    assert "Choose approve or reject." in missing.get_data(as_text=True)

    done = client.post(f"/review/quality/{review.id}", data={"verdict": "rejected"})
    assert done.status_code == 303
    db_session.rollback()
    stored = db_session.scalar(select(QualityReview))
    assert (stored.reviewer_id, stored.verdict, stored.agrees) == (reviewer.id, REJECTED, False)
    after = client.get("/review/quality/").get_data(as_text=True)
    assert "recorded" in after and "Nothing to check" in after


def test_the_first_reviewer_gets_nothing_to_check(client, second_reviewer, login, db_session):
    _, review = _decided(db_session, "Q-1", APPROVED, second_reviewer)
    db_session.commit()
    login(client, second_reviewer)
    assert "Nothing to check" in client.get("/review/quality/").get_data(as_text=True)
    refused = client.post(f"/review/quality/{review.id}", data={"verdict": "approved"})
    assert refused.status_code == 303
    assert "took part" in client.get("/review/quality/").get_data(as_text=True)
